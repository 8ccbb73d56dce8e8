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

use super::auth::{AuditDetail, Caller};
use super::error::ApiError;
use super::form::{FormSpec, read_form};
use crate::engine::{Engine, Match, PatternMeta, analyze};
use crate::features::FeatureSet;
use crate::registry::{PatternRecord, Status, sha256_hex};

/// Most results a search may ask for.
const MAX_K: usize = 100;
/// Most images in one batch search.
pub const MAX_BATCH: usize = 64;

pub(super) type AppState = State<Arc<Engine>>;

/// Runs blocking engine work off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
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

pub async fn register(
    State(engine): AppState,
    caller: Caller,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    let spec = FormSpec {
        files: &["image"],
        texts: &["title", "owner", "reference", "status"],
        max_files: 1,
    };
    let form = read_form(multipart, &spec).await?;
    let status = match form.text("status") {
        None | Some("") => None,
        Some(text) => Some(text.parse()?),
    };
    store(engine, &caller, form, status).await
}

/// A merchant's reservation of an unpublished, time-stamped entry for a design.
pub async fn pre_register(
    State(engine): AppState,
    caller: Caller,
    multipart: Multipart,
) -> Result<Response, ApiError> {
    let spec = FormSpec {
        files: &["image"],
        texts: &["title", "owner", "reference"],
        max_files: 1,
    };
    let form = read_form(multipart, &spec).await?;
    store(engine, &caller, form, Some(Status::PreRegistered)).await
}

async fn store(
    engine: Arc<Engine>,
    caller: &Caller,
    form: super::form::Form,
    status: Option<Status>,
) -> Result<Response, ApiError> {
    let bytes = form.required_file("image")?.to_vec();
    let meta = PatternMeta {
        title: form.text("title").unwrap_or_default().to_string(),
        owner: form.text("owner").unwrap_or_default().to_string(),
        reference: form.text("reference").unwrap_or_default().to_string(),
        status,
        submitted_by: caller.name.clone(),
    };
    let registration = blocking(move || engine.register(&bytes, meta)).await?;
    let status = if registration.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let detail = format!(
        "{} sha256 {} -> {}",
        registration.pattern.id,
        registration.pattern.sha256,
        registration.pattern.status.as_str()
    );
    let body = if caller.is_merchant() {
        // A merchant learns nothing of a picture someone else registered: not its owner,
        // not even that an unpublished draft of it exists.
        if !registration.created {
            visible(caller, registration.pattern.clone()).map_err(|_| {
                ApiError::from(crate::Error::Conflict {
                    message: "this picture is already registered by someone else".into(),
                })
            })?;
        }
        let mut body = view(caller, &registration.pattern);
        body["duplicates"] = matches_seen_by(caller, &registration.duplicates);
        body
    } else {
        serde_json::to_value(&registration).expect("registrations serialise")
    };
    Ok(audited((status, Json(body)).into_response(), detail))
}

pub async fn get_pattern(
    State(engine): AppState,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = blocking(move || engine.get(&id)).await?;
    let record = visible(&caller, record)?;
    Ok(Json(view(&caller, &record)).into_response())
}

pub async fn get_image(
    State(engine): AppState,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (bytes, media_type) = blocking(move || engine.image(&id)).await?;
    Ok(([(header::CONTENT_TYPE, media_type)], bytes).into_response())
}

/// A PNG no larger than this on either side: enough to recognise a print, too small to
/// reprint it.
const THUMBNAIL_SIDE: u32 = 256;

