//! What a data directory holds, per registered print: the disk each part takes, and the bytes
//! each signal's stored features take. `huaxing stats` prints it; docs/scale.md uses it.

use std::path::Path;

use crate::error::{Error, Result};
use crate::features::FeatureSet;
use crate::features::keypoints::{Keypoint, PackedDescriptor};

/// Sizes in bytes.
#[derive(Debug, Default)]
pub struct Stats {
    pub patterns: u64,
    /// (part of the data directory, bytes on disk).
    pub disk: Vec<(&'static str, u64)>,
    /// (signal, stored bytes over all prints).
    pub signals: Vec<(&'static str, u64)>,
    pub keypoints: u64,
}

pub fn of_data_dir(data: &Path) -> Result<Stats> {
    let database = data.join("registry.sqlite");
    let connection = rusqlite::Connection::open_with_flags(
        &database,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    let mut stats = Stats::default();
    let (mut hashes, mut vector, mut geometry, mut descriptors, mut stored) = (0, 0, 0, 0, 0);
    let mut statement = connection.prepare("SELECT features FROM patterns")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let bytes: Vec<u8> = row.get(0)?;
        stored += bytes.len() as u64;
        stats.patterns += 1;
        let features = FeatureSet::from_bytes(&bytes).map_err(Error::Integrity)?;
        let dihedral = 8 * 32;
        hashes += dihedral
            * (features.structure_hash.is_some() as u64 + features.lightness_hash.is_some() as u64);
        vector += features.global_vector.len() as u64;
        let n = features.local.keypoints.len() as u64;
        stats.keypoints += n;
        geometry += size_of::<Keypoint>() as u64 * n;
        descriptors += size_of::<PackedDescriptor>() as u64 * n;
    }
    stats.signals = vec![
        ("whole-print hashes (8 orientations x 2 channels)", hashes),
        ("global vector", vector),
        ("keypoint positions", geometry),
        ("keypoint descriptors", descriptors),
        ("stored feature records (encoded)", stored),
    ];
    let size = |path: &Path| -> u64 {
        walkdir::WalkDir::new(path)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    };
    let sqlite = |name: &str| {
        ["", "-wal", "-shm"]
            .iter()
            .map(|suffix| size(&data.join(format!("{name}{suffix}"))))
            .sum::<u64>()
    };
    stats.disk = vec![
        (
            "registry database (records, features, log)",
            sqlite("registry.sqlite"),
        ),
        ("original uploads", size(&data.join("blobs"))),
        (
            "global-vector index dump",
            size(&data.join("index/vectors")),
        ),
        (
            "keypoint index dump",
            size(&data.join("index/keypoints.bin")),
        ),
        ("audit trail", sqlite("audit.sqlite")),
    ];
    Ok(stats)
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let per = |bytes: u64| bytes as f64 / self.patterns.max(1) as f64;
        writeln!(
            f,
            "{} prints, {:.1} keypoints per print",
            self.patterns,
            per(self.keypoints)
        )?;
        writeln!(f, "\n{:<52} {:>14} {:>12}", "on disk", "total", "per print")?;
        for (name, bytes) in &self.disk {
            writeln!(f, "{name:<52} {bytes:>14} {:>12.0}", per(*bytes))?;
        }
        let total: u64 = self.disk.iter().map(|(_, b)| b).sum();
        writeln!(f, "{:<52} {total:>14} {:>12.0}", "all", per(total))?;
        writeln!(
            f,
            "\n{:<52} {:>14} {:>12}",
            "features by signal (raw)", "total", "per print"
        )?;
        for (name, bytes) in &self.signals {
            writeln!(f, "{name:<52} {bytes:>14} {:>12.0}", per(*bytes))?;
        }
        Ok(())
    }
}
