//! The registry, huaxing's source of truth: an embedded SQLite database (WAL, synchronous=FULL,
//! so a committed registration survives a crash) holding each pattern's record and features,
//! and a content-addressed store of the original uploads.

pub mod blobs;

use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::features::FeatureSet;
pub use blobs::{BlobStore, sha256_hex};

/// Where a pattern stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Registered and published.
    Registered,
    /// A reserved, time-stamped entry for a design not yet published.
    PreRegistered,
    /// Filed as public domain: searchable, protectable by nobody.
    PublicDomain,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Registered => "registered",
            Status::PreRegistered => "pre_registered",
            Status::PublicDomain => "public_domain",
        }
    }
}

impl FromStr for Status {
    type Err = Error;

    fn from_str(text: &str) -> Result<Status> {
        match text {
            "registered" => Ok(Status::Registered),
            "pre_registered" => Ok(Status::PreRegistered),
            "public_domain" => Ok(Status::PublicDomain),
            other => Err(Error::bad_input(
                "invalid_status",
                format!("status {other:?} is not one of registered, pre_registered, public_domain"),
            )),
        }
    }
}

/// A registered pattern as the registry keeps it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PatternRecord {
    /// Internal sequence number, also the key of the indexes.
    #[serde(skip)]
    pub seq: u64,
    /// Derived from the decoded pixels: the same picture always has the same id.
    pub id: String,
    pub registration_number: String,
    pub title: String,
    pub owner: String,
    pub reference: String,
    pub status: Status,
    /// RFC 3339, UTC.
    pub registered_at: String,
    /// SHA-256 of the upload as sent.
    pub sha256: String,
    pub media_type: String,
    pub width: u32,
    pub height: u32,
}

/// What a registration stores.
pub struct NewPattern {
    pub id: String,
    pub title: String,
    pub owner: String,
    pub reference: String,
    pub status: Status,
    pub sha256: String,
    pub media_type: String,
    pub width: u32,
    pub height: u32,
    pub feature_version: u32,
    pub features: FeatureSet,
}

/// Features as stored, with the version that made them.
pub struct StoredFeatures {
    pub seq: u64,
    pub sha256: String,
    pub feature_version: u32,
    pub bytes: Vec<u8>,
}

pub struct Registry {
    connection: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS patterns (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    owner TEXT NOT NULL,
    reference TEXT NOT NULL,
    status TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    media_type TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    feature_version INTEGER NOT NULL,
    features BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS patterns_by_sha256 ON patterns(sha256);
";

const COLUMNS: &str =
    "seq, id, title, owner, reference, status, registered_at, sha256, media_type, width, height";

impl Registry {
    pub fn open(path: &Path) -> Result<Registry> {
        let connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.busy_timeout(std::time::Duration::from_secs(10))?;
        connection.execute_batch(SCHEMA)?;
        Ok(Registry {
            connection: Mutex::new(connection),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let connection = self.connection.lock().expect("registry lock");
        Ok(f(&connection)?)
    }

    pub fn count(&self) -> Result<u64> {
        self.with(|c| c.query_row("SELECT COUNT(*) FROM patterns", [], |r| r.get(0)))
    }

    pub fn find_by_id(&self, id: &str) -> Result<Option<PatternRecord>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM patterns WHERE id = ?1"),
                [id],
                record,
            )
            .optional()
        })
    }

