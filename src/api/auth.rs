//! Who is calling, and what they may do. A bearer token names a role; this file is the one
//! place that says which role may do what (README "Roles"), and the audit layer records every
//! API request with its caller.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;

use super::error::ApiError;
use crate::engine::Engine;
use crate::registry::Role;
use crate::registry::audit::AuditRecord;

/// What a request asks to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Search and batch search (a merchant's pre-check).
    Search,
    /// Reserve a time-stamped, unpublished entry.
    PreRegister,
    /// Register, or file as public domain, a new pattern.
    Register,
    /// The review queue and decisions on a pattern's status.
    Review,
    /// Pattern records (merchants see published ones, and their own, without owners).
    ViewRecords,
    /// Originals at full size.
    ViewOriginal,
    /// Reduced images.
    ViewThumbnail,
    Compare,
    /// Proofs and certificates.
    Evidence,
    /// Tokens and the audit trail.
    Administer,
}

/// The role table.
pub fn allows(role: Role, permission: Permission) -> bool {
    use Permission::*;
    match role {
        Role::Admin => true,
        Role::Clerk => permission != Administer,
        Role::Court => matches!(
            permission,
            Search | ViewRecords | ViewOriginal | ViewThumbnail | Compare | Evidence
        ),
        Role::Merchant => matches!(
            permission,
            Search | PreRegister | ViewRecords | ViewThumbnail
        ),
    }
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The token's name, recorded in the log and the audit trail.
    pub name: String,
    pub role: Role,
}

/// Guards a route: 401 without a valid token, 403 when the caller's role does not allow
/// `permission`; the upload is never parsed for a refused request.
pub async fn require(
    State(permission): State<Permission>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = request.into_parts();
    let refusal = match Caller::from_request_parts(&mut parts, &()).await {
        Ok(caller) if allows(caller.role, permission) => {
            return Ok(next.run(Request::from_parts(parts, body)).await);
        }
        Ok(caller) => ApiError {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: format!("the {} role may not do this", caller.role.as_str()),
        },
        Err(unauthorized) => unauthorized,
    };
    discard(body).await;
    Err(refusal)
}

/// Most bytes of a refused request read before answering; past it the connection is closed.
const DISCARD_LIMIT: usize = 2 * crate::decode::MAX_UPLOAD_BYTES + (1 << 20);

/// Reads and drops a refused request's body, up to a bound, without keeping it: a client still
/// sending its upload then gets the answer instead of a connection closed under it.
async fn discard(mut body: Body) {
    let mut read = 0;
    while let Some(Ok(frame)) = body.frame().await {
        read += frame.data_ref().map_or(0, |data| data.len());
        if read > DISCARD_LIMIT {
            break;
        }
    }
}

impl Caller {
    /// Merchants see a reduced view of other people's patterns.
    pub fn is_merchant(&self) -> bool {
        self.role == Role::Merchant
    }

    /// Merchants see other people's patterns only once published; everyone else sees all.
    pub fn may_see(&self, record: &crate::registry::PatternRecord) -> bool {
        !self.is_merchant() || record.status.is_published() || record.submitted_by == self.name
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Caller, ApiError> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let message = match parts.extensions.get::<BadToken>() {
            Some(BadToken(why)) => why,
            None => "send an API token: `Authorization: Bearer TOKEN`",
        };
        Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: message.to_string(),
        })
    }
}

/// Why a token sent with a request was not accepted.
#[derive(Clone, Copy, Debug)]
struct BadToken(&'static str);

/// How the service treats requests without a token.
#[derive(Clone)]
pub struct AccessPolicy {
    pub engine: Arc<Engine>,
    /// `serve --open`: requests from loopback without a token act as admin.
    pub open_on_loopback: bool,
}

/// Resolves the bearer token into a `Caller`, or notes why it could not. Refusing is left to
/// the handlers (401 when they need a caller, 403 when the role may not), so that the audit
/// layer sees and records refused requests too.
pub async fn authenticate(
    State(policy): State<AccessPolicy>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let bearer = request.headers().get(header::AUTHORIZATION).map(|value| {
        value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|token| token.trim().to_string())
    });
    // A signed-in browser: the cookie is HttpOnly and SameSite=Strict; on top of that, a
    // request that changes something must come from a page of this site.
    let cookie = crate::web::cookie(request.headers(), crate::web::TOKEN_COOKIE);
    let changes_something = !request.method().is_safe();
    let token = match (bearer, cookie) {
        (Some(bearer), _) => Some(bearer),
        (None, Some(_)) if changes_something && !same_origin(request.headers()) => {
            request.extensions_mut().insert(BadToken(
                "cross-site request refused: send it from this site's pages",
            ));
            return Ok(next.run(request).await);
        }
        (None, cookie) => cookie.map(Some),
    };
    match token {
        Some(Some(token)) => {
            let engine = policy.engine.clone();
            let found = tokio::task::spawn_blocking(move || engine.registry().find_token(&token))
                .await
                .map_err(|e| ApiError::from(crate::Error::Index(format!("worker failed: {e}"))))?
                .map_err(ApiError::from)?;
            match found {
                Some(info) => {
                    request.extensions_mut().insert(Caller {
                        name: info.name,
                        role: info.role,
                    });
                }
                None => {
                    request
                        .extensions_mut()
                        .insert(BadToken("the API token is not valid"));
                }
            }
        }
        Some(None) => {
            request
                .extensions_mut()
                .insert(BadToken("the Authorization header must be `Bearer TOKEN`"));
        }
        None if policy.open_on_loopback && is_local(&request) => {
            request.extensions_mut().insert(Caller {
                name: "open-access".into(),
                role: Role::Admin,
            });
        }
        None => {}
    }
    Ok(next.run(request).await)
}

