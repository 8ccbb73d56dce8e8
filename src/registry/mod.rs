//! The registry, huaxing's source of truth: an embedded SQLite database (WAL, synchronous=FULL,
//! so a committed registration survives a crash) holding each pattern's record and features,
//! and a content-addressed store of the original uploads.

pub mod audit;
pub mod blobs;
pub mod log;
pub mod tokens;

use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::features::FeatureSet;
use crate::ledger::merkle::{self, Hash};
use crate::ledger::{
    ENTRY_VERSION, EntryKind, EntryPattern, InclusionProof, LogEntry, LogKey, SignedHead,
    encode_entry_bytes,
};
pub use blobs::{BlobStore, sha256_hex};
use log::Tree;
pub use tokens::{Role, TokenInfo};

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
    /// Judged a copy of a published pattern at registration: unpublished until a clerk decides.
    PendingReview,
    /// Refused by a clerk: kept as evidence, never published.
    Rejected,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Registered,
        Status::PreRegistered,
        Status::PublicDomain,
        Status::PendingReview,
        Status::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Registered => "registered",
            Status::PreRegistered => "pre_registered",
            Status::PublicDomain => "public_domain",
            Status::PendingReview => "pending_review",
            Status::Rejected => "rejected",
        }
    }

    /// Published patterns are the ones searches return.
    pub fn is_published(self) -> bool {
        matches!(self, Status::Registered | Status::PublicDomain)
    }

    /// The log entry kind of a change from `self` to `to`, or why it is not allowed.
    fn transition(self, to: Status) -> Result<EntryKind> {
        use Status::*;
        match (self, to) {
            (PendingReview, Registered | Rejected) => Ok(EntryKind::ReviewDecision),
            (Registered | PendingReview | PreRegistered, PublicDomain) => {
                Ok(EntryKind::PublicDomainFiling)
            }
            (PreRegistered, Registered | Rejected) => Ok(EntryKind::StatusChange),
            _ => Err(Error::Conflict {
                message: format!(
                    "a pattern that is {} cannot become {}",
                    self.as_str(),
                    to.as_str()
                ),
            }),
        }
    }
}

impl FromStr for Status {
    type Err = Error;

    fn from_str(text: &str) -> Result<Status> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| {
                Error::bad_input(
                    "invalid_status",
                    format!(
                        "status {text:?} is not one of registered, pre_registered, public_domain, pending_review, rejected"
                    ),
                )
            })
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
    /// The token name that submitted it.
    pub submitted_by: String,
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
    pub submitted_by: String,
    /// For a pattern held for review: the published patterns it was judged a copy of (JSON).
    pub review_matches: Option<String>,
}

/// Features as stored, with the version that made them, and the pattern's status (start-up
/// reads both in one pass over the table).
pub struct StoredFeatures {
    pub seq: u64,
    pub status: Status,
    pub sha256: String,
    pub feature_version: u32,
    pub bytes: Vec<u8>,
}

pub struct Registry {
    inner: Mutex<Inner>,
    key: LogKey,
}

