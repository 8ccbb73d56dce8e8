//! The library's one error type. Each variant says whose fault it is, so the HTTP layer can map
//! it to a status once (see `api::error`) and the CLI can print it as it is.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller sent something unusable: a broken image, a missing or unknown field.
    #[error("{message}")]
    BadInput { code: &'static str, message: String },
    /// The caller sent something larger than the service accepts.
    #[error("{message}")]
    TooLarge { message: String },
    /// The caller sent a format or pixel layout huaxing does not read.
    #[error("{message}")]
    Unsupported { message: String },
    /// The caller asked for something that does not exist.
    #[error("{what} not found")]
    NotFound { what: String },
    /// The caller asked for a change the thing's current state does not allow.
    #[error("{message}")]
    Conflict { message: String },
    /// Another huaxing process holds the data directory.
    #[error(
        "data directory {} is in use by another huaxing process (stop it, or use its HTTP API)",
        path.display()
    )]
    Locked { path: PathBuf },
    /// Stored data is inconsistent or unreadable: the service's fault, never the caller's.
    #[error("stored data is inconsistent: {0}")]
    Integrity(String),
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("registry database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("index error: {0}")]
    Index(String),
}

impl Error {
    pub fn bad_input(code: &'static str, message: impl Into<String>) -> Self {
        Error::BadInput {
            code,
            message: message.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// True when the error is the caller's fault (a 4xx answer), false when it is ours.
    pub fn is_callers_fault(&self) -> bool {
        matches!(
            self,
            Error::BadInput { .. }
                | Error::TooLarge { .. }
                | Error::Unsupported { .. }
                | Error::NotFound { .. }
                | Error::Conflict { .. }
        )
    }
}
