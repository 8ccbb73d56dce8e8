//! The audit trail: who did what, when, from where. Kept in its own database file so that
//! recording a search never waits on a registration's commit; entries are appended, never
//! changed (the registration evidence itself lives in the signed log).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, params};
use serde::Serialize;

use crate::error::Result;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    address TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    status INTEGER NOT NULL,
    detail TEXT NOT NULL
);
";

/// One audited request.
#[derive(Clone, Debug, Serialize)]
pub struct AuditRecord {
    pub id: u64,
    /// RFC 3339, UTC.
    pub at: String,
    /// The token name, or `anonymous`.
    pub actor: String,
    pub role: String,
    /// The caller's IP address and port.
    pub address: String,
    /// e.g. `upload`, `search`, `image_view`, `export`, `decision`.
    pub action: String,
    /// The method and path asked for.
    pub target: String,
    /// The HTTP status answered.
    pub status: u16,
    /// What the handler added: an upload's SHA-256, a decision and its reason.
    pub detail: String,
}

pub struct AuditLog {
    connection: Mutex<Connection>,
}

impl AuditLog {
    pub fn open(path: &Path) -> Result<AuditLog> {
        let connection = Connection::open(path)?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        // An audit record lost to a power cut is tolerable; a search waiting on fsync is not.
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.busy_timeout(std::time::Duration::from_secs(10))?;
        connection.execute_batch(SCHEMA)?;
        Ok(AuditLog {
            connection: Mutex::new(connection),
        })
    }

    pub fn record(&self, record: &AuditRecord) -> Result<()> {
        let connection = self.connection.lock().expect("audit lock");
        connection.execute(
            "INSERT INTO audit (at, actor, role, address, action, target, status, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                record.at,
                record.actor,
                record.role,
                record.address,
                record.action,
                record.target,
                record.status,
                record.detail
            ],
        )?;
        Ok(())
    }

    /// Newest first.
    pub fn list(&self, offset: u64, limit: u64) -> Result<Vec<AuditRecord>> {
        let connection = self.connection.lock().expect("audit lock");
        let mut statement = connection.prepare(
            "SELECT id, at, actor, role, address, action, target, status, detail FROM audit
             ORDER BY id DESC LIMIT ?1 OFFSET ?2",
        )?;
        Ok(statement
            .query_map([limit, offset], |r| {
                Ok(AuditRecord {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    role: r.get(3)?,
                    address: r.get(4)?,
                    action: r.get(5)?,
                    target: r.get(6)?,
                    status: r.get(7)?,
                    detail: r.get(8)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }
}
