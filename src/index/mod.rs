//! In-memory indexes over the registered prints, keyed by the registry's sequence number.
//! They are caches: the registry is the source of truth, and [`crate::engine`] rebuilds or
//! catches them up from it at start.

pub mod hashes;
pub mod vectors;

pub use hashes::{HashHit, HashIndex};
pub use vectors::{VectorHit, VectorIndex};

use crate::error::Result;
use crate::features::FeatureSet;

/// Every index a search consults, filled from the same feature sets.
pub struct Indexes {
    pub structure: HashIndex,
    pub lightness: HashIndex,
    pub vectors: VectorIndex,
}

impl Indexes {
    /// Hash indexes filled from `features`, around an already loaded or built vector index.
    pub fn new<'a>(
        vectors: VectorIndex,
        features: impl IntoIterator<Item = (u64, &'a FeatureSet)>,
    ) -> Indexes {
        let indexes = Indexes {
            structure: HashIndex::default(),
            lightness: HashIndex::default(),
            vectors,
        };
        for (seq, set) in features {
            indexes.insert_hashes(seq, set);
        }
        indexes
    }

    fn insert_hashes(&self, seq: u64, features: &FeatureSet) {
        if let Some(hashes) = &features.structure_hash {
            self.structure.insert(seq, hashes.upright());
        }
        if let Some(hashes) = &features.lightness_hash {
            self.lightness.insert(seq, hashes.upright());
        }
    }

    /// Adds one newly registered print to every index.
    pub fn insert(&self, seq: u64, features: &FeatureSet) -> Result<()> {
        self.vectors.insert(seq, &features.global_vector)?;
        self.insert_hashes(seq, features);
        Ok(())
    }
}