/// Open access is for a person on this machine: the connection comes from loopback, the
/// `Host` names loopback (a page on another site that rebinds its name to 127.0.0.1 still
/// sends its own name), and a browser's `Origin`, when sent, is this site.
fn is_local(request: &Request) -> bool {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    let loopback_name = name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    peer(request).is_some_and(|a| a.ip().is_loopback())
        && loopback_name
        && (request.headers().get(header::ORIGIN).is_none() || same_origin(request.headers()))
}

/// Whether the browser says the request comes from a page of this site: its `Origin` (or,
/// without one, its `Referer`) names the host the request was sent to.
pub fn same_origin(headers: &axum::http::HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let source = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|v| v.to_str().ok());
    source
        .and_then(|s| s.split_once("://"))
        .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
        .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

fn peer(request: &Request) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
}

/// What a handler adds to the audit record of its request: an upload's hash, a decision.
#[derive(Clone, Debug)]
pub struct AuditDetail(pub String);

/// Records every API request, whatever its outcome, once the answer is ready.
pub async fn audit(State(engine): State<Arc<Engine>>, request: Request, next: Next) -> Response {
    let address = peer(&request).map(|a| a.to_string()).unwrap_or_default();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let method = request.method().clone();
    let target = format!("{method} {}", request.uri().path());
    let caller = request.extensions().get::<Caller>().cloned();
    let response = next.run(request).await;
    if !route.starts_with("/api/") && route != "/compare/report" {
        return response;
    }
    let record = AuditRecord {
        id: 0,
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        actor: caller
            .as_ref()
            .map_or_else(|| "anonymous".to_string(), |c| c.name.clone()),
        role: caller.map_or("none", |c| c.role.as_str()).to_string(),
        address,
        action: action(method.as_str(), &route).to_string(),
        target,
        status: response.status().as_u16(),
        detail: response
            .extensions()
            .get::<AuditDetail>()
            .map(|d| d.0.clone())
            .unwrap_or_default(),
    };
    tokio::task::spawn_blocking(move || {
        if let Err(e) = engine.audit().record(&record) {
            tracing::error!("cannot write the audit record {record:?}: {e}");
        }
    });
    response
}

/// The audit trail's name for a route.
fn action(method: &str, route: &str) -> &'static str {
    match (method, route) {
        ("POST", "/api/v1/patterns") => "upload",
        ("POST", "/api/v1/pre-registrations") => "pre_registration",
        ("POST", "/api/v1/search" | "/api/v1/search/batch") => "search",
        ("POST", "/api/v1/compare") | (_, "/compare/report") => "compare",
        ("POST", "/api/v1/patterns/{id}/status") => "decision",
        ("GET", "/api/v1/patterns/{id}/image" | "/api/v1/patterns/{id}/thumbnail") => "image_view",
        (
            "GET",
            "/api/v1/patterns/{id}/proof"
            | "/api/v1/patterns/{id}/certificate"
            | "/api/v1/patterns/{id}/certificate.html",
        ) => "export",
        ("GET", "/api/v1/patterns" | "/api/v1/patterns/{id}" | "/api/v1/review") => "record_view",
        (_, "/api/v1/tokens" | "/api/v1/tokens/{id}") => "token_admin",
        ("GET", "/api/v1/audit") => "audit_view",
        (_, route) if route.starts_with("/api/v1/log/") => "log_view",
        _ => "request",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merchants_cannot_reach_originals_evidence_or_administration() {
        for permission in [
            Permission::ViewOriginal,
            Permission::Evidence,
            Permission::Register,
            Permission::Review,
            Permission::Compare,
            Permission::Administer,
        ] {
            assert!(!allows(Role::Merchant, permission), "{permission:?}");
        }
        assert!(allows(Role::Merchant, Permission::Search));
        assert!(allows(Role::Court, Permission::Evidence));
        assert!(!allows(Role::Court, Permission::Register));
        assert!(!allows(Role::Clerk, Permission::Administer));
    }
}