pub async fn get_thumbnail(
    State(engine): AppState,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let png = blocking(move || {
        let record = engine.get(&id)?;
        Ok((record, engine.thumbnail(&id, THUMBNAIL_SIDE)?))
    })
    .await
    .and_then(|(record, png)| visible(&caller, record).map(|_| png))?;
    Ok(([(header::CONTENT_TYPE, "image/png")], png).into_response())
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

impl Page {
    /// (offset, limit) once both are in range.
    pub(super) fn checked(&self) -> Result<(u64, u64), ApiError> {
        if self.limit == 0 || self.limit > 1000 {
            return Err(ApiError::bad_request(
                "invalid_limit",
                "limit must be between 1 and 1000",
            ));
        }
        if self.offset > i64::MAX as u64 {
            return Err(ApiError::bad_request(
                "invalid_offset",
                "offset is too large",
            ));
        }
        Ok((self.offset, self.limit))
    }
}

pub async fn list_patterns(
    State(engine): AppState,
    caller: Caller,
    Query(page): Query<Page>,
) -> Result<Response, ApiError> {
    let (offset, limit) = page.checked()?;
    let visible_to = caller.is_merchant().then(|| caller.name.clone());
    let (patterns, total) =
        blocking(move || engine.registry().list(offset, limit, visible_to.as_deref())).await?;
    let patterns: Vec<Value> = patterns.iter().map(|p| view(&caller, p)).collect();
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
    caller: Caller,
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
    let detail = format!("sha256 {}", sha256_hex(&bytes));
    let started = Instant::now();
    let matches = blocking(move || engine.search(&analyze(&bytes)?.features, k)).await?;
    let took_ms = started.elapsed().as_secs_f64() * 1000.0;
    let matches = matches_seen_by(&caller, &matches);
    let response = Json(json!({"matches": matches, "took_ms": took_ms})).into_response();
    Ok(audited(response, detail))
}

pub async fn search_batch(
    State(engine): AppState,
    caller: Caller,
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
    let detail = format!("{} images", uploads.len());
    let started = Instant::now();
    let answers = blocking(move || Ok(engine.search_batch(&uploads, k))).await?;
    let results: Vec<Value> = answers
        .into_iter()
        .map(|answer| match answer {
            Ok(matches) => json!({"matches": matches_seen_by(&caller, &matches)}),
            Err(error) => {
                let error = ApiError::from(error);
                json!({"matches": [], "error": {"code": error.code, "message": error.message}})
            }
        })
        .collect();
    let took_ms = started.elapsed().as_secs_f64() * 1000.0;
    let response = Json(json!({"results": results, "took_ms": took_ms})).into_response();
    Ok(audited(response, detail))
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
        let (a_id, b_id) = (a_pattern["id"].as_str(), b_pattern["id"].as_str());
        let comparison = engine.compare(&a_features, a_id, &b_features, b_id)?;
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
                engine.features_of(id)?,
                serde_json::to_value(engine.get(id)?).expect("records serialise"),
            )),
        }
    }
}

/// Fields a merchant may see of a pattern or a match: no owner, no upload hash, no reference.
const MERCHANT_FIELDS: &[&str] = &[
    "id",
    "registration_number",
    "title",
    "status",
    "registered_at",
    "width",
    "height",
    "score",
    "copy",
    "explanation",
    "note",
];

/// A record as this caller may see it.
pub fn view(caller: &Caller, record: &PatternRecord) -> Value {
    let mut value = serde_json::to_value(record).expect("records serialise");
    if caller.is_merchant() {
        keep_merchant_fields(&mut value);
    }
    value
}

/// The record, or not found when the caller may not see it.
fn visible(caller: &Caller, record: PatternRecord) -> Result<PatternRecord, ApiError> {
    if caller.may_see(&record) {
        Ok(record)
    } else {
        Err(ApiError::from(crate::Error::NotFound {
            what: format!("pattern {}", record.id),
        }))
    }
}

fn keep_merchant_fields(value: &mut Value) {
    if let Value::Object(fields) = value {
        fields.retain(|name, _| MERCHANT_FIELDS.contains(&name.as_str()));
    }
}

/// Matches as this caller may see them.
fn matches_seen_by(caller: &Caller, matches: &[Match]) -> Value {
    let mut value = serde_json::to_value(matches).expect("matches serialise");
    if let (true, Value::Array(matches)) = (caller.is_merchant(), &mut value) {
        matches.iter_mut().for_each(keep_merchant_fields);
    }
    value
}

/// Attaches what the audit trail should say about this request beyond its route.
pub fn audited(mut response: Response, detail: String) -> Response {
    response.extensions_mut().insert(AuditDetail(detail));
    response
}
