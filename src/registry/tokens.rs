//! API tokens and their roles, kept in the registry database. Only a token's SHA-256 is
//! stored: tokens are 256 random bits, so a plain hash is enough to make a stolen database
//! useless for logging in.

use std::str::FromStr;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::error::{Error, Result};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS tokens_by_name ON tokens(name);
";

/// Names huaxing itself records as actors; no token may take them, or its holder would pass for
/// the bulk import or open access (and see what those submitted).
const RESERVED_NAMES: &[&str] = &["import", "open-access", "huaxing", "anonymous"];

/// Who a caller is to huaxing. What each may do is decided in one place, `api::auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Clerk,
    Court,
    Merchant,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Clerk, Role::Court, Role::Merchant];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Clerk => "clerk",
            Role::Court => "court",
            Role::Merchant => "merchant",
        }
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(text: &str) -> Result<Role> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| {
                Error::bad_input(
                    "invalid_role",
                    format!("role {text:?} is not one of admin, clerk, court, merchant"),
                )
            })
    }
}

/// A token as listed: never the secret itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: u64,
    pub name: String,
    pub role: Role,
    pub created_at: String,
}

/// A fresh random token: `hx_` and 64 hex digits.
pub fn new_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Integrity(format!("no randomness for a token: {e}")))?;
    Ok(format!("hx_{}", hex::encode(bytes)))
}

fn hash(secret: &str) -> String {
    crate::registry::sha256_hex(secret.as_bytes())
}

/// Stores a token (its hash); storing the same secret again changes nothing. Names are
/// unique: a merchant sees what was submitted under its token's name.
pub fn insert(connection: &Connection, secret: &str, name: &str, role: Role) -> Result<TokenInfo> {
    if secret.len() < 16 {
        return Err(Error::bad_input(
            "weak_token",
            "a token must be at least 16 characters",
        ));
    }
    if RESERVED_NAMES.contains(&name) {
        return Err(Error::bad_input(
            "invalid_name",
            format!("{name:?} is reserved; choose another token name"),
        ));
    }
    let taken: Option<String> = connection
        .query_row("SELECT hash FROM tokens WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    if taken.is_some_and(|h| h != hash(secret)) {
        return Err(Error::Conflict {
            message: format!("a token named {name:?} exists; choose another name"),
        });
    }
    let created_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    connection.execute(
        "INSERT INTO tokens (hash, name, role, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(hash) DO NOTHING",
        params![hash(secret), name, role.as_str(), created_at],
    )?;
    find(connection, secret)?
        .ok_or_else(|| Error::Integrity("a token vanished after insert".into()))
}

/// The token behind a secret, if it exists.
pub fn find(connection: &Connection, secret: &str) -> Result<Option<TokenInfo>> {
    connection
        .query_row(
            "SELECT id, name, role, created_at FROM tokens WHERE hash = ?1",
            [hash(secret)],
            info,
        )
        .optional()
        .map_err(Error::from)
}

pub fn list(connection: &Connection) -> Result<Vec<TokenInfo>> {
    let mut statement =
        connection.prepare("SELECT id, name, role, created_at FROM tokens ORDER BY id")?;
    Ok(statement
        .query_map([], info)?
        .collect::<rusqlite::Result<_>>()?)
}

/// Revokes a token; false when there was none with that id.
pub fn delete(connection: &Connection, id: u64) -> Result<bool> {
    Ok(connection.execute("DELETE FROM tokens WHERE id = ?1", [id])? == 1)
}

pub fn has_admin(connection: &Connection) -> Result<bool> {
    Ok(connection.query_row(
        "SELECT EXISTS(SELECT 1 FROM tokens WHERE role = 'admin')",
        [],
        |r| r.get(0),
    )?)
}

fn info(row: &rusqlite::Row) -> rusqlite::Result<TokenInfo> {
    let role: String = row.get(2)?;
    Ok(TokenInfo {
        id: row.get(0)?,
        name: row.get(1)?,
        role: role.parse().map_err(|e: Error| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
        })?,
        created_at: row.get(3)?,
    })
}
