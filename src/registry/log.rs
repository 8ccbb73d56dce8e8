//! The evidence log's storage: entries and signed heads in the registry database, written in
//! the same transaction as the change they record, so the registry and the log cannot part.
//! Also the full re-verification behind `huaxing verify-log`.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::error::{Error, Result};
use crate::ledger::merkle::{self, Frontier, Hash};
use crate::ledger::{self, LogEntry, LogKey, SignedHead};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS log_entries (
    leaf_index INTEGER PRIMARY KEY,
    seq INTEGER NOT NULL,
    entry BLOB NOT NULL,
    leaf_hash BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS log_entries_by_pattern ON log_entries(seq);
CREATE TABLE IF NOT EXISTS log_heads (
    tree_size INTEGER PRIMARY KEY,
    root_hash BLOB NOT NULL,
    timestamp INTEGER NOT NULL,
    signature TEXT NOT NULL
);
";

/// The log as held in memory: every leaf hash (32 bytes an entry) for proofs, and the
/// frontier for the root after each append.
#[derive(Default)]
pub struct Tree {
    pub leaves: Vec<Hash>,
    frontier: Frontier,
}

impl Tree {
    pub fn load(connection: &Connection) -> Result<Tree> {
        let mut statement = connection
            .prepare("SELECT leaf_index, leaf_hash FROM log_entries ORDER BY leaf_index")?;
        let mut tree = Tree::default();
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let index: u64 = row.get(0)?;
            let hash: Vec<u8> = row.get(1)?;
            let hash: Hash = hash.try_into().map_err(|_| {
                Error::Integrity(format!("log entry {index} has a malformed leaf hash"))
            })?;
            if index != tree.leaves.len() as u64 {
                return Err(Error::Integrity(format!(
                    "log entry {} is missing (run `huaxing verify-log`)",
                    tree.leaves.len()
                )));
            }
            tree.push(hash);
        }
        Ok(tree)
    }

    fn push(&mut self, hash: Hash) {
        self.leaves.push(hash);
        self.frontier.push(hash);
    }

    pub fn size(&self) -> u64 {
        self.leaves.len() as u64
    }

    pub fn root(&self) -> Hash {
        self.frontier.root()
    }
}

/// Appends one entry and a head signed over the new tree inside `transaction`; `tree` is
/// brought up to date only by `Appended::apply` once the transaction has committed.
pub fn append(
    transaction: &Transaction,
    tree: &Tree,
    key: &LogKey,
    seq: u64,
    mut entry: LogEntry,
) -> Result<Appended> {
    entry.index = tree.size();
    let bytes = entry.to_bytes();
    let leaf = merkle::leaf_hash(&bytes);
    transaction.execute(
        "INSERT INTO log_entries (leaf_index, seq, entry, leaf_hash) VALUES (?1, ?2, ?3, ?4)",
        params![entry.index, seq, bytes, leaf.to_vec()],
    )?;
    let mut frontier = tree.frontier.clone();
    frontier.push(leaf);
    let head = key.sign(frontier.size(), &frontier.root(), now_millis());
    transaction.execute(
        "INSERT INTO log_heads (tree_size, root_hash, timestamp, signature) VALUES (?1, ?2, ?3, ?4)",
        params![
            head.tree_size,
            frontier.root().to_vec(),
            head.timestamp,
            head.signature
        ],
    )?;
    Ok(Appended { leaf, head })
}

/// An entry written but not yet counted in memory.
pub struct Appended {
    leaf: Hash,
    pub head: SignedHead,
}

impl Appended {
    pub fn apply(self, tree: &mut Tree) {
        tree.push(self.leaf);
    }
}

pub fn now_millis() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

/// The stored bytes of one entry.
pub fn entry_bytes(connection: &Connection, leaf_index: u64) -> Result<Vec<u8>> {
    connection
        .query_row(
            "SELECT entry FROM log_entries WHERE leaf_index = ?1",
            [leaf_index],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| Error::NotFound {
            what: format!("log entry {leaf_index}"),
        })
}

/// The first entry about a pattern (its registration or pre-registration).
pub fn first_entry_of(connection: &Connection, seq: u64) -> Result<Option<u64>> {
    Ok(connection.query_row(
        "SELECT MIN(leaf_index) FROM log_entries WHERE seq = ?1",
        [seq],
        |r| r.get::<_, Option<u64>>(0),
    )?)
}

/// The head signed when the tree had `tree_size` entries.
pub fn head_at(
    connection: &Connection,
    tree_size: u64,
    key: &LogKey,
) -> Result<Option<SignedHead>> {
    connection
        .query_row(
            "SELECT root_hash, timestamp, signature FROM log_heads WHERE tree_size = ?1",
            [tree_size],
            |r| {
                let root: Vec<u8> = r.get(0)?;
                Ok(SignedHead {
                    tree_size,
                    root_hash: hex::encode(root),
                    timestamp: r.get(1)?,
                    signature: r.get(2)?,
                    public_key: key.public_key(),
                })
            },
        )
        .optional()
        .map_err(Error::from)
}

/// What `verify-log` found.
#[derive(Debug, Default)]
pub struct LogReport {
    pub entries: u64,
    pub heads: u64,
    pub patterns: u64,
    /// Empty when the log is intact; otherwise each problem, naming the entry.
    pub problems: Vec<String>,
}

