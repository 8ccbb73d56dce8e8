//! In-memory indexes over the registered prints, keyed by the registry's sequence number.
//! They are caches: the registry is the source of truth, and [`crate::engine`] rebuilds or
//! catches them up from it at start.

pub mod graph;
pub mod hashes;
pub mod keypoints;
pub mod units;

use std::sync::Arc;

use rayon::prelude::*;

pub use graph::{Graph, GraphShape, Hit, VectorIndex};
pub use hashes::{HashHit, HashIndex};
pub use keypoints::{
    KeypointDump, KeypointIndex, nearest_below, squared_bound, squared_distance_below,
};
pub use units::UnitIndex;

use crate::error::Result;
use crate::features::FeatureSet;

/// Global vectors: few, so a wide, exact-leaning graph.
pub const VECTOR_SHAPE: GraphShape = GraphShape {
    max_connections: 24,
    ef_construction: 200,
    ef_search: 96,
};

/// Every index a search consults, filled from the same feature sets.
pub struct Indexes {
    pub structure: HashIndex,
    pub lightness: HashIndex,
    pub vectors: VectorIndex,
    pub keypoints: KeypointIndex,
    pub units: UnitIndex,
}

impl Indexes {
    /// Hash and unit indexes filled from `features` (in parallel: a unit's harmonics take an
    /// FFT), around already loaded or built graphs.
    pub fn new<'a>(
        vectors: VectorIndex,
        keypoints: KeypointIndex,
        features: impl IntoParallelIterator<Item = (&'a u64, &'a Arc<FeatureSet>)>,
    ) -> Indexes {
        let indexes = Indexes {
            structure: HashIndex::default(),
            lightness: HashIndex::default(),
            vectors,
            keypoints,
            units: UnitIndex::default(),
        };
        features
            .into_par_iter()
            .for_each(|(seq, set)| indexes.insert_flat(*seq, set));
        indexes
    }

    /// The indexes searched by a flat scan, which start-up fills rather than loads.
    fn insert_flat(&self, seq: u64, features: &FeatureSet) {
        if let Some(hashes) = &features.structure_hash {
            self.structure.insert(seq, hashes.upright());
        }
        if let Some(hashes) = &features.lightness_hash {
            self.lightness.insert(seq, hashes.upright());
        }
        if let Some(unit) = &features.repeat_unit {
            self.units.insert(seq, unit);
        }
    }

    /// Adds one newly registered print to every index.
    pub fn insert(&self, seq: u64, features: &Arc<FeatureSet>) -> Result<()> {
        self.vectors.insert(seq, &features.global_vector)?;
        self.keypoints.insert(seq, features.clone());
        self.insert_flat(seq, features);
        Ok(())
    }
}