/// The connection and the in-memory log move together: the log in memory changes only after
/// the transaction that wrote its entry has committed.
struct Inner {
    connection: Connection,
    tree: Tree,
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
CREATE TABLE IF NOT EXISTS reviews (
    seq INTEGER PRIMARY KEY,
    matches TEXT NOT NULL
);
";

/// Stored in SQLite's `user_version`: 1 = the evidence log exists.
const SCHEMA_VERSION: u32 = 1;

const COLUMNS: &str = "seq, id, title, owner, reference, status, registered_at, sha256, media_type, width, height, submitted_by";

/// The patterns a viewer (the SQL parameter `{viewer}`) may see: every pattern when it is
/// NULL, else the published ones and those the viewer submitted.
fn visible_to_rule(viewer: &str) -> String {
    format!(
        "({viewer} IS NULL OR status IN ('registered', 'public_domain') OR submitted_by = {viewer})"
    )
}

impl Registry {
    /// Opens the database at `path` with the log's signing key at `key_path`, made on first use.
    pub fn open(path: &Path, key_path: &Path) -> Result<Registry> {
        let connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        connection.busy_timeout(std::time::Duration::from_secs(10))?;
        connection.execute_batch(SCHEMA)?;
        connection.execute_batch(log::SCHEMA)?;
        connection.execute_batch(tokens::SCHEMA)?;
        add_column_if_missing(
            &connection,
            "patterns",
            "submitted_by",
            "TEXT NOT NULL DEFAULT ''",
        )?;
        let tree = Tree::load(&connection)?;
        if tree.size() > 0 && !key_path.exists() {
            return Err(Error::Integrity(format!(
                "the evidence log has {} entries but its signing key {} is missing: restore it \
                 from a backup (a new key would leave every signed head unverifiable)",
                tree.size(),
                key_path.display()
            )));
        }
        let key = LogKey::load_or_create(key_path)?;
        let schema: u32 = connection.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let registry = Registry {
            inner: Mutex::new(Inner { connection, tree }),
            key,
        };
        if schema < SCHEMA_VERSION {
            // Once, for registries made before the log: afterwards a pattern without its
            // entry is a fault for `verify-log` to report, never something to paper over.
            registry.log_unlogged_patterns()?;
            registry.with(|c| c.pragma_update(None, "user_version", SCHEMA_VERSION))?;
        }
        Ok(registry)
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let inner = self.inner.lock().expect("registry lock");
        Ok(f(&inner.connection)?)
    }

    fn with_inner<T>(&self, f: impl FnOnce(&mut Inner) -> Result<T>) -> Result<T> {
        let mut inner = self.inner.lock().expect("registry lock");
        f(&mut inner)
    }

    /// A registry made before the evidence log existed: log its patterns once, in order.
    fn log_unlogged_patterns(&self) -> Result<()> {
        self.with_inner(|inner| {
            let unlogged: Vec<PatternRecord> = {
                let mut statement = inner.connection.prepare(&format!(
                    "SELECT {COLUMNS} FROM patterns WHERE seq NOT IN (SELECT seq FROM log_entries) ORDER BY seq"
                ))?;
                statement.query_map([], record)?.collect::<rusqlite::Result<_>>()?
            };
            if unlogged.is_empty() {
                return Ok(());
            }
            tracing::warn!(
                "logging {} patterns registered before the evidence log existed",
                unlogged.len()
            );
            for pattern in unlogged {
                let transaction = inner.connection.transaction()?;
                let entry = new_entry(
                    EntryKind::Registration,
                    &pattern,
                    "huaxing",
                    None,
                    "registered before the evidence log existed",
                );
                let appended = log::append(&transaction, &inner.tree, &self.key, pattern.seq, entry)?;
                transaction.commit()?;
                appended.apply(&mut inner.tree);
            }
            Ok(())
        })
    }

    pub fn count(&self) -> Result<u64> {
        self.with(|c| c.query_row("SELECT COUNT(*) FROM patterns", [], |r| r.get(0)))
    }

    pub fn find_by_id(&self, id: &str) -> Result<Option<PatternRecord>> {
        self.with(|c| find_by_id(c, id))
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

    /// Patterns in registration order: all of them, or with `visible_to`, the published ones
    /// and those that caller submitted. Also the total under the same rule.
    pub fn list(
        &self,
        offset: u64,
        limit: u64,
        visible_to: Option<&str>,
    ) -> Result<(Vec<PatternRecord>, u64)> {
        self.with(|c| {
            let mut statement = c.prepare(&format!(
                "SELECT {COLUMNS} FROM patterns WHERE {} ORDER BY seq LIMIT ?1 OFFSET ?2",
                visible_to_rule("?3")
            ))?;
            let patterns = statement
                .query_map(params![limit, offset, visible_to], record)?
                .collect::<rusqlite::Result<_>>()?;
            let total = c.query_row(
                &format!(
                    "SELECT COUNT(*) FROM patterns WHERE {}",
                    visible_to_rule("?1")
                ),
                [visible_to],
                |r| r.get(0),
            )?;
            Ok((patterns, total))
        })
    }

    /// Stores a new pattern and its log entry in one transaction, committed durably before it
    /// returns. When a pattern with the same id exists, nothing is written and the existing
    /// record comes back with `false`.
    pub fn insert(&self, new: &NewPattern) -> Result<(PatternRecord, bool)> {
        let registered_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        self.with_inner(|inner| {
            let transaction = inner
                .connection
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(existing) = find_by_id(&transaction, &new.id)? {
                return Ok((existing, false));
            }
            transaction.execute(
                "INSERT INTO patterns (id, title, owner, reference, status, registered_at, sha256,
                     media_type, width, height, feature_version, features, submitted_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
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
                    new.submitted_by,
                ],
            )?;
            let pattern = find_by_id(&transaction, &new.id)?.ok_or_else(|| {
                Error::Integrity(format!("pattern {} vanished after insert", new.id))
            })?;
            if let Some(matches) = &new.review_matches {
                transaction.execute(
                    "INSERT INTO reviews (seq, matches) VALUES (?1, ?2)",
                    params![pattern.seq, matches],
                )?;
            }
            let kind = if new.status == Status::PreRegistered {
                EntryKind::PreRegistration
            } else {
                EntryKind::Registration
            };
            let entry = new_entry(kind, &pattern, &new.submitted_by, None, "");
            let appended = log::append(&transaction, &inner.tree, &self.key, pattern.seq, entry)?;
            transaction.commit()?;
            appended.apply(&mut inner.tree);
            Ok((pattern, true))
        })
    }

