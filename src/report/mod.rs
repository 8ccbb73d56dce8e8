//! Evidence rendered for people: the printable registration certificate and the court's
//! comparison report. Templates are compiled into the binary and auto-escaped, so titles and
//! owners typed by users cannot inject markup.

pub mod comparison;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use minijinja::{Environment, Value, context};

use crate::engine::Certificate;
use crate::error::{Error, Result};

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.add_template(
        "certificate.html",
        include_str!("templates/certificate.html"),
    )
    .expect("the certificate template parses");
    env
}

/// The certificate as one self-contained HTML page: `image_png` (a reduced rendition of the
/// registered upload) is inlined, and the proof is included in full for offline checking.
pub fn certificate_html(certificate: &Certificate, image_png: &[u8]) -> Result<String> {
    let head = &certificate.proof.signed_head;
    let signed_at = chrono::DateTime::from_timestamp_millis(head.timestamp as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    let proof_json = serde_json::to_string_pretty(&certificate.proof).expect("proofs serialise");
    environment()
        .get_template("certificate.html")
        .expect("template is registered")
        .render(context! {
            pattern => &certificate.pattern,
            pixel_hash => &certificate.pixel_hash,
            entries => &certificate.entries,
            proof => &certificate.proof,
            signed_at => signed_at,
            public_key => &certificate.public_key,
            issued_at => &certificate.issued_at,
            // Our own base64 (no user text), kept as is rather than entity-escaped.
            image => Value::from_safe_string(format!(
                "data:image/png;base64,{}",
                BASE64.encode(image_png)
            )),
            proof_json => proof_json,
        })
        .map_err(|e| Error::Integrity(format!("cannot render the certificate: {e}")))
}
