//! What huaxing remembers of a print: a list of extractors, each filling its part of one
//! versioned [`FeatureSet`]. A new extractor adds a field and an entry in [`EXTRACTORS`]; the
//! API and the registry store and pass the set as a whole and need no change.

pub mod colour;
pub mod dct;
pub mod dct_hash;
pub mod global_vector;
pub mod keypoints;

use serde::{Deserialize, Serialize};

use crate::normalize::PrintImage;
pub use dct_hash::{Dihedral, DihedralHashes, Hash256};

/// Bumped whenever any extractor changes what it computes. Stored features of another version
/// are never compared with new ones: they are re-extracted from the stored upload.
pub const FEATURE_VERSION: u32 = 2;

/// Everything the extractors computed for one print.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureSet {
    /// 256-bit DCT hash of the structure channel, in all eight quarter-turns and mirror
    /// images; `None` for a print without edges.
    pub structure_hash: Option<DihedralHashes>,
    /// The same hash of the lightness channel; `None` for a print of one lightness.
    pub lightness_hash: Option<DihedralHashes>,
    /// Mean CIELAB colour: orders prints that the structure cannot tell apart.
    pub mean_colour: [f32; 3],
    /// Keypoints and descriptors of the structure channel.
    pub local: keypoints::LocalFeatures,
    /// Orientation-invariant global descriptor, indexed by HNSW: each channel's half has unit
    /// length, or is zero when the channel is plain.
    pub global_vector: Vec<f32>,
}

/// One stage of feature extraction.
pub trait Extractor: Sync {
    /// Computes this extractor's part of `features` from the working image.
    fn extract_into(&self, print: &PrintImage, features: &mut FeatureSet);
}

/// The whole-print extractors, in the order they run. The keypoint extractor, which costs as
/// much as all of them together, runs beside them on another thread.
pub const EXTRACTORS: &[&dyn Extractor] = &[
    &dct_hash::StructureHashExtractor,
    &dct_hash::LightnessHashExtractor,
    &global_vector::GlobalVectorExtractor,
    &colour::MeanColourExtractor,
];

/// Runs every extractor on one print.
pub fn extract(print: &PrintImage) -> FeatureSet {
    let run = |extractors: &[&dyn Extractor]| {
        let mut features = FeatureSet::default();
        for extractor in extractors {
            extractor.extract_into(print, &mut features);
        }
        features
    };
    let (mut features, local) = rayon::join(
        || run(EXTRACTORS),
        || run(&[&keypoints::KeypointExtractor]).local,
    );
    features.local = local;
    features
}

impl FeatureSet {
    /// The stored form: JSON, so that a person can read what is kept about a print.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("feature sets always serialise")
    }

    /// Reads the stored form, refusing a set whose keypoints and descriptors disagree.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let features: FeatureSet = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if features.local.keypoints.len() != features.local.descriptors.len() {
            return Err("keypoints and descriptors differ in number".into());
        }
        Ok(features)
    }
}
