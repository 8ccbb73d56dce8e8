//! The HTTP API (see README "API"): the router, its protective layers, and serving with
//! graceful shutdown. The contract is fixed because the shared benchmark drives it.

mod admin;
pub mod auth;
pub mod error;
mod evidence;
pub(crate) mod form;
mod handlers;
pub(crate) use handlers::blocking;
pub use handlers::view as view_record;
mod review;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{MethodRouter, delete, get, post};
use tokio::net::TcpListener;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::decode::MAX_UPLOAD_BYTES;
use crate::engine::Engine;
use auth::Permission::{self, *};

/// Room for the multipart framing and text fields around the files.
const FORM_OVERHEAD: usize = 1024 * 1024;
/// A batch may carry this many bytes in all; at most this many requests run at once.
const MAX_BATCH_BODY: usize = 256 * 1024 * 1024;
const MAX_CONCURRENT_REQUESTS: usize = 32;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The whole API. With `open_on_loopback`, requests from loopback without a token act as
/// admin (`serve --open`, for trying huaxing out).
pub fn router(engine: Arc<Engine>, open_on_loopback: bool) -> Router {
    let single = DefaultBodyLimit::max(MAX_UPLOAD_BYTES + FORM_OVERHEAD);
    let policy = auth::AccessPolicy {
        engine: engine.clone(),
        open_on_loopback,
    };
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .route(
            "/api/v1/patterns",
            guard(Register, post(handlers::register).layer(single))
                .merge(guard(ViewRecords, get(handlers::list_patterns))),
        )
        .route(
            "/api/v1/pre-registrations",
            guard(PreRegister, post(handlers::pre_register).layer(single)),
        )
        .route(
            "/api/v1/patterns/{id}",
            guard(ViewRecords, get(handlers::get_pattern)),
        )
        .route(
            "/api/v1/patterns/{id}/image",
            guard(ViewOriginal, get(handlers::get_image)),
        )
        .route(
            "/api/v1/patterns/{id}/thumbnail",
            guard(ViewThumbnail, get(handlers::get_thumbnail)),
        )
        .route(
            "/api/v1/patterns/{id}/status",
            guard(Review, post(review::decide)),
        )
        .route(
            "/api/v1/patterns/{id}/proof",
            guard(Evidence, get(evidence::proof)),
        )
        .route(
            "/api/v1/patterns/{id}/certificate",
            guard(Evidence, get(evidence::certificate)),
        )
        .route(
            "/api/v1/patterns/{id}/certificate.html",
            guard(Evidence, get(evidence::certificate_html)),
        )
        .route("/api/v1/review", guard(Review, get(review::queue)))
        .route(
            "/api/v1/search",
            guard(Search, post(handlers::search).layer(single)),
        )
        .route(
            "/api/v1/search/batch",
            guard(
                Search,
                post(handlers::search_batch).layer(DefaultBodyLimit::max(MAX_BATCH_BODY)),
            ),
        )
        .route(
            "/api/v1/compare",
            guard(
                Compare,
                post(handlers::compare)
                    .layer(DefaultBodyLimit::max(2 * MAX_UPLOAD_BYTES + FORM_OVERHEAD)),
            ),
        )
        .route("/api/v1/log/key", get(evidence::log_key))
        .route("/api/v1/log/head", get(evidence::log_head))
        .route("/api/v1/log/consistency", get(evidence::log_consistency))
        .route(
            "/api/v1/tokens",
            guard(
                Administer,
                post(admin::create_token).get(admin::list_tokens),
            ),
        )
        .route(
            "/api/v1/tokens/{id}",
            guard(Administer, delete(admin::delete_token)),
        )
        .route("/api/v1/audit", guard(Administer, get(admin::audit_trail)))
        .merge(crate::web::routes())
        .layer(axum::middleware::from_fn_with_state(
            engine.clone(),
            auth::audit,
        ))
        .with_state(engine)
        .layer(axum::middleware::from_fn_with_state(
            policy,
            auth::authenticate,
        ))
        .layer(RequestBodyLimitLayer::new(MAX_BATCH_BODY))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(GlobalConcurrencyLimitLayer::new(MAX_CONCURRENT_REQUESTS))
        .layer(TraceLayer::new_for_http())
}

/// Lets only callers whose role allows `permission` reach the routes of `routes`.
fn guard(permission: Permission, routes: MethodRouter<Arc<Engine>>) -> MethodRouter<Arc<Engine>> {
    routes.route_layer(axum::middleware::from_fn_with_state(
        permission,
        auth::require,
    ))
}

/// Serves until SIGTERM or ctrl-c, then lets requests in flight finish.
pub async fn serve(
    engine: Arc<Engine>,
    listener: TcpListener,
    open_on_loopback: bool,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(engine, open_on_loopback).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
