//! The web pages, served by the same axum server: search (one image or a batch), a pattern's
//! page, the registration desk, the comparison form and the court's comparison report. Pages
//! are rendered on the server from templates compiled into the binary; a small plain script
//! (`static/app.js`) calls the JSON API for uploads. Browsers sign in with a token that is kept
//! in an HttpOnly, SameSite=Strict cookie, which the API accepts like a bearer token.

mod i18n;
mod report;

use std::sync::{Arc, LazyLock};

use axum::Form;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::{Environment, Value, context};
use serde::Deserialize;

use crate::api::auth::{Caller, Permission, allows};
use crate::api::blocking;
use crate::decode::MAX_UPLOAD_BYTES;
use crate::engine::Engine;
pub use i18n::Lang;

/// The cookie a signed-in browser carries its token in.
pub const TOKEN_COOKIE: &str = "hx_token";

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("message.html", include_str!("templates/message.html")),
        ("sign_in.html", include_str!("templates/sign_in.html")),
        ("search.html", include_str!("templates/search.html")),
        ("pattern.html", include_str!("templates/pattern.html")),
        ("desk.html", include_str!("templates/desk.html")),
        ("compare.html", include_str!("templates/compare.html")),
        ("report.html", include_str!("templates/report.html")),
    ] {
        env.add_template(name, source)
            .expect("page templates parse");
    }
    env
});

pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/", get(search_page))
        .route("/patterns/{id}", get(pattern_page))
        .route("/desk", get(desk_page))
        .route("/compare", get(compare_page))
        .route(
            "/compare/report",
            get(report::for_registered)
                .post(report::for_uploads)
                .layer(DefaultBodyLimit::max(2 * MAX_UPLOAD_BYTES + (1 << 20))),
        )
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/static/app.js", get(script))
        .route("/static/app.css", get(stylesheet))
}

/// What every page needs: its language, words, caller and what the caller may do.
pub struct Page {
    pub lang: Lang,
    /// Set when the language switch was used: the choice is remembered in a cookie.
    remember: Option<Lang>,
    caller: Option<Caller>,
    open_access: bool,
}

#[derive(Deserialize)]
pub struct LangQuery {
    lang: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Page, Self::Rejection> {
        let chosen = Query::<LangQuery>::try_from_uri(&parts.uri)
            .ok()
            .and_then(|q| q.0.lang)
            .and_then(|l| Lang::parse(&l));
        let caller = parts.extensions.get::<Caller>().cloned();
        Ok(Page {
            lang: chosen.unwrap_or_else(|| Lang::of_request(&parts.headers)),
            remember: chosen,
            open_access: caller.as_ref().is_some_and(|c| c.name == "open-access"),
            caller,
        })
    }
}

impl Page {
    fn may(&self, permission: Permission) -> bool {
        self.caller
            .as_ref()
            .is_some_and(|c| allows(c.role, permission))
    }

    /// Renders a template with the page's common context merged under `extra`.
    pub fn render(&self, template: &str, name: &str, extra: Value) -> Response {
        self.render_with_status(StatusCode::OK, template, name, extra)
    }

