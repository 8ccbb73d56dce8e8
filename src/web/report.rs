//! The comparison report page: two prints (uploaded or registered) compared by the verifier,
//! drawn side by side with their matched regions, inks and, for registered ones, the log
//! proofs. The page is self-contained (images inlined), so "save" is the export.

use std::sync::Arc;

use axum::extract::{Multipart, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use minijinja::{Value, context};
use serde::Deserialize;

use super::Page;
use crate::api::auth::Permission;
use crate::api::blocking;
use crate::api::form::{FormSpec, read_form};
use crate::decode::decode;
use crate::engine::{Engine, analyze};
use crate::ledger::InclusionProof;
use crate::registry::PatternRecord;
use crate::report::comparison;
use crate::search::orientation_words;

/// One side of the comparison, resolved.
struct Side {
    pixels: image::RgbImage,
    features: crate::features::FeatureSet,
    pattern: Option<PatternRecord>,
    proof: Option<InclusionProof>,
    /// "A" or "B" and the title or file name.
    label: String,
}

enum Source {
    Upload { bytes: Vec<u8>, name: String },
    Registered(String),
}

impl Source {
    fn resolve(self, engine: &Engine, letter: &str) -> crate::Result<Side> {
        match self {
            Source::Upload { bytes, name } => {
                let pixels = decode(&bytes)?.pixels;
                Ok(Side {
                    features: analyze(&bytes)?.features,
                    pixels,
                    pattern: None,
                    proof: None,
                    label: format!("{letter}: {name}"),
                })
            }
            Source::Registered(id) => {
                let pattern = engine.get(&id)?;
                let (bytes, _) = engine.image(&id)?;
                Ok(Side {
                    pixels: decode(&bytes)?.pixels,
                    features: engine.features_of(&id)?,
                    proof: Some(engine.registry().proof(&id)?),
                    label: format!(
                        "{letter}: {} {}",
                        pattern.registration_number, pattern.title
                    ),
                    pattern: Some(pattern),
                })
            }
        }
    }
}

#[derive(Deserialize)]
pub struct Ids {
    a: Option<String>,
    b: Option<String>,
}

/// `GET /compare/report?a=ID&b=ID`: two registered patterns.
pub async fn for_registered(
    State(engine): State<Arc<Engine>>,
    page: Page,
    Query(ids): Query<Ids>,
) -> Response {
    if let Some(refusal) = page.refuse_unless(Permission::Compare, "/compare") {
        return refusal;
    }
    let (Some(a), Some(b)) = (ids.a, ids.b) else {
        return page.message(StatusCode::BAD_REQUEST, "give two pattern ids: ?a=ID&b=ID");
    };
    render(engine, page, Source::Registered(a), Source::Registered(b)).await
}

/// `POST /compare/report`: the compare form, each side a file `a`/`b` or an id `a_id`/`b_id`.
pub async fn for_uploads(
    State(engine): State<Arc<Engine>>,
    page: Page,
    multipart: Multipart,
) -> Response {
    if let Some(refusal) = page.refuse_unless(Permission::Compare, "/compare") {
        return refusal;
    }
    let spec = FormSpec {
        files: &["a", "b"],
        texts: &["a_id", "b_id"],
        max_files: 2,
    };
    let form = match read_form(multipart, &spec).await {
        Ok(form) => form,
        Err(error) => return page.message(error.status, &error.message),
    };
    let mut sources = Vec::new();
    for (file, id) in [("a", "a_id"), ("b", "b_id")] {
        let uploaded = form.file(file).filter(|bytes| !bytes.is_empty());
        let registered = form.text(id).map(str::trim).filter(|id| !id.is_empty());
        match (uploaded, registered) {
            (Some(bytes), None) => sources.push(Source::Upload {
                bytes: bytes.to_vec(),
                name: form.file_name(file).unwrap_or(file).to_string(),
            }),
            (None, Some(id)) => sources.push(Source::Registered(id.to_string())),
            _ => {
                return page.message(
                    StatusCode::BAD_REQUEST,
                    &format!("give either a file or a registered id for print {file}, not both"),
                );
            }
        }
    }
    let b = sources.pop().expect("two sources");
    let a = sources.pop().expect("two sources");
    render(engine, page, a, b).await
}

async fn render(engine: Arc<Engine>, page: Page, a: Source, b: Source) -> Response {
    let lang = page.lang;
    let built = blocking(move || -> crate::Result<Value> {
        let (a, b) = rayon::join(|| a.resolve(&engine, "A"), || b.resolve(&engine, "B"));
        let (a, b) = (a?, b?);
        let (a_id, b_id) = (
            a.pattern.as_ref().map(|p| p.id.as_str()),
            b.pattern.as_ref().map(|p| p.id.as_str()),
        );
        let comparison = engine.compare(&a.features, a_id, &b.features, b_id)?;
        let layout = comparison::layout(&a.pixels, &b.pixels, &comparison);
        let composite = comparison::composite_png(&layout);
        let explanation = &comparison.explanation;
        let side = |side: &Side, shown: &image::RgbImage| {
            context! {
                label => &side.label,
                image => data_uri(&comparison::png_of(shown)),
                width => shown.width(),
                height => shown.height(),
                pattern => &side.pattern,
                proof => &side.proof,
                proof_json => side.proof.as_ref().map(|p| serde_json::to_string_pretty(p).expect("proofs serialise")),
                signed_at => side.proof.as_ref().and_then(|p| chrono::DateTime::from_timestamp_millis(p.signed_head.timestamp as i64)).map(|t| t.to_rfc3339()),
            }
        };
        Ok(context! {
            a => side(&a, &layout.a),
            b => side(&b, &layout.b),
            b_left => layout.b_left,
            width => layout.width,
            height => layout.height,
            regions => &layout.regions,
            composite => data_uri(&composite),
            palette => &explanation.palette,
            score => comparison.score,
            copy => comparison.copy,
            summary => explanation.reading.sentence(lang),
            orientation => orientation_words(explanation.orientation, lang),
            signals => explanation.signals.iter().map(|signal| context! {
                name => signal.name,
                similarity => signal.similarity,
                detail => signal.finding.sentence(lang),
            }).collect::<Vec<_>>(),
            made_at => chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
    })
    .await;
    match built {
        Ok(report) => page.render("report.html", "report", report),
        Err(error) => page.message(error.status, &error.message),
    }
}

/// Our own base64 (no user text), kept as is rather than entity-escaped.
fn data_uri(png: &[u8]) -> Value {
    Value::from_safe_string(format!("data:image/png;base64,{}", BASE64.encode(png)))
}