    /// Changes a pattern's status and logs the change with its reason, in one transaction.
    pub fn set_status(
        &self,
        id: &str,
        to: Status,
        reason: &str,
        actor: &str,
    ) -> Result<PatternRecord> {
        self.with_inner(|inner| {
            let transaction = inner
                .connection
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            let before = find_by_id(&transaction, id)?.ok_or_else(|| Error::NotFound {
                what: format!("pattern {id}"),
            })?;
            let kind = before.status.transition(to)?;
            transaction.execute(
                "UPDATE patterns SET status = ?1 WHERE seq = ?2",
                params![to.as_str(), before.seq],
            )?;
            let after = PatternRecord {
                status: to,
                ..before.clone()
            };
            let entry = new_entry(kind, &after, actor, Some(before.status), reason);
            let appended = log::append(&transaction, &inner.tree, &self.key, after.seq, entry)?;
            transaction.commit()?;
            appended.apply(&mut inner.tree);
            Ok(after)
        })
    }

    /// Patterns held for review, oldest first, each with the matches that held it.
    pub fn review_queue(&self) -> Result<Vec<(PatternRecord, serde_json::Value)>> {
        let queue: Vec<(PatternRecord, String)> = self.with(|c| {
            let mut statement = c.prepare(&format!(
                "SELECT {COLUMNS}, COALESCE((SELECT matches FROM reviews r WHERE r.seq = p.seq), '[]')
                 FROM patterns p WHERE status = 'pending_review' ORDER BY seq"
            ))?;
            statement
                .query_map([], |r| Ok((record(r)?, r.get(12)?)))?
                .collect()
        })?;
        queue
            .into_iter()
            .map(|(pattern, matches)| {
                let matches = serde_json::from_str(&matches).map_err(|e| {
                    Error::Integrity(format!("review matches of {} unreadable: {e}", pattern.id))
                })?;
                Ok((pattern, matches))
            })
            .collect()
    }

    /// The log's current head, signed now.
    pub fn head(&self) -> Result<SignedHead> {
        self.with_inner(|inner| {
            Ok(self
                .key
                .sign(inner.tree.size(), &inner.tree.root(), log::now_millis()))
        })
    }

    pub fn public_key(&self) -> String {
        self.key.public_key()
    }

    /// Proof that a pattern's first entry (its registration) is in the log as it is now.
    pub fn proof(&self, id: &str) -> Result<InclusionProof> {
        // Read under the lock; hash outside it (the audit path costs O(n) at worst), so
        // proofs never hold up registrations or token checks.
        let (leaf_index, bytes, leaves, root, signed_head) = self.with_inner(|inner| {
            let pattern = find_by_id(&inner.connection, id)?.ok_or_else(|| Error::NotFound {
                what: format!("pattern {id}"),
            })?;
            let leaf_index = log::first_entry_of(&inner.connection, pattern.seq)?
                .ok_or_else(|| Error::Integrity(format!("pattern {id} has no log entry")))?;
            let bytes = log::entry_bytes(&inner.connection, leaf_index)?;
            let (size, root) = (inner.tree.size(), inner.tree.root());
            let signed_head = match log::head_at(&inner.connection, size, &self.key)? {
                Some(head) => head,
                None => self.key.sign(size, &root, log::now_millis()),
            };
            Ok((
                leaf_index,
                bytes,
                inner.tree.leaves.clone(),
                root,
                signed_head,
            ))
        })?;
        Ok(InclusionProof {
            entry: LogEntry::from_bytes(&bytes)?,
            entry_bytes: encode_entry_bytes(&bytes),
            leaf_index,
            tree_size: leaves.len() as u64,
            audit_path: merkle::inclusion_path(leaf_index as usize, &leaves)
                .iter()
                .map(hex::encode)
                .collect(),
            root_hash: hex::encode(root),
            signed_head,
        })
    }