    pub fn find_by_seq(&self, seq: u64) -> Result<Option<PatternRecord>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM patterns WHERE seq = ?1"),
                [seq],
                record,
            )
            .optional()
        })
    }

    /// A pattern registered from exactly these upload bytes, if any.
    pub fn find_by_upload(&self, sha256: &str) -> Result<Option<PatternRecord>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM patterns WHERE sha256 = ?1 LIMIT 1"),
                [sha256],
                record,
            )
            .optional()
        })
    }

    /// Patterns in registration order.
    pub fn list(&self, offset: u64, limit: u64) -> Result<Vec<PatternRecord>> {
        self.with(|c| {
            let mut statement = c.prepare(&format!(
                "SELECT {COLUMNS} FROM patterns ORDER BY seq LIMIT ?1 OFFSET ?2"
            ))?;
            statement.query_map([limit, offset], record)?.collect()
        })
    }

    /// Stores a new pattern, committed durably before it returns. When a pattern with the same
    /// id exists, nothing is written and the existing record comes back with `false`.
    pub fn insert(&self, new: &NewPattern) -> Result<(PatternRecord, bool)> {
        let registered_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let inserted = self.with(|c| {
            c.execute(
                "INSERT INTO patterns (id, title, owner, reference, status, registered_at, sha256,
                     media_type, width, height, feature_version, features)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT(id) DO NOTHING",
                params![
                    new.id,
                    new.title,
                    new.owner,
                    new.reference,
                    new.status.as_str(),
                    registered_at,
                    new.sha256,
                    new.media_type,
                    new.width,
                    new.height,
                    new.feature_version,
                    new.features.to_bytes(),
                ],
            )
        })?;
        let record = self
            .find_by_id(&new.id)?
            .ok_or_else(|| Error::Integrity(format!("pattern {} vanished after insert", new.id)))?;
        Ok((record, inserted == 1))
    }

    /// Every pattern's stored features, in registration order.
    pub fn all_features(&self) -> Result<Vec<StoredFeatures>> {
        self.with(|c| {
            let mut statement = c.prepare(
                "SELECT seq, sha256, feature_version, features FROM patterns ORDER BY seq",
            )?;
            statement
                .query_map([], |r| {
                    Ok(StoredFeatures {
                        seq: r.get(0)?,
                        sha256: r.get(1)?,
                        feature_version: r.get(2)?,
                        bytes: r.get(3)?,
                    })
                })?
                .collect()
        })
    }

    /// Replaces a pattern's features after re-extraction with a newer extractor version.
    pub fn update_features(
        &self,
        seq: u64,
        feature_version: u32,
        features: &FeatureSet,
    ) -> Result<()> {
        self.with(|c| {
            c.execute(
                "UPDATE patterns SET feature_version = ?1, features = ?2 WHERE seq = ?3",
                params![feature_version, features.to_bytes(), seq],
            )
        })?;
        Ok(())
    }
}

/// `HX-<year of registration>-<sequence number>`, human-readable and sequential.
fn registration_number(seq: u64, registered_at: &str) -> String {
    format!("HX-{}-{seq:06}", registered_at.get(..4).unwrap_or("0000"))
}

fn record(row: &Row) -> rusqlite::Result<PatternRecord> {
    let seq: u64 = row.get(0)?;
    let registered_at: String = row.get(6)?;
    let status: String = row.get(5)?;
    Ok(PatternRecord {
        seq,
        id: row.get(1)?,
        registration_number: registration_number(seq, &registered_at),
        title: row.get(2)?,
        owner: row.get(3)?,
        reference: row.get(4)?,
        status: status.parse().map_err(|e: Error| {
            rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Text, Box::new(e))
        })?,
        registered_at,
        sha256: row.get(7)?,
        media_type: row.get(8)?,
        width: row.get(9)?,
        height: row.get(10)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_pattern(id: &str) -> NewPattern {
        NewPattern {
            id: id.into(),
            title: "Peonies".into(),
            owner: "Shaoxing Prints Co.".into(),
            reference: "SP-1".into(),
            status: Status::Registered,
            sha256: sha256_hex(id.as_bytes()),
            media_type: "image/png".into(),
            width: 10,
            height: 20,
            feature_version: 1,
            features: FeatureSet::default(),
        }
    }

    #[test]
    fn registration_numbers_are_sequential_and_ids_unique() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(&dir.path().join("registry.sqlite")).unwrap();
        let (first, created) = registry.insert(&new_pattern("a")).unwrap();
        assert!(created);
        let (second, _) = registry.insert(&new_pattern("b")).unwrap();
        assert!(first.registration_number.starts_with("HX-20"));
        assert!(first.registration_number.ends_with("-000001"));
        assert!(second.registration_number.ends_with("-000002"));
        let (again, created) = registry.insert(&new_pattern("a")).unwrap();
        assert!(!created);
        assert_eq!(again, first);
        assert_eq!(registry.count().unwrap(), 2);
        assert_eq!(registry.list(1, 10).unwrap(), vec![second]);
    }

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.sqlite");
        let (record, _) = Registry::open(&path)
            .unwrap()
            .insert(&new_pattern("x"))
            .unwrap();
        let reopened = Registry::open(&path).unwrap();
        assert_eq!(reopened.find_by_id("x").unwrap(), Some(record.clone()));
        assert_eq!(
            reopened.find_by_upload(&record.sha256).unwrap(),
            Some(record)
        );
        let stored = reopened.all_features().unwrap();
        assert_eq!((stored.len(), stored[0].feature_version), (1, 1));
        assert_eq!(
            FeatureSet::from_bytes(&stored[0].bytes).unwrap(),
            FeatureSet::default()
        );
    }
}
