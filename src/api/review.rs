//! The registration desk: the queue of registrations held as possible copies, and clerks'
//! decisions on a pattern's status, each logged with its reason.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::ApiError;
use super::handlers::{AppState, audited, blocking};
use crate::registry::Status;

pub async fn queue(State(engine): AppState) -> Result<Response, ApiError> {
    let queue = blocking(move || engine.registry().review_queue()).await?;
    let queue: Vec<Value> = queue
        .into_iter()
        .map(|(pattern, matches)| json!({"pattern": pattern, "matches": matches}))
        .collect();
    Ok(Json(json!({"pending": queue})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    status: String,
    #[serde(default)]
    reason: String,
}

/// Most characters a reason may have.
const MAX_REASON: usize = 2000;

pub async fn decide(
    State(engine): AppState,
    caller: Caller,
    Path(id): Path<String>,
    decision: Result<Json<Decision>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(decision) = decision.map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!(
                "send JSON {{\"status\": \"...\", \"reason\": \"...\"}}: {}",
                e.body_text()
            ),
        )
    })?;
    let status: Status = decision.status.parse()?;
    let reason = decision.reason.trim().to_string();
    if reason.is_empty() && status != Status::Registered {
        return Err(ApiError::bad_request(
            "missing_reason",
            "say why: a rejection or a public-domain filing needs a reason",
        ));
    }
    if reason.chars().count() > MAX_REASON {
        return Err(ApiError::bad_request(
            "invalid_reason",
            format!("a reason has at most {MAX_REASON} characters"),
        ));
    }
    let detail = format!("{id} -> {}: {reason}", status.as_str());
    let actor = caller.name.clone();
    let record = blocking(move || engine.set_status(&id, status, &reason, &actor)).await?;
    Ok(audited(Json(record).into_response(), detail))
}
