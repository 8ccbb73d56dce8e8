//! Administration: API tokens and the audit trail.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::handlers::{AppState, Page, audited, blocking};
use crate::registry::Role;
use crate::registry::tokens::new_secret;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    role: String,
    name: String,
}

pub async fn create_token(
    State(engine): AppState,
    body: Result<Json<NewToken>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(new) = body.map_err(|e| {
        ApiError::bad_request(
            "invalid_body",
            format!(
                "send JSON {{\"role\": \"clerk\", \"name\": \"...\"}}: {}",
                e.body_text()
            ),
        )
    })?;
    let role: Role = new.role.parse()?;
    let name = new.name.trim().to_string();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::bad_request(
            "invalid_name",
            "a token needs a name of 1 to 100 characters",
        ));
    }
    let detail = format!("created a {} token named {name}", role.as_str());
    let (secret, info) = blocking(move || {
        let secret = new_secret()?;
        let info = engine.registry().create_token(&secret, &name, role)?;
        Ok((secret, info))
    })
    .await?;
    let body = json!({"token": secret, "id": info.id, "name": info.name, "role": info.role, "created_at": info.created_at});
    Ok(audited(
        (StatusCode::CREATED, Json(body)).into_response(),
        detail,
    ))
}

pub async fn list_tokens(State(engine): AppState) -> Result<Response, ApiError> {
    let tokens = blocking(move || engine.registry().tokens()).await?;
    Ok(Json(json!({"tokens": tokens})).into_response())
}

pub async fn delete_token(
    State(engine): AppState,
    Path(id): Path<u64>,
) -> Result<Response, ApiError> {
    let deleted = blocking(move || engine.registry().delete_token(id)).await?;
    if !deleted {
        return Err(crate::Error::NotFound {
            what: format!("token {id}"),
        }
        .into());
    }
    Ok(audited(
        StatusCode::NO_CONTENT.into_response(),
        format!("revoked token {id}"),
    ))
}

pub async fn audit_trail(
    State(engine): AppState,
    Query(page): Query<Page>,
) -> Result<Response, ApiError> {
    let (offset, limit) = page.checked()?;
    let records = blocking(move || engine.audit().list(offset, limit)).await?;
    Ok(Json(json!({"records": records, "offset": offset, "limit": limit})).into_response())
}
