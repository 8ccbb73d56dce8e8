//! 256-bit perceptual hashes (pHash/PDQ style: 16×16 low DCT coefficients against their
//! median) of the structure and lightness channels, in all eight orientations of the dihedral
//! group. A channel without variation (a plain print) gets no hash: its bits would be noise.
//! A quarter-turn or mirror image of a print permutes and negates DCT coefficients exactly, so
//! the eight hashes come from one DCT instead of eight resampled images.

use ndarray::Array2;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Extractor, FeatureSet, dct};
use crate::normalize::{GrayF32, PrintImage};

/// 256 bits, compared by Hamming distance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Hash256(pub [u64; 4]);

impl Hash256 {
    pub const BITS: u32 = 256;

    pub fn distance(&self, other: &Hash256) -> u32 {
        self.0
            .iter()
            .zip(&other.0)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum()
    }

    /// Bit `i` set where coefficient `i` (row-major) lies above the block's median.
    fn from_block(block: &Array2<f32>) -> Hash256 {
        let mut sorted: Vec<f32> = block.iter().copied().collect();
        sorted.sort_by(f32::total_cmp);
        let median = (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0;
        let mut words = [0u64; 4];
        for (i, value) in block.iter().enumerate() {
            if *value > median {
                words[i / 64] |= 1 << (i % 64);
            }
        }
        Hash256(words)
    }

    pub fn to_hex(self) -> String {
        self.0.iter().map(|w| format!("{w:016x}")).collect()
    }

    pub fn from_hex(text: &str) -> Option<Hash256> {
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut words = [0u64; 4];
        for (i, word) in words.iter_mut().enumerate() {
            *word = u64::from_str_radix(&text[i * 16..(i + 1) * 16], 16).ok()?;
        }
        Some(Hash256(words))
    }
}

/// Hex for people (JSON), 32 raw bytes for storage.
impl Serialize for Hash256 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_hex())
        } else {
            let bytes: Vec<u8> = self.0.iter().flat_map(|w| w.to_le_bytes()).collect();
            serializer.serialize_bytes(&bytes)
        }
    }
}

impl<'de> Deserialize<'de> for Hash256 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            return Hash256::from_hex(&text)
                .ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"));
        }
        let bytes = serde_bytes::ByteBuf::deserialize(deserializer)?;
        if bytes.len() != 32 {
            return Err(serde::de::Error::custom("expected 32 bytes"));
        }
        let mut words = [0u64; 4];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            *word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        }
        Ok(Hash256(words))
    }
}

/// The eight orientations of a print: quarter-turns clockwise, optionally after a left-right
/// mirror.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dihedral {
    Identity,
    Rotate90,
    Rotate180,
    Rotate270,
    Mirror,
    MirrorRotate90,
    MirrorRotate180,
    MirrorRotate270,
}

impl Dihedral {
    pub const ALL: [Dihedral; 8] = [
        Dihedral::Identity,
        Dihedral::Rotate90,
        Dihedral::Rotate180,
        Dihedral::Rotate270,
        Dihedral::Mirror,
        Dihedral::MirrorRotate90,
        Dihedral::MirrorRotate180,
        Dihedral::MirrorRotate270,
    ];

