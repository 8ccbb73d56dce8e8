//! The evidence log: an append-only Merkle log in the style of Certificate Transparency
//! (RFC 6962). Every registration, status change, public-domain filing and review decision is
//! one entry; the service signs tree heads with an Ed25519 key, so a court can check that a
//! pattern was registered when its entry says and that no entry has changed since. This module
//! holds the entry format, the signed head and proof verification; it does no I/O but reading
//! and creating the key file, so `verify-proof` can use it with no server and no database.

pub mod merkle;

use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use merkle::Hash;

/// Version of the entry format; written into every entry.
pub const ENTRY_VERSION: u32 = 1;

/// What an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A pattern stored: registered, pending review, or filed as public domain.
    Registration,
    /// A merchant's time-stamped reservation of an unpublished design.
    PreRegistration,
    /// A clerk's accept or reject of a registration held for review.
    ReviewDecision,
    /// A pattern filed as public domain after its registration.
    PublicDomainFiling,
    /// Any other change of status (a pre-registration published or withdrawn).
    StatusChange,
}

/// The pattern an entry is about, as it stood after the entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryPattern {
    pub id: String,
    pub registration_number: String,
    /// SHA-256 of the upload as sent.
    pub sha256: String,
    pub title: String,
    pub owner: String,
    pub status: String,
}

/// One log entry. Its bytes (compact JSON in this field order) are what the leaf hash covers;
/// the stored bytes, not a re-serialisation, are the evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub version: u32,
    /// Position in the log, so a reordered or dropped entry is caught by its neighbours.
    pub index: u64,
    pub kind: EntryKind,
    /// RFC 3339, UTC, milliseconds.
    pub timestamp: String,
    /// The token name that caused the entry.
    pub actor: String,
    pub pattern: EntryPattern,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

impl LogEntry {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("log entries serialise")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<LogEntry> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::Integrity(format!("log entry is not readable: {e}")))
    }
}

/// A signed tree head: the log's size and root at a moment, signed by the service's key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedHead {
    pub tree_size: u64,
    /// Hex.
    pub root_hash: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// Base64 Ed25519 signature over `signed_bytes`.
    pub signature: String,
    /// Base64 Ed25519 public key (32 bytes).
    pub public_key: String,
}

/// The bytes a head signature covers: RFC 6962 §3.5's TreeHeadSignature (version v1 = 0,
/// signature type tree_hash = 1, timestamp and tree size as big-endian u64, the root hash).
pub fn signed_bytes(timestamp: u64, tree_size: u64, root: &Hash) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(50);
    bytes.extend_from_slice(&[0, 1]);
    bytes.extend_from_slice(&timestamp.to_be_bytes());
    bytes.extend_from_slice(&tree_size.to_be_bytes());
    bytes.extend_from_slice(root);
    bytes
}

impl SignedHead {
    /// Checks the signature with the key the head names, and returns that key.
    pub fn verify(&self) -> std::result::Result<VerifyingKey, String> {
        let key = decode_public_key(&self.public_key)?;
        let root = decode_hash(&self.root_hash)?;
        let signature = BASE64
            .decode(&self.signature)
            .map_err(|e| format!("signature is not base64: {e}"))?;
        let signature = Signature::from_slice(&signature)
            .map_err(|e| format!("signature is malformed: {e}"))?;
        key.verify(
            &signed_bytes(self.timestamp, self.tree_size, &root),
            &signature,
        )
        .map_err(|_| "the tree head's signature does not verify".to_string())?;
        Ok(key)
    }
}

pub fn decode_public_key(text: &str) -> std::result::Result<VerifyingKey, String> {
    let bytes = BASE64
        .decode(text.trim())
        .map_err(|e| format!("public key is not base64: {e}"))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "public key is not 32 bytes".to_string())?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| format!("public key is invalid: {e}"))
}

pub fn decode_hash(text: &str) -> std::result::Result<Hash, String> {
    let bytes = hex::decode(text).map_err(|e| format!("hash {text:?} is not hex: {e}"))?;
    bytes
        .try_into()
        .map_err(|_| format!("hash {text:?} is not 32 bytes"))
}

/// The service's signing key. Made at first start, kept in the data directory readable by its
/// owner only.
pub struct LogKey {
    key: SigningKey,
}

impl LogKey {
    pub fn load_or_create(path: &Path) -> Result<LogKey> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let seed: [u8; 32] = hex::decode(String::from_utf8_lossy(&bytes).trim())
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| {
                        Error::Integrity(format!("{} is not a log key", path.display()))
                    })?;
                Ok(LogKey {
                    key: SigningKey::from_bytes(&seed),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                getrandom::fill(&mut seed)
                    .map_err(|e| Error::Integrity(format!("no randomness for a key: {e}")))?;
                write_private(path, hex::encode(seed).as_bytes())?;
                tracing::info!("made a new log signing key in {}", path.display());
                Ok(LogKey {
                    key: SigningKey::from_bytes(&seed),
                })
            }
            Err(e) => Err(Error::io(path, e)),
        }
    }

    pub fn public_key(&self) -> String {
        BASE64.encode(self.key.verifying_key().as_bytes())
    }

    pub fn sign(&self, tree_size: u64, root: &Hash, timestamp: u64) -> SignedHead {
        let signature = self.key.sign(&signed_bytes(timestamp, tree_size, root));
        SignedHead {
            tree_size,
            root_hash: hex::encode(root),
            timestamp,
            signature: BASE64.encode(signature.to_bytes()),
            public_key: self.public_key(),
        }
    }
}

