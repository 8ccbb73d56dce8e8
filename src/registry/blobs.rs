//! Content-addressed store of original uploads: each file is named by the SHA-256 of its bytes,
//! written to a temporary name, synced and renamed into place, so a stored blob is always whole.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub struct BlobStore {
    root: PathBuf,
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl BlobStore {
    pub fn open(root: impl Into<PathBuf>) -> Result<BlobStore> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        Ok(BlobStore { root })
    }

    fn path_of(&self, sha256: &str) -> Result<PathBuf> {
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Integrity(format!("not a SHA-256: {sha256:?}")));
        }
        Ok(self.root.join(&sha256[..2]).join(sha256))
    }

    /// Stores `bytes` durably and returns their SHA-256.
    pub fn put(&self, bytes: &[u8]) -> Result<String> {
        let sha256 = sha256_hex(bytes);
        let path = self.path_of(&sha256)?;
        if path.exists() {
            return Ok(sha256);
        }
        let dir = path.parent().expect("blob paths have a parent");
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        // Unique per write: two uploads of the same bytes at once must not share a file.
        static WRITES: AtomicU64 = AtomicU64::new(0);
        let unique = WRITES.fetch_add(1, Ordering::Relaxed);
        let temporary = dir.join(format!(".{sha256}.{}.{unique}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&temporary)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&temporary, &path)?;
            fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&temporary);
            Error::io(&path, e)
        })?;
        Ok(sha256)
    }

    pub fn get(&self, sha256: &str) -> Result<Vec<u8>> {
        let path = self.path_of(sha256)?;
        let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        if sha256_hex(&bytes) != sha256 {
            return Err(Error::Integrity(format!(
                "blob {} does not match its name",
                path.display()
            )));
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_blob_reads_back_and_tampering_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let sha = store.put(b"print").unwrap();
        assert_eq!(store.put(b"print").unwrap(), sha);
        assert_eq!(store.get(&sha).unwrap(), b"print");
        fs::write(store.path_of(&sha).unwrap(), b"changed").unwrap();
        assert!(matches!(store.get(&sha), Err(Error::Integrity(_))));
        assert!(store.get("../../etc/passwd").is_err());
    }
}
