//! What huaxing remembers of a print: a list of extractors, each filling its part of one
//! versioned [`FeatureSet`]. A new extractor adds a field and an entry in [`EXTRACTORS`]; the
//! API and the registry store and pass the set as a whole and need no change.

pub mod colour;
pub mod dct;
pub mod dct_hash;
pub mod global_vector;
pub mod inks;
pub mod keypoints;
pub mod regions;
pub mod repeat_unit;

use serde::{Deserialize, Serialize};

use crate::normalize::PrintImage;
pub use dct_hash::{Dihedral, DihedralHashes, Hash256};

/// Bumped whenever any extractor changes what it computes. Stored features of another version
/// are never compared with new ones: they are re-extracted from the stored upload.
pub const FEATURE_VERSION: u32 = 11;

/// Everything the extractors computed for one print.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureSet {
    /// 256-bit DCT hash of the structure channel, in all eight quarter-turns and mirror
    /// images; `None` for a print without edges.
    pub structure_hash: Option<DihedralHashes>,
    /// The same hash of the lightness channel; `None` for a print of one lightness.
    pub lightness_hash: Option<DihedralHashes>,
    /// Mean CIELAB colour: finds candidates for a print whose structure says nothing.
    pub mean_colour: [f32; 3],
    /// Keypoints and descriptors of the structure channel.
    pub local: keypoints::LocalFeatures,
    /// Orientation-invariant global descriptor, indexed by HNSW: each channel's half has unit
    /// length (scaled to 255), or is zero when the channel is plain.
    pub global_vector: Vec<u8>,
    /// The print's inks and where each lies: tells which ink became which in a copy.
    pub inks: inks::InkMap,
    /// The print's lattice and its unit folded from every repeat; `None` where no repeat shows.
    #[serde(default)]
    pub repeat_unit: Option<repeat_unit::RepeatUnit>,
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
    &inks::InkMapExtractor,
    &repeat_unit::RepeatUnitExtractor,
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

/// First byte of the stored form: binary (postcard) features. Sets stored as JSON by earlier
/// versions start with `{` and are still read.
const BINARY_FORMAT: u8 = 0xB1;

impl FeatureSet {
    /// The stored form: a format byte and the set in postcard's compact binary encoding (raw
    /// descriptor and hash bytes, about half the size of JSON with hex, and faster to read at
    /// start-up).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = vec![BINARY_FORMAT];
        postcard::to_io(self, &mut bytes).expect("feature sets always serialise");
        bytes
    }

    /// Keeps what a registered print is compared by as a reference, in memory: its hashes
    /// upright only (a query turns itself to meet them). A registered print searched or compared
    /// as a query is read whole from the registry ([`crate::engine::Engine::features_of`]).
    pub fn keep_reference(&mut self) {
        for hashes in [&mut self.structure_hash, &mut self.lightness_hash]
            .into_iter()
            .flatten()
        {
            hashes.keep_upright();
        }
    }

    /// Reads the stored form, refusing a set whose keypoints and descriptors disagree.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let features: FeatureSet = match bytes.split_first() {
            Some((&BINARY_FORMAT, rest)) => {
                postcard::from_bytes(rest).map_err(|e| e.to_string())?
            }
            Some((b'{', _)) => serde_json::from_slice(bytes).map_err(|e| e.to_string())?,
            _ => return Err("unknown stored feature format".into()),
        };
        if features.local.keypoints.len() != features.local.descriptors.len() {
            return Err("keypoints and descriptors differ in number".into());
        }
        if features.local.query_only > features.local.descriptors.len() {
            return Err("more query-only keypoints than keypoints".into());
        }
        if let Some(unit) = &features.repeat_unit
            && unit.cells.len() != repeat_unit::UNIT_SIDE * repeat_unit::UNIT_SIDE
        {
            return Err("a repeat unit of the wrong size".into());
        }
        Ok(features)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FeatureSet {
        let mut image = image::RgbImage::from_pixel(120, 90, image::Rgb([240, 230, 200]));
        for (x, y, pixel) in image.enumerate_pixels_mut() {
            if (x / 15 + y / 15) % 3 == 0 {
                *pixel = image::Rgb([150, 30, 60]);
            }
        }
        extract(&crate::normalize::normalize(&image))
    }

    #[test]
    fn stored_features_read_back_the_same_binary_or_json() {
        let features = sample();
        assert!(!features.local.descriptors.is_empty() && features.structure_hash.is_some());
        let binary = features.to_bytes();
        assert_eq!(FeatureSet::from_bytes(&binary).unwrap(), features);
        let json = serde_json::to_vec(&features).unwrap();
        assert!(
            binary.len() * 2 < json.len(),
            "{} vs {}",
            binary.len(),
            json.len()
        );
        assert_eq!(FeatureSet::from_bytes(&json).unwrap(), features);
        assert!(FeatureSet::from_bytes(&binary[..binary.len() / 2]).is_err());
        assert!(FeatureSet::from_bytes(b"").is_err());
        let mut inconsistent = features.clone();
        inconsistent.local.query_only = inconsistent.local.descriptors.len() + 1;
        assert!(FeatureSet::from_bytes(&inconsistent.to_bytes()).is_err());
        let mut cut_unit = features;
        cut_unit.repeat_unit = Some(repeat_unit::RepeatUnit {
            lattice: [[40.0, 0.0], [0.0, 40.0]],
            cells: vec![0; 100],
        });
        assert!(FeatureSet::from_bytes(&cut_unit.to_bytes()).is_err());
    }
}
