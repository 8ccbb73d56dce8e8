//! In-memory indexes over the registered prints, keyed by the registry's sequence number.
//! They are caches: the registry is the source of truth, and [`crate::engine`] rebuilds or
//! catches them up from it at start.

pub mod graph;
pub mod hashes;

use anndists::dist::Distance;

pub use graph::{Graph, GraphShape, Hit, VectorIndex};
pub use hashes::{HashHit, HashIndex};

use crate::error::Result;
use crate::features::FeatureSet;

/// Global vectors: few, so a wide, exact-leaning graph.
pub const VECTOR_SHAPE: GraphShape = GraphShape {
    max_connections: 24,
    ef_construction: 200,
    ef_search: 96,
};
/// Keypoint descriptors: hundreds per print, so a lean graph that is quick to extend; the
/// pairwise verifier re-checks every candidate it proposes.
pub const KEYPOINT_SHAPE: GraphShape = GraphShape {
    max_connections: 12,
    ef_construction: 32,
    ef_search: 16,
};

/// Keypoint descriptors, as bytes.
pub type KeypointIndex = Graph<u8, DescriptorDistance>;

/// Euclidean distance between byte descriptors, summed in integers (exact, and vectorised by
/// the compiler).
#[derive(Clone, Copy, Debug, Default)]
pub struct DescriptorDistance;

impl Distance<u8> for DescriptorDistance {
    fn eval(&self, a: &[u8], b: &[u8]) -> f32 {
        descriptor_distance(a, b)
    }
}

pub fn descriptor_distance(a: &[u8], b: &[u8]) -> f32 {
    let sum: u32 = a
        .iter()
        .zip(b)
        .map(|(x, y)| {
            let d = u32::from(x.abs_diff(*y));
            d * d
        })
        .sum();
    (sum as f32).sqrt()
}

/// The id of keypoint `index` of print `seq` in the keypoint index.
pub fn keypoint_id(seq: u64, index: usize) -> u64 {
    (seq << 16) | index as u64
}

/// The print and keypoint index behind a keypoint id.
pub fn keypoint_owner(id: u64) -> (u64, usize) {
    (id >> 16, (id & 0xffff) as usize)
}

/// A print's keypoint descriptors as index items.
pub fn keypoint_items(seq: u64, features: &FeatureSet) -> Vec<(u64, Vec<u8>)> {
    features
        .local
        .descriptors
        .iter()
        .enumerate()
        .map(|(i, d)| (keypoint_id(seq, i), d.to_vec()))
        .collect()
}

/// Every index a search consults, filled from the same feature sets.
pub struct Indexes {
    pub structure: HashIndex,
    pub lightness: HashIndex,
    pub vectors: VectorIndex,
    pub keypoints: KeypointIndex,
}

impl Indexes {
    /// Hash indexes filled from `features`, around already loaded or built graphs.
    pub fn new<'a>(
        vectors: VectorIndex,
        keypoints: KeypointIndex,
        features: impl IntoIterator<Item = (u64, &'a FeatureSet)>,
    ) -> Indexes {
        let indexes = Indexes {
            structure: HashIndex::default(),
            lightness: HashIndex::default(),
            vectors,
            keypoints,
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
        self.keypoints.insert_many(&keypoint_items(seq, features))?;
        self.insert_hashes(seq, features);
        Ok(())
    }
}
