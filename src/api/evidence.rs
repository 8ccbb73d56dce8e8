//! Evidence handlers: the signed log's key, head and consistency proofs (public, as in
//! Certificate Transparency), and each pattern's inclusion proof and certificate.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::handlers::{AppState, audited, blocking};

/// Longest side of the image inlined in a printed certificate.
const CERTIFICATE_IMAGE_SIDE: u32 = 1024;

pub async fn log_key(State(engine): AppState) -> Response {
    Json(json!({"algorithm": "ed25519", "public_key": engine.registry().public_key()}))
        .into_response()
}

pub async fn log_head(State(engine): AppState) -> Result<Response, ApiError> {
    let head = blocking(move || engine.registry().head()).await?;
    Ok(Json(head).into_response())
}

#[derive(Deserialize)]
pub struct TreeSizes {
    first: u64,
    second: u64,
}

pub async fn log_consistency(
    State(engine): AppState,
    Query(sizes): Query<TreeSizes>,
) -> Result<Response, ApiError> {
    let (first, second) = (sizes.first, sizes.second);
    let (proof, first_root, second_root) =
        blocking(move || engine.registry().consistency(first, second)).await?;
    Ok(Json(json!({
        "first": first,
        "second": second,
        "first_root_hash": hex::encode(first_root),
        "second_root_hash": hex::encode(second_root),
        "consistency": proof.iter().map(hex::encode).collect::<Vec<_>>(),
    }))
    .into_response())
}

pub async fn proof(State(engine): AppState, Path(id): Path<String>) -> Result<Response, ApiError> {
    let proof = blocking(move || engine.registry().proof(&id)).await?;
    let detail = format!("proof of {}", proof.entry.pattern.id);
    Ok(audited(Json(proof).into_response(), detail))
}

pub async fn certificate(
    State(engine): AppState,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let certificate = blocking(move || engine.certificate(&id)).await?;
    let detail = format!("certificate of {}", certificate.pattern.id);
    Ok(audited(Json(certificate).into_response(), detail))
}

pub async fn certificate_html(
    State(engine): AppState,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (html, detail) = blocking(move || {
        let certificate = engine.certificate(&id)?;
        let image = engine.thumbnail(&id, CERTIFICATE_IMAGE_SIDE)?;
        let detail = format!("printable certificate of {}", certificate.pattern.id);
        Ok((
            crate::report::certificate_html(&certificate, &image)?,
            detail,
        ))
    })
    .await?;
    let response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    Ok(audited(response, detail))
}