    /// RFC 6962 consistency proof between the log at `first` and at `second` entries, with the
    /// roots of both.
    pub fn consistency(&self, first: u64, second: u64) -> Result<(Vec<Hash>, Hash, Hash)> {
        let leaves = self.with_inner(|inner| {
            let size = inner.tree.size();
            if first > second || second > size {
                return Err(Error::bad_input(
                    "invalid_tree_size",
                    format!("need 0 ≤ first ≤ second ≤ {size} (the log's size)"),
                ));
            }
            Ok(inner.tree.leaves[..second as usize].to_vec())
        })?;
        Ok((
            merkle::consistency_proof(first as usize, &leaves),
            merkle::root(&leaves[..first as usize]),
            merkle::root(&leaves),
        ))
    }

    /// The stored bytes of every entry about a pattern, oldest first.
    pub fn entries_of(&self, seq: u64) -> Result<Vec<LogEntry>> {
        let bytes: Vec<Vec<u8>> = self.with(|c| {
            let mut statement =
                c.prepare("SELECT entry FROM log_entries WHERE seq = ?1 ORDER BY leaf_index")?;
            statement.query_map([seq], |r| r.get(0))?.collect()
        })?;
        bytes.iter().map(|b| LogEntry::from_bytes(b)).collect()
    }

    pub fn create_token(&self, secret: &str, name: &str, role: Role) -> Result<TokenInfo> {
        self.with_inner(|inner| tokens::insert(&inner.connection, secret, name, role))
    }

    pub fn find_token(&self, secret: &str) -> Result<Option<TokenInfo>> {
        self.with_inner(|inner| tokens::find(&inner.connection, secret))
    }

    pub fn tokens(&self) -> Result<Vec<TokenInfo>> {
        self.with_inner(|inner| tokens::list(&inner.connection))
    }

    pub fn delete_token(&self, id: u64) -> Result<bool> {
        self.with_inner(|inner| tokens::delete(&inner.connection, id))
    }

    pub fn has_admin_token(&self) -> Result<bool> {
        self.with_inner(|inner| tokens::has_admin(&inner.connection))
    }