/// Recomputes the whole log from the stored entry bytes: every entry parses and sits at its
/// own index, its leaf hash is the hash of its bytes, every signed head's root is the root of
/// the entries before it and its signature verifies, and every pattern in the registry has its
/// registration entry and the status its last entry gives.
pub fn verify(connection: &Connection, public_key: &str) -> Result<LogReport> {
    ledger::decode_public_key(public_key).map_err(Error::Integrity)?;
    // One read transaction: heads, entries and patterns from the same moment, even while the
    // service keeps registering.
    let snapshot = connection.unchecked_transaction()?;
    let connection: &Connection = &snapshot;
    let mut report = LogReport::default();
    let mut heads = connection.prepare(
        "SELECT tree_size, root_hash, timestamp, signature FROM log_heads ORDER BY tree_size",
    )?;
    let heads: Vec<(u64, Vec<u8>, u64, String)> = heads
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    report.heads = heads.len() as u64;
    let mut heads = heads.into_iter().peekable();
    let mut statement = connection
        .prepare("SELECT leaf_index, seq, entry, leaf_hash FROM log_entries ORDER BY leaf_index")?;
    let mut rows = statement.query([])?;
    let mut frontier = Frontier::default();
    let mut last_logged: std::collections::HashMap<u64, ledger::EntryPattern> = Default::default();
    let mut expected_index = 0u64;
    let mut roots_broken = 0u64;
    while let Some(row) = rows.next()? {
        let index: u64 = row.get(0)?;
        let seq: u64 = row.get(1)?;
        let bytes: Vec<u8> = row.get(2)?;
        let stored_leaf: Vec<u8> = row.get(3)?;
        if index != expected_index {
            report.problems.push(format!(
                "entries {expected_index}..{index} are missing from the log"
            ));
            expected_index = index;
        }
        expected_index += 1;
        let leaf = merkle::leaf_hash(&bytes);
        if stored_leaf != leaf {
            report.problems.push(format!(
                "entry {index} has changed: its bytes no longer hash to its recorded leaf hash"
            ));
        }
        match LogEntry::from_bytes(&bytes) {
            Ok(entry) if entry.index != index => report.problems.push(format!(
                "entry {index} says it is entry {}: the log has been reordered",
                entry.index
            )),
            Ok(entry) => {
                last_logged.insert(seq, entry.pattern);
            }
            Err(e) => report.problems.push(format!("entry {index}: {e}")),
        }
        frontier.push(leaf);
        report.entries += 1;
        while let Some((size, ..)) = heads.peek() {
            if *size > frontier.size() {
                break;
            }
            let (size, root, timestamp, signature) = heads.next().expect("peeked");
            let head = SignedHead {
                tree_size: size,
                root_hash: hex::encode(&root),
                timestamp,
                signature,
                public_key: public_key.to_string(),
            };
            if head.verify().is_err() {
                report.problems.push(format!(
                    "the head signed at {size} entries has a bad signature"
                ));
            } else if root != frontier.root() {
                // The first broken root names the change; the later ones follow from it.
                if roots_broken == 0 {
                    report.problems.push(format!(
                        "entry {} or an earlier one has changed: the entries no longer give the root signed at {size} entries",
                        size - 1
                    ));
                }
                roots_broken += 1;
            }
        }
    }
    if roots_broken > 1 {
        report.problems.push(format!(
            "{} later signed heads no longer match either",
            roots_broken - 1
        ));
    }
    for (size, ..) in heads {
        report.problems.push(format!(
            "a head is signed for {size} entries, but the log holds only {}: entries were removed",
            frontier.size()
        ));
    }
    let mut patterns = connection.prepare(
        "SELECT seq, id, title, owner, status, registered_at, sha256 FROM patterns ORDER BY seq",
    )?;
    let mut rows = patterns.query([])?;
    while let Some(row) = rows.next()? {
        let seq: u64 = row.get(0)?;
        let registered_at: String = row.get(5)?;
        let registry = ledger::EntryPattern {
            id: row.get(1)?,
            registration_number: super::registration_number(seq, &registered_at),
            sha256: row.get(6)?,
            title: row.get(2)?,
            owner: row.get(3)?,
            status: row.get(4)?,
        };
        report.patterns += 1;
        let Some(logged) = last_logged.get(&seq) else {
            report
                .problems
                .push(format!("pattern {} has no entry in the log", registry.id));
            continue;
        };
        let differ: Vec<&str> = [
            ("id", logged.id == registry.id),
            (
                "registration number",
                logged.registration_number == registry.registration_number,
            ),
            ("upload hash", logged.sha256 == registry.sha256),
            ("title", logged.title == registry.title),
            ("owner", logged.owner == registry.owner),
            ("status", logged.status == registry.status),
        ]
        .into_iter()
        .filter(|(_, same)| !same)
        .map(|(field, _)| field)
        .collect();
        if !differ.is_empty() {
            report.problems.push(format!(
                "pattern {} differs from its last log entry in: {}",
                registry.id,
                differ.join(", ")
            ));
        }
    }
    Ok(report)
}