    /// Plain words for explanations.
    pub fn describe(self) -> &'static str {
        match self {
            Dihedral::Identity => "upright",
            Dihedral::Rotate90 => "turned 90° clockwise",
            Dihedral::Rotate180 => "turned 180°",
            Dihedral::Rotate270 => "turned 90° anticlockwise",
            Dihedral::Mirror => "mirrored",
            Dihedral::MirrorRotate90 => "mirrored and turned 90° clockwise",
            Dihedral::MirrorRotate180 => "mirrored and turned 180°",
            Dihedral::MirrorRotate270 => "mirrored and turned 90° anticlockwise",
        }
    }

    /// The coefficient block of the image transformed by `self`, from the block of the image.
    /// On coefficients, a left-right flip negates odd horizontal frequencies, an up-down flip
    /// odd vertical ones, and a transpose swaps the two axes.
    pub fn apply_to_block(self, block: &Array2<f32>) -> Array2<f32> {
        let mirrored = matches!(
            self,
            Dihedral::Mirror
                | Dihedral::MirrorRotate90
                | Dihedral::MirrorRotate180
                | Dihedral::MirrorRotate270
        );
        let mut out = if mirrored {
            flip(block, true, false)
        } else {
            block.clone()
        };
        out = match self {
            Dihedral::Identity | Dihedral::Mirror => out,
            Dihedral::Rotate90 | Dihedral::MirrorRotate90 => flip(&out.t().to_owned(), true, false),
            Dihedral::Rotate180 | Dihedral::MirrorRotate180 => flip(&out, true, true),
            Dihedral::Rotate270 | Dihedral::MirrorRotate270 => {
                flip(&out.t().to_owned(), false, true)
            }
        };
        out
    }
}

fn flip(block: &Array2<f32>, left_right: bool, up_down: bool) -> Array2<f32> {
    let mut out = block.clone();
    for ((v, u), value) in out.indexed_iter_mut() {
        if (left_right && u % 2 == 1) != (up_down && v % 2 == 1) {
            *value = -*value;
        }
    }
    out
}

/// The hash of a print in each of the eight orientations, in [`Dihedral::ALL`] order, or in
/// the upright one alone: all that a registered print is compared by as a reference
/// ([`Self::keep_upright`]): about 450 bytes a print less in memory (two channels, measured
/// at 100,507 prints).
#[derive(Clone, Debug, PartialEq)]
pub struct DihedralHashes(Box<[Hash256]>);

/// How the eight hashes are stored: one newtype of a fixed array, as they always were.
#[derive(Serialize, Deserialize)]
#[serde(rename = "DihedralHashes")]
struct StoredHashes([Hash256; 8]);

impl Serialize for DihedralHashes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let all: [Hash256; 8] = self.0.as_ref().try_into().map_err(|_| {
            serde::ser::Error::custom("only a print's hashes in all eight orientations are stored")
        })?;
        StoredHashes(all).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for DihedralHashes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(DihedralHashes::new(
            StoredHashes::deserialize(deserializer)?.0,
        ))
    }
}

impl DihedralHashes {
    pub fn new(all: [Hash256; 8]) -> DihedralHashes {
        DihedralHashes(Box::new(all))
    }

    /// The hashes of a channel, or `None` when it is plain.
    pub fn of_channel(channel: &GrayF32) -> Option<DihedralHashes> {
        let block = dct::low_frequencies(channel);
        (!dct::is_plain(&block)).then(|| DihedralHashes::from_block(&block))
    }

    pub fn from_block(block: &Array2<f32>) -> DihedralHashes {
        DihedralHashes::new(Dihedral::ALL.map(|d| Hash256::from_block(&d.apply_to_block(block))))
    }

    /// The hash of the print as it was uploaded.
    pub fn upright(&self) -> Hash256 {
        self.0[0]
    }

    /// Keeps the upright hash alone.
    pub fn keep_upright(&mut self) {
        self.0 = Box::new([self.upright()]);
    }

    /// The smallest distance from any orientation of `self` to `other` upright, with the
    /// orientation that reaches it (of those kept).
    pub fn closest(&self, other: &Hash256) -> (u32, Dihedral) {
        Dihedral::ALL
            .iter()
            .zip(&self.0)
            .map(|(d, h)| (h.distance(other), *d))
            .min_by_key(|(distance, _)| *distance)
            .expect("at least the upright hash")
    }
}

/// Hashes the colour-robust structure channel (edges between inks).
pub struct StructureHashExtractor;

impl Extractor for StructureHashExtractor {
    fn extract_into(&self, print: &PrintImage, features: &mut FeatureSet) {
        features.structure_hash = DihedralHashes::of_channel(&print.structure);
    }
}

/// Hashes lightness, as PDQ does: dense all-over prints have too little coarse edge structure
/// for the structure hash, but their coarse light and dark areas survive re-encoding.
pub struct LightnessHashExtractor;

