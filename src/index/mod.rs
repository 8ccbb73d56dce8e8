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
    KeypointDump, KeypointIndex, LookupBuffers, nearest_below, squared_bound,
    squared_distance_below,
};
pub use units::UnitIndex;

use crate::error::Result;
use crate::features::{DihedralHashes, FeatureSet, repeat_unit};

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
    /// Hash and unit indexes filled from `features`, around already loaded or built graphs.
    /// Each index is filled at once, the units' harmonics (an FFT each) computed in parallel
    /// first.
    pub fn new<'a>(
        vectors: VectorIndex,
        keypoints: KeypointIndex,
        features: impl IntoParallelIterator<Item = (&'a u64, &'a Arc<FeatureSet>)>,
    ) -> Indexes {
        let features: Vec<(u64, &FeatureSet)> = features
            .into_par_iter()
            .map(|(seq, set)| (*seq, &**set))
            .collect();
        let harmonics: Vec<(u64, Vec<f32>)> = features
            .par_iter()
            .filter_map(|(seq, set)| {
                Some((*seq, repeat_unit::harmonics(set.repeat_unit.as_ref()?)))
            })
            .collect();
        let upright = |hashes: &Option<DihedralHashes>| hashes.as_ref().map(|h| h.upright());
        Indexes {
            structure: features
                .iter()
                .filter_map(|(seq, set)| Some((*seq, upright(&set.structure_hash)?)))
                .collect(),
            lightness: features
                .iter()
                .filter_map(|(seq, set)| Some((*seq, upright(&set.lightness_hash)?)))
                .collect(),
            vectors,
            keypoints,
            units: harmonics.into_iter().collect(),
        }
    }

    /// Adds one newly registered print to every index.
    pub fn insert(&self, seq: u64, features: &Arc<FeatureSet>) -> Result<()> {
        self.vectors.insert(seq, &features.global_vector)?;
        self.keypoints.insert(seq, features.clone());
        if let Some(hashes) = &features.structure_hash {
            self.structure.insert(seq, hashes.upright());
        }
        if let Some(hashes) = &features.lightness_hash {
            self.lightness.insert(seq, hashes.upright());
        }
        if let Some(unit) = &features.repeat_unit {
            self.units.insert(seq, unit);
        }
        Ok(())
    }
}
