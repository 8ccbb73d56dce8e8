//! The HTTP API (see README "API"): the router, its protective layers, and serving with
//! graceful shutdown. The contract is fixed because the shared benchmark drives it.

pub mod error;
mod form;
mod handlers;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::decode::MAX_UPLOAD_BYTES;
use crate::engine::Engine;

/// Room for the multipart framing and text fields around the files.
const FORM_OVERHEAD: usize = 1024 * 1024;
/// A batch may carry this many bytes in all; at most this many requests run at once.
const MAX_BATCH_BODY: usize = 256 * 1024 * 1024;
const MAX_CONCURRENT_REQUESTS: usize = 32;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

pub fn router(engine: Arc<Engine>) -> Router {
    let single = DefaultBodyLimit::max(MAX_UPLOAD_BYTES + FORM_OVERHEAD);
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .route(
            "/api/v1/patterns",
            post(handlers::register)
                .layer(single)
                .get(handlers::list_patterns),
        )
        .route("/api/v1/patterns/{id}", get(handlers::get_pattern))
        .route("/api/v1/patterns/{id}/image", get(handlers::get_image))
        .route("/api/v1/search", post(handlers::search).layer(single))
        .route(
            "/api/v1/search/batch",
            post(handlers::search_batch).layer(DefaultBodyLimit::max(MAX_BATCH_BODY)),
        )
        .route(
            "/api/v1/compare",
            post(handlers::compare)
                .layer(DefaultBodyLimit::max(2 * MAX_UPLOAD_BYTES + FORM_OVERHEAD)),
        )
        .with_state(engine)
        .layer(RequestBodyLimitLayer::new(MAX_BATCH_BODY))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(GlobalConcurrencyLimitLayer::new(MAX_CONCURRENT_REQUESTS))
        .layer(TraceLayer::new_for_http())
}

/// Serves until SIGTERM or ctrl-c, then lets requests in flight finish.
pub async fn serve(engine: Arc<Engine>, listener: TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router(engine))
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