    /// Up to `limit` patterns' stored features after sequence number `after`, in order. Read
    /// page by page, start-up never holds every stored set at once (a large registry's sets
    /// would take gigabytes, and their freed buffers would fragment the heap).
    pub fn features_after(&self, after: u64, limit: usize) -> Result<Vec<StoredFeatures>> {
        self.with(|c| {
            let mut statement = c.prepare_cached(&format!(
                "SELECT {STORED_FEATURES} FROM patterns WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))?;
            statement
                .query_map(params![after, limit as i64], stored_features)?
                .collect()
        })
    }

    /// One pattern's stored features.
    pub fn features_of(&self, seq: u64) -> Result<Option<StoredFeatures>> {
        self.with(|c| {
            c.query_row(
                &format!("SELECT {STORED_FEATURES} FROM patterns WHERE seq = ?1"),
                [seq],
                stored_features,
            )
            .optional()
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
    Ok(PatternRecord {
        seq,
        id: row.get(1)?,
        registration_number: registration_number(seq, &registered_at),
        title: row.get(2)?,
        owner: row.get(3)?,
        reference: row.get(4)?,
        status: parse_status(row, 5)?,
        registered_at,
        sha256: row.get(7)?,
        media_type: row.get(8)?,
        width: row.get(9)?,
        height: row.get(10)?,
        submitted_by: row.get(11)?,
    })
}

/// The columns [`stored_features`] reads.
const STORED_FEATURES: &str = "seq, status, sha256, feature_version, features";

fn stored_features(r: &Row) -> rusqlite::Result<StoredFeatures> {
    Ok(StoredFeatures {
        seq: r.get(0)?,
        status: parse_status(r, 1)?,
        sha256: r.get(2)?,
        feature_version: r.get(3)?,
        bytes: r.get(4)?,
    })
}

fn parse_status(row: &Row, column: usize) -> rusqlite::Result<Status> {
    let text: String = row.get(column)?;
    text.parse().map_err(|e: Error| {
        rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn find_by_id(connection: &Connection, id: &str) -> rusqlite::Result<Option<PatternRecord>> {
    connection
        .query_row(
            &format!("SELECT {COLUMNS} FROM patterns WHERE id = ?1"),
            [id],
            record,
        )
        .optional()
}

/// The log entry for a pattern as it stands after a change; `index` is set on append.
fn new_entry(
    kind: EntryKind,
    pattern: &PatternRecord,
    actor: &str,
    previous_status: Option<Status>,
    reason: &str,
) -> LogEntry {
    LogEntry {
        version: ENTRY_VERSION,
        index: 0,
        kind,
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        actor: actor.to_string(),
        pattern: EntryPattern {
            id: pattern.id.clone(),
            registration_number: pattern.registration_number.clone(),
            sha256: pattern.sha256.clone(),
            title: pattern.title.clone(),
            owner: pattern.owner.clone(),
            status: pattern.status.as_str().to_string(),
        },
        previous_status: previous_status.map(|s| s.as_str().to_string()),
        reason: reason.to_string(),
    }
}

/// Schema migration for registries made by earlier versions.
fn add_column_if_missing(
    connection: &Connection,
    table: &str,
    column: &str,
    definition: &str,
) -> Result<()> {
    let exists: bool = connection.query_row(
        &format!("SELECT EXISTS(SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?1)"),
        [column],
        |r| r.get(0),
    )?;
    if !exists {
        connection.execute_batch(&format!(
            "ALTER TABLE {table} ADD COLUMN {column} {definition}"
        ))?;
    }
    Ok(())
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
            submitted_by: "clerk".into(),
            review_matches: None,
        }
    }

    fn open(dir: &Path) -> Registry {
        Registry::open(&dir.join("registry.sqlite"), &dir.join("log-key")).unwrap()
    }

    fn verify(dir: &Path) -> log::LogReport {
        let connection = Connection::open(dir.join("registry.sqlite")).unwrap();
        let key = LogKey::load_or_create(&dir.join("log-key")).unwrap();
        log::verify(&connection, &key.public_key()).unwrap()
    }

    #[test]
    fn registration_numbers_are_sequential_and_ids_unique() {
        let dir = tempfile::tempdir().unwrap();
        let registry = open(dir.path());
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
        assert_eq!(registry.list(1, 10, None).unwrap(), (vec![second], 2));
    }

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let (record, _) = open(dir.path()).insert(&new_pattern("x")).unwrap();
        let reopened = open(dir.path());
        assert_eq!(reopened.find_by_id("x").unwrap(), Some(record.clone()));
        assert_eq!(
            reopened.find_by_upload(&record.sha256).unwrap(),
            Some(record)
        );
        let stored = reopened.features_after(0, 10).unwrap();
        assert_eq!((stored.len(), stored[0].feature_version), (1, 1));
        assert_eq!(stored[0].status, new_pattern("x").status);
        assert_eq!(
            FeatureSet::from_bytes(&stored[0].bytes).unwrap(),
            FeatureSet::default()
        );
    }

    #[test]
    fn every_change_is_logged_and_each_proof_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let registry = open(dir.path());
        registry.insert(&new_pattern("a")).unwrap();
        let held = NewPattern {
            status: Status::PendingReview,
            review_matches: Some(r#"[{"id": "a"}]"#.into()),
            ..new_pattern("b")
        };
        registry.insert(&held).unwrap();
        assert_eq!(
            registry.review_queue().unwrap()[0].1,
            serde_json::json!([{"id": "a"}])
        );
        let refused = registry.set_status("b", Status::Registered, "", "clerk");
        assert!(refused.is_ok(), "a clerk accepts a held registration");
        assert!(matches!(
            registry.set_status("b", Status::PendingReview, "", "clerk"),
            Err(Error::Conflict { .. })
        ));
        registry
            .set_status("a", Status::PublicDomain, "traditional motif", "clerk")
            .unwrap();
        let entries = registry.entries_of(1).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].kind, EntryKind::PublicDomainFiling);
        assert_eq!(entries[1].reason, "traditional motif");
        assert_eq!(entries[1].previous_status.as_deref(), Some("registered"));
        for id in ["a", "b"] {
            let proof = registry.proof(id).unwrap();
            assert_eq!(proof.tree_size, 4);
            proof.verify(Some(&registry.public_key())).unwrap();
        }
        let report = verify(dir.path());
        assert_eq!((report.entries, report.patterns), (4, 2));
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let (proof, first, second) = registry.consistency(2, 4).unwrap();
        assert!(merkle::verify_consistency(2, &first, 4, &second, &proof));
    }

    #[test]
    fn a_changed_entry_is_named_by_verification() {
        let dir = tempfile::tempdir().unwrap();
        let registry = open(dir.path());
        for id in ["a", "b", "c"] {
            registry.insert(&new_pattern(id)).unwrap();
        }
        drop(registry);
        let connection = Connection::open(dir.path().join("registry.sqlite")).unwrap();
        connection
            .execute(
                "UPDATE log_entries SET entry = CAST(REPLACE(CAST(entry AS TEXT), 'Shaoxing', 'Xhaoxing') AS BLOB) WHERE leaf_index = 1",
                [],
            )
            .unwrap();
        let problems = verify(dir.path()).problems;
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("entry 1 has changed")),
            "{problems:?}"
        );
        // Forging the leaf hash too is caught by the signed heads.
        connection
            .execute(
                "UPDATE log_entries SET leaf_hash = ?1 WHERE leaf_index = 1",
                [merkle::leaf_hash(&log::entry_bytes(&connection, 1).unwrap()).to_vec()],
            )
            .unwrap();
        let problems = verify(dir.path()).problems;
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("entry 1 or an earlier one has changed")),
            "{problems:?}"
        );
        connection
            .execute("DELETE FROM log_entries WHERE leaf_index = 2", [])
            .unwrap();
        let problems = verify(dir.path()).problems;
        assert!(
            problems.iter().any(|p| p.contains("entries were removed")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_lost_key_or_a_cut_log_is_refused_not_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let registry = open(dir.path());
        for id in ["a", "b"] {
            registry.insert(&new_pattern(id)).unwrap();
        }
        drop(registry);
        let connection = Connection::open(dir.path().join("registry.sqlite")).unwrap();
        connection
            .execute("DELETE FROM log_entries WHERE leaf_index = 1", [])
            .unwrap();
        open(dir.path());
        let problems = verify(dir.path()).problems;
        assert!(
            problems
                .iter()
                .any(|p| p.contains("pattern b has no entry")),
            "a reopened registry must not log the cut entry anew: {problems:?}"
        );
        std::fs::remove_file(dir.path().join("log-key")).unwrap();
        let refused = Registry::open(
            &dir.path().join("registry.sqlite"),
            &dir.path().join("log-key"),
        );
        assert!(matches!(refused, Err(Error::Integrity(_))));
        assert!(
            !dir.path().join("log-key").exists(),
            "no stray new key is left behind"
        );
    }

    #[test]
    fn merchants_see_published_patterns_and_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let registry = open(dir.path());
        registry.insert(&new_pattern("published")).unwrap();
        let reserved = |id: &str, by: &str| NewPattern {
            status: Status::PreRegistered,
            submitted_by: by.into(),
            ..new_pattern(id)
        };
        registry.insert(&reserved("mine", "stall-7")).unwrap();
        registry.insert(&reserved("theirs", "stall-9")).unwrap();
        let (seen, total) = registry.list(0, 10, Some("stall-7")).unwrap();
        let ids: Vec<&str> = seen.iter().map(|p| p.id.as_str()).collect();
        assert_eq!((ids, total), (vec!["published", "mine"], 2));
        assert_eq!(registry.list(0, 10, None).unwrap().1, 3);
    }
}
