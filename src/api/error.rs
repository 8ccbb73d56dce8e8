//! Errors as HTTP answers: every error leaves as `{"error": {"code", "message"}}` with a status
//! that says whose fault it is. Our own faults are logged in full and answered vaguely.

use axum::Json;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::Error;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let (status, code) = match &error {
            Error::BadInput { code, .. } => (StatusCode::BAD_REQUEST, *code),
            Error::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Error::Unsupported { .. } => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_image"),
            Error::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Error::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let message = if error.is_callers_fault() {
            error.to_string()
        } else {
            tracing::error!("internal error: {error}");
            "the service failed to handle this request; it has been logged".to_string()
        };
        ApiError {
            status,
            code,
            message,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

/// Gives the JSON error body to failures produced outside our handlers (unknown routes,
/// wrong methods, the body-size limit, the timeout, extractor rejections). Errors that are
/// already JSON, or pages that explain themselves, pass as they are.
pub async fn json_errors(request: axum::extract::Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let explained = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
        });
    if !(status.is_client_error() || status.is_server_error()) || explained {
        return response;
    }
    let (parts, body) = response.into_parts();
    let detail = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let detail = String::from_utf8_lossy(&detail).trim().to_string();
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::SERVICE_UNAVAILABLE => "timeout",
        s if s.is_client_error() => "bad_request",
        _ => "internal",
    };
    let message = match (status, detail.is_empty()) {
        (StatusCode::SERVICE_UNAVAILABLE, _) => {
            "the service did not answer in time; a registration may still have been stored, \
             so look it up before sending it again"
                .into()
        }
        (StatusCode::PAYLOAD_TOO_LARGE, _) => {
            "the request body is larger than this endpoint accepts".into()
        }
        (_, false) => detail,
        (_, true) => status.canonical_reason().unwrap_or("error").to_string(),
    };
    let body = json!({"error": {"code": code, "message": message}}).to_string();
    let mut response = Response::from_parts(parts, Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/json".parse().expect("static header"),
    );
    response.headers_mut().remove(header::CONTENT_LENGTH);
    response
}