    fn render_with_status(
        &self,
        status: StatusCode,
        template: &str,
        name: &str,
        extra: Value,
    ) -> Response {
        let words = self.lang.words();
        let common = context! {
            lang => self.lang.code(),
            t => &words,
            // Inside <script> entities are not decoded, so this JSON goes in as is ("</" is
            // escaped so no word could end the script early).
            words_json => Value::from_safe_string(
                serde_json::to_string(&words).expect("words serialise").replace("</", "<\\/")
            ),
            page => name,
            caller => self.caller.as_ref().map(|c| context! { name => &c.name, role => c.role.as_str() }),
            open_access => self.open_access,
            can => context! {
                review => self.may(Permission::Review),
                compare => self.may(Permission::Compare),
                evidence => self.may(Permission::Evidence),
                originals => self.may(Permission::ViewOriginal),
            },
        };
        let html = TEMPLATES
            .get_template(template)
            .and_then(|t| t.render(context! { ..extra, ..common }));
        let mut response = match html {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!("cannot render {template}: {e:#}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page could not be rendered",
                )
                    .into_response()
            }
        };
        if let Some(lang) = self.remember {
            let cookie = format!(
                "hx_lang={}; Path=/; Max-Age=31536000; SameSite=Lax",
                lang.code()
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        response
    }

    /// A page that says what went wrong, in words.
    pub fn message(&self, status: StatusCode, message: &str) -> Response {
        let words = self.lang.words();
        self.render_with_status(
            status,
            "message.html",
            "message",
            context! { heading => words["error"], message => message },
        )
    }

    /// Sends callers without a token to sign in, and callers whose role may not to a 403 page.
    fn refuse_unless(&self, permission: Permission, here: &str) -> Option<Response> {
        match &self.caller {
            None => {
                Some(Redirect::to(&format!("/sign-in?next={}", urlencode(here))).into_response())
            }
            Some(caller) if !allows(caller.role, permission) => {
                Some(self.message(StatusCode::FORBIDDEN, self.lang.words()["not_allowed"]))
            }
            Some(_) => None,
        }
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A cookie's value from the request headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

async fn search_page(page: Page) -> Response {
    if let Some(refusal) = page.refuse_unless(Permission::Search, "/") {
        return refusal;
    }
    page.render("search.html", "search", context! {})
}

async fn pattern_page(
    State(engine): State<Arc<Engine>>,
    page: Page,
    Path(id): Path<String>,
) -> Response {
    if let Some(refusal) = page.refuse_unless(Permission::ViewRecords, &format!("/patterns/{id}")) {
        return refusal;
    }
    let caller = page.caller.clone().expect("checked above");
    let found = blocking(move || {
        let record = engine.get(&id)?;
        let similar: Vec<serde_json::Value> = engine
            .similar_to(&id, 6)?
            .into_iter()
            .map(|m| serde_json::to_value(&m).expect("matches serialise"))
            .collect();
        Ok((record, similar))
    })
    .await;
    match found {
        Ok((record, _)) if !caller.may_see(&record) => {
            page.message(StatusCode::NOT_FOUND, "not found")
        }
        Ok((record, similar)) => {
            let record = crate::api::view_record(&caller, &record);
            page.render(
                "pattern.html",
                "pattern",
                context! { pattern => record, similar => similar },
            )
        }
        Err(error) => page.message(error.status, &error.message),
    }
}

async fn desk_page(State(engine): State<Arc<Engine>>, page: Page) -> Response {
    if let Some(refusal) = page.refuse_unless(Permission::Review, "/desk") {
        return refusal;
    }
    match blocking(move || engine.registry().review_queue()).await {
        Ok(queue) => {
            let queue: Vec<Value> = queue
                .into_iter()
                .map(|(pattern, matches)| context! { pattern => pattern, matches => matches })
                .collect();
            page.render("desk.html", "desk", context! { queue => queue })
        }
        Err(error) => page.message(error.status, &error.message),
    }
}

#[derive(Deserialize)]
struct CompareQuery {
    a: Option<String>,
    b: Option<String>,
}

async fn compare_page(page: Page, Query(query): Query<CompareQuery>) -> Response {
    if let Some(refusal) = page.refuse_unless(Permission::Compare, "/compare") {
        return refusal;
    }
    page.render(
        "compare.html",
        "compare",
        context! { a_id => query.a.unwrap_or_default(), b_id => query.b.unwrap_or_default() },
    )
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn sign_in_page(page: Page, Query(query): Query<NextQuery>) -> Response {
    page.render(
        "sign_in.html",
        "sign_in",
        context! { next => safe_next(query.next.as_deref()), error => Value::UNDEFINED },
    )
}

#[derive(Deserialize)]
struct SignIn {
    token: String,
    next: Option<String>,
}

async fn sign_in(
    State(engine): State<Arc<Engine>>,
    page: Page,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    // Another site must not sign a browser in under a token of its choosing.
    if !crate::api::auth::same_origin(&headers) {
        return page.message(
            StatusCode::FORBIDDEN,
            "sign in from this site's sign-in page",
        );
    }
    let token = form.token.trim().to_string();
    let lookup = token.clone();
    let found = tokio::task::spawn_blocking(move || engine.registry().find_token(&lookup)).await;
    let next = safe_next(form.next.as_deref());
    match found {
        Ok(Ok(Some(_))) => {
            let cookie = format!(
                "{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000"
            );
            let mut response = Redirect::to(&next).into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        _ => page.render_with_status(
            StatusCode::UNAUTHORIZED,
            "sign_in.html",
            "sign_in",
            context! { next => next, error => page.lang.words()["bad_token"] },
        ),
    }
}

/// Only paths on this site: a sign-in link must not send the browser elsewhere. Browsers
/// read `/\host` and paths with tabs or spaces as other sites, so only plain path characters
/// pass.
fn safe_next(next: Option<&str>) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/-_.?=&%".contains(c);
    match next {
        Some(path)
            if path.starts_with('/') && !path.starts_with("//") && path.chars().all(plain) =>
        {
            path.to_string()
        }
        _ => "/".to_string(),
    }
}

async fn sign_out() -> Response {
    let mut response = Redirect::to("/sign-in").into_response();
    let cookie = format!("{TOKEN_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("static cookie"),
    );
    response
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("static/app.js"),
    )
        .into_response()
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("static/app.css"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_only_sends_browsers_to_this_site() {
        assert_eq!(safe_next(Some("/desk")), "/desk");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("/\t/evil.example")), "/");
        assert_eq!(
            safe_next(Some("/patterns/ab12?lang=en")),
            "/patterns/ab12?lang=en"
        );
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn every_template_renders_in_both_languages() {
        for lang in [Lang::En, Lang::Zh] {
            let page = Page {
                lang,
                remember: None,
                caller: None,
                open_access: false,
            };
            for (template, extra) in [
                ("search.html", context! {}),
                ("sign_in.html", context! { next => "/" }),
                ("compare.html", context! { a_id => "", b_id => "" }),
                ("desk.html", context! { queue => Vec::<Value>::new() }),
            ] {
                let response = page.render(template, "test", extra);
                assert_eq!(response.status(), StatusCode::OK, "{template} in {lang:?}");
            }
        }
    }
}