impl Extractor for LightnessHashExtractor {
    fn extract_into(&self, print: &PrintImage, features: &mut FeatureSet) {
        features.lightness_hash = DihedralHashes::of_channel(&print.lightness);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, imageops};
    use ndarray::ArrayView2;

    fn test_pattern() -> GrayImage {
        GrayImage::from_fn(64, 64, |x, y| {
            image::Luma([((x * 7 + y * y * 3 + (x * y) % 13) % 251) as u8])
        })
    }

    fn block(image: &GrayImage) -> Array2<f32> {
        let samples: Vec<f32> = image.as_raw().iter().map(|&v| f32::from(v)).collect();
        dct::block_of(ArrayView2::from_shape((64, 64), &samples).unwrap())
    }

    #[test]
    fn coefficient_algebra_matches_turned_and_mirrored_images() {
        let image = test_pattern();
        let original = block(&image);
        let mirrored = imageops::flip_horizontal(&image);
        let cases = [
            (Dihedral::Rotate90, imageops::rotate90(&image)),
            (Dihedral::Rotate180, imageops::rotate180(&image)),
            (Dihedral::Rotate270, imageops::rotate270(&image)),
            (Dihedral::Mirror, mirrored.clone()),
            (Dihedral::MirrorRotate90, imageops::rotate90(&mirrored)),
            (Dihedral::MirrorRotate180, imageops::rotate180(&mirrored)),
            (Dihedral::MirrorRotate270, imageops::rotate270(&mirrored)),
        ];
        for (dihedral, transformed) in cases {
            let expected = block(&transformed);
            let derived = dihedral.apply_to_block(&original);
            let worst = (&expected - &derived)
                .iter()
                .fold(0f32, |m, d| m.max(d.abs()));
            assert!(worst < 0.05, "{dihedral:?} differs by {worst}");
        }
    }

    #[test]
    fn a_turned_image_is_found_in_its_orientation() {
        let image = test_pattern();
        let hashes = DihedralHashes::from_block(&block(&image));
        let turned = DihedralHashes::from_block(&block(&imageops::rotate90(&image)));
        assert_eq!(hashes.closest(&turned.upright()), (0, Dihedral::Rotate90));
        assert!(hashes.upright().distance(&turned.upright()) > 64);

        // Stored as eight; kept upright alone as a reference, which is never stored.
        let stored = postcard::to_allocvec(&hashes).unwrap();
        assert_eq!(
            postcard::from_bytes::<DihedralHashes>(&stored).unwrap(),
            hashes
        );
        let mut reference = hashes.clone();
        reference.keep_upright();
        assert_eq!(reference.upright(), hashes.upright());
        assert_eq!(
            reference.closest(&hashes.upright()),
            (0, Dihedral::Identity)
        );
        assert!(postcard::to_allocvec(&reference).is_err());
    }

    #[test]
    fn a_plain_ground_compressed_or_photographed_gets_no_hash() {
        // JPEG blocks and sensor noise on one colour are edges too, faint ones, which the
        // saturated structure channel would strengthen were it not smoothed first.
        let mut noise = 7u32;
        let photographed = image::RgbImage::from_fn(300, 200, |_, _| {
            noise = noise.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let grain = ((noise >> 16) % 7) as u8;
            image::Rgb([150 + grain, 60 + grain, 40 + grain])
        });
        for quality in [30, 75] {
            let mut jpeg = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, quality)
                .encode_image(&photographed)
                .unwrap();
            let decoded = image::load_from_memory(&jpeg).unwrap().to_rgb8();
            let features = super::super::extract(&crate::normalize::normalize(&decoded));
            assert!(features.structure_hash.is_none(), "q{quality}");
            assert!(features.lightness_hash.is_none(), "q{quality}");
        }
    }

    #[test]
    fn hex_round_trip() {
        let hash = Hash256([1, u64::MAX, 0, 0xdead_beef]);
        assert_eq!(Hash256::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(Hash256::from_hex("xyz"), None);
    }
}
