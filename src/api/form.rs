//! Reads multipart forms strictly: only the fields an endpoint names, files no larger than
//! the upload limit, short text fields, and a clear error for anything else.

use std::collections::HashMap;

use axum::extract::Multipart;
use axum::extract::multipart::MultipartError;
use axum::http::StatusCode;

use super::error::ApiError;
use crate::decode::MAX_UPLOAD_BYTES;

const MAX_TEXT_BYTES: usize = 4096;

/// The fields an endpoint accepts.
pub struct FormSpec {
    pub files: &'static [&'static str],
    pub texts: &'static [&'static str],
    pub max_files: usize,
}

#[derive(Default)]
pub struct Form {
    /// (field name, bytes) in the order sent.
    pub files: Vec<(String, Vec<u8>)>,
    pub texts: HashMap<String, String>,
    /// File field name → the file name the client gave, when it gave one.
    pub file_names: HashMap<String, String>,
}

impl Form {
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, bytes)| bytes.as_slice())
    }

    pub fn file_name(&self, name: &str) -> Option<&str> {
        self.file_names.get(name).map(String::as_str)
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.texts.get(name).map(String::as_str)
    }

    /// The named file, or a 400 that says it is missing.
    pub fn required_file(&self, name: &str) -> Result<&[u8], ApiError> {
        self.file(name).ok_or_else(|| {
            ApiError::bad_request(
                "missing_field",
                format!("the form has no file field {name:?}"),
            )
        })
    }
}

pub async fn read_form(mut multipart: Multipart, spec: &FormSpec) -> Result<Form, ApiError> {
    let mut form = Form::default();
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        if let Some(file_name) = field.file_name().filter(|f| !f.is_empty()) {
            form.file_names.insert(name.clone(), file_name.to_string());
        }
        let is_file = spec.files.contains(&name.as_str());
        if !is_file && !spec.texts.contains(&name.as_str()) {
            let mut accepted: Vec<&str> = spec.files.to_vec();
            accepted.extend(spec.texts);
            return Err(ApiError::bad_request(
                "unknown_field",
                format!(
                    "unexpected form field {name:?}; this endpoint takes {}",
                    accepted.join(", ")
                ),
            ));
        }
        let limit = if is_file {
            MAX_UPLOAD_BYTES
        } else {
            MAX_TEXT_BYTES
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            if bytes.len() + chunk.len() > limit {
                return Err(ApiError {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    code: "too_large",
                    message: format!("field {name:?} is larger than {limit} bytes"),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        if is_file {
            if form.files.len() == spec.max_files {
                return Err(ApiError::bad_request(
                    "too_many_files",
                    match spec.max_files {
                        1 => "one image per request".to_string(),
                        most => format!("at most {most} files per request"),
                    },
                ));
            }
            form.files.push((name, bytes));
        } else {
            let text = String::from_utf8(bytes).map_err(|_| {
                ApiError::bad_request("invalid_field", format!("field {name:?} is not UTF-8 text"))
            })?;
            form.texts.insert(name, text.trim().to_string());
        }
    }
    Ok(form)
}

fn multipart_error(error: MultipartError) -> ApiError {
    let status = error.status();
    ApiError {
        status,
        code: if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "invalid_form"
        },
        message: error.body_text(),
    }
}
