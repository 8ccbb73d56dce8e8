//! Request handlers: each translates HTTP into one engine call and back. CPU work runs on the
//! blocking pool, never on the async runtime.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::form::{FormSpec, read_form};
use crate::engine::{Engine, PatternMeta, analyze};
use crate::features::FeatureSet;

/// Most results a search may ask for.
const MAX_K: usize = 100;
/// Most images in one batch search.
pub const MAX_BATCH: usize = 64;

type AppState = State<Arc<Engine>>;

/// Runs blocking engine work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::from(crate::Error::Index(format!("worker failed: {e}"))))?
        .map_err(ApiError::from)
}

pub async fn healthz(State(engine): AppState) -> Result<Json<Value>, ApiError> {
    let patterns = blocking(move || engine.count()).await?;
    Ok(Json(json!({"status": "ok", "patterns": patterns})))
}

pub async fn register(State(engine): AppState, multipart: Multipart) -> Result<Response, ApiError> {
    let spec = FormSpec {
        files: &["image"],
        texts: &["title", "owner", "reference", "status"],
        max_files: 1,
    };
    let form = read_form(multipart, &spec).await?;
    let bytes = form.required_file("image")?.to_vec();
    let meta = PatternMeta {
        title: form.text("title").unwrap_or_default().to_string(),
        owner: form.text("owner").unwrap_or_default().to_string(),
        reference: form.text("reference").unwrap_or_default().to_string(),
        status: match form.text("status") {
            None | Some("") => None,
            Some(text) => Some(text.parse()?),
        },
    };
    let registration = blocking(move || engine.register(&bytes, meta)).await?;
    let status = if registration.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(registration)).into_response())
}

pub async fn get_pattern(
    State(engine): AppState,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = blocking(move || engine.get(&id)).await?;
    Ok(Json(record).into_response())
}

pub async fn get_image(
    State(engine): AppState,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (bytes, media_type) = blocking(move || engine.image(&id)).await?;
    Ok(([(header::CONTENT_TYPE, media_type)], bytes).into_response())
}

#[derive(Deserialize)]
pub struct Page {
    #[serde(default)]
    offset: u64,
    #[serde(default = "default_limit")]
    limit: u64,
}

fn default_limit() -> u64 {
    50
}

pub async fn list_patterns(
    State(engine): AppState,
    Query(page): Query<Page>,
) -> Result<Response, ApiError> {
    if page.limit == 0 || page.limit > 1000 {
        return Err(ApiError::bad_request(
            "invalid_limit",
            "limit must be between 1 and 1000",
        ));
    }
    if page.offset > i64::MAX as u64 {
        return Err(ApiError::bad_request(
            "invalid_offset",
            "offset is too large",
        ));
    }
    let (offset, limit) = (page.offset, page.limit);
    let (patterns, total) =
        blocking(move || Ok((engine.list(offset, limit)?, engine.count()?))).await?;
    Ok(
        Json(json!({"patterns": patterns, "total": total, "offset": offset, "limit": limit}))
            .into_response(),
    )
}

#[derive(Deserialize)]
pub struct SearchParams {
    #[serde(default = "default_k")]
    k: usize,
}

fn default_k() -> usize {
    10
}

fn check_k(k: usize) -> Result<usize, ApiError> {
    if k == 0 || k > MAX_K {
        return Err(ApiError::bad_request(
            "invalid_k",
            format!("k must be between 1 and {MAX_K}"),
        ));
    }
    Ok(k)
}

pub async fn search(
    State(engine): AppState,
    Query(params): Query<SearchParams>,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    let spec = FormSpec {
        files: &["image"],
        texts: &[],
        max_files: 1,
    };
    // The form is read before `k` is judged, so the client gets the answer rather than a
    // connection closed under its upload (a `k` that is not a number is refused earlier).
    let form = read_form(multipart, &spec).await?;
    let k = check_k(params.k)?;
    let bytes = form.required_file("image")?.to_vec();
    let started = Instant::now();
    let matches = blocking(move || engine.search(&analyze(&bytes)?.features, k)).await?;
    let took_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(Json(json!({"matches": matches, "took_ms": took_ms})).into_response())
}

pub async fn search_batch(
    State(engine): AppState,
    Query(params): Query<SearchParams>,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    let spec = FormSpec {
        files: &["image"],
        texts: &[],
        max_files: MAX_BATCH,
    };
    let form = read_form(multipart, &spec).await?;
    let k = check_k(params.k)?;
    if form.files.is_empty() {
        return Err(ApiError::bad_request(
            "missing_field",
            "the form has no file field \"image\"",
        ));
    }
    let uploads: Vec<Vec<u8>> = form.files.into_iter().map(|(_, bytes)| bytes).collect();
    let started = Instant::now();
    let answers = blocking(move || Ok(engine.search_batch(&uploads, k))).await?;
    let results: Vec<Value> = answers
        .into_iter()
        .map(|answer| match answer {
            Ok(matches) => json!({"matches": matches}),
            Err(error) => {
                let error = ApiError::from(error);
                json!({"matches": [], "error": {"code": error.code, "message": error.message}})
            }
        })
        .collect();
    let took_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(Json(json!({"results": results, "took_ms": took_ms})).into_response())
}

pub async fn compare(State(engine): AppState, multipart: Multipart) -> Result<Response, ApiError> {
    let spec = FormSpec {
        files: &["a", "b"],
        texts: &["a_id", "b_id"],
        max_files: 2,
    };
    let form = read_form(multipart, &spec).await?;
    let side = |name: &'static str| -> Result<Side, ApiError> {
        let id_field = if name == "a" { "a_id" } else { "b_id" };
        match (form.file(name), form.text(id_field)) {
            (Some(bytes), None) => Ok(Side::Upload(bytes.to_vec())),
            (None, Some(id)) if !id.is_empty() => Ok(Side::Registered(id.to_string())),
            _ => Err(ApiError::bad_request(
                "missing_field",
                format!("send either the file {name:?} or the text field {id_field:?}, not both"),
            )),
        }
    };
    let (a, b) = (side("a")?, side("b")?);
    let answer = blocking(move || {
        let (a, b) = rayon::join(|| a.resolve(&engine), || b.resolve(&engine));
        let ((a_features, a_pattern), (b_features, b_pattern)) = (a?, b?);
        let comparison = engine.compare(&a_features, &b_features);
        Ok(json!({
            "score": comparison.score,
            "copy": comparison.copy,
            "explanation": comparison.explanation,
            "a": a_pattern,
            "b": b_pattern,
        }))
    })
    .await?;
    Ok(Json(answer).into_response())
}

/// One side of a comparison: a fresh upload or a registered pattern.
enum Side {
    Upload(Vec<u8>),
    Registered(String),
}

impl Side {
    /// Its features, and its record when it is registered.
    fn resolve(&self, engine: &Engine) -> crate::Result<(FeatureSet, Value)> {
        match self {
            Side::Upload(bytes) => Ok((analyze(bytes)?.features, Value::Null)),
            Side::Registered(id) => Ok((
                engine.features_of(id)?.as_ref().clone(),
                serde_json::to_value(engine.get(id)?).expect("records serialise"),
            )),
        }
    }
}