/// Writes a new file readable by its owner only, durably.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| Error::io(path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// An inclusion proof as the service hands it out and `huaxing verify-proof` reads it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InclusionProof {
    pub entry: LogEntry,
    /// Base64 of the exact entry bytes the leaf hash covers.
    pub entry_bytes: String,
    pub leaf_index: u64,
    pub tree_size: u64,
    /// Hex, leaf side first (RFC 6962 PATH).
    pub audit_path: Vec<String>,
    /// Hex.
    pub root_hash: String,
    pub signed_head: SignedHead,
}

/// What a verified proof establishes.
#[derive(Debug)]
pub struct Verified {
    pub entry: LogEntry,
    pub tree_size: u64,
    pub signed_at: u64,
    pub public_key: String,
}

impl InclusionProof {
    /// Verifies the proof with no I/O: the entry hashes to a leaf on the audit path to the
    /// root, the signed head names that root and size, and its signature verifies. With
    /// `trusted_key` (base64), the head must also be signed by that key.
    pub fn verify(&self, trusted_key: Option<&str>) -> std::result::Result<Verified, String> {
        let bytes = BASE64
            .decode(&self.entry_bytes)
            .map_err(|e| format!("entry_bytes is not base64: {e}"))?;
        let entry = LogEntry::from_bytes(&bytes).map_err(|e| e.to_string())?;
        if entry != self.entry {
            return Err("`entry` differs from the entry in `entry_bytes`".into());
        }
        if entry.index != self.leaf_index {
            return Err(format!(
                "the entry says it is entry {}, the proof says leaf {}",
                entry.index, self.leaf_index
            ));
        }
        let path = self
            .audit_path
            .iter()
            .map(|h| decode_hash(h))
            .collect::<std::result::Result<Vec<Hash>, String>>()?;
        let root = decode_hash(&self.root_hash)?;
        let computed = merkle::root_from_inclusion(
            &merkle::leaf_hash(&bytes),
            self.leaf_index,
            self.tree_size,
            &path,
        )
        .ok_or("the audit path does not fit a tree of that size")?;
        if computed != root {
            return Err("the entry and audit path do not lead to the root hash".into());
        }
        let head = &self.signed_head;
        if head.tree_size != self.tree_size || decode_hash(&head.root_hash)? != root {
            return Err("the signed head is for another tree than the proof".into());
        }
        head.verify()?;
        if let Some(trusted) = trusted_key {
            let trusted = decode_public_key(trusted)?;
            if trusted.as_bytes() != decode_public_key(&head.public_key)?.as_bytes() {
                return Err("the head is signed by another key than the trusted one".into());
            }
        }
        Ok(Verified {
            entry,
            tree_size: self.tree_size,
            signed_at: head.timestamp,
            public_key: head.public_key.clone(),
        })
    }
}

pub fn encode_entry_bytes(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64) -> LogEntry {
        LogEntry {
            version: ENTRY_VERSION,
            index,
            kind: EntryKind::Registration,
            timestamp: "2026-11-25T10:00:00.000Z".into(),
            actor: "clerk".into(),
            pattern: EntryPattern {
                id: format!("pattern-{index}"),
                registration_number: format!("HX-2026-{index:06}"),
                sha256: "00".repeat(32),
                title: "Peonies".into(),
                owner: "Keqiao Prints".into(),
                status: "registered".into(),
            },
            previous_status: None,
            reason: String::new(),
        }
    }

    fn proof_of(index: usize, size: usize, key: &LogKey) -> InclusionProof {
        let entries: Vec<Vec<u8>> = (0..size as u64).map(|i| entry(i).to_bytes()).collect();
        let leaves: Vec<Hash> = entries.iter().map(|e| merkle::leaf_hash(e)).collect();
        let root = merkle::root(&leaves);
        InclusionProof {
            entry: entry(index as u64),
            entry_bytes: encode_entry_bytes(&entries[index]),
            leaf_index: index as u64,
            tree_size: size as u64,
            audit_path: merkle::inclusion_path(index, &leaves)
                .iter()
                .map(hex::encode)
                .collect(),
            root_hash: hex::encode(root),
            signed_head: key.sign(size as u64, &root, 1_764_064_800_000),
        }
    }

    #[test]
    fn a_true_proof_verifies_and_any_change_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = LogKey::load_or_create(&dir.path().join("key")).unwrap();
        let proof = proof_of(3, 7, &key);
        let verified = proof.verify(Some(&key.public_key())).unwrap();
        assert_eq!(verified.entry.pattern.id, "pattern-3");

        let mut forged = proof.clone();
        forged.entry.pattern.owner = "Someone Else".into();
        let bytes = forged.entry.to_bytes();
        forged.entry_bytes = encode_entry_bytes(&bytes);
        assert!(
            forged.verify(None).is_err(),
            "a changed entry must not verify"
        );

        let mut resigned = proof.clone();
        let other = LogKey::load_or_create(&dir.path().join("other")).unwrap();
        resigned.signed_head = other.sign(7, &decode_hash(&proof.root_hash).unwrap(), 1);
        assert!(
            resigned.verify(None).is_ok(),
            "self-consistent under its own key"
        );
        assert!(resigned.verify(Some(&key.public_key())).is_err());

        let mut late = proof.clone();
        late.signed_head.timestamp += 1;
        assert!(late.verify(None).is_err(), "the timestamp is signed");
    }

    #[test]
    fn the_key_survives_reloading_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log-key");
        let first = LogKey::load_or_create(&path).unwrap().public_key();
        assert_eq!(LogKey::load_or_create(&path).unwrap().public_key(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
