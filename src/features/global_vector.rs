//! An orientation-invariant global descriptor for the HNSW index: the magnitudes of the
//! low-frequency DCT coefficients of the lightness and structure channels, each folded over the
//! diagonal. Flips only
//! change coefficient signs and transposes swap (u, v) with (v, u), so the vector is the same for
//! all eight orientations of a print, and a single index entry serves them all.

use super::dct::{self, BLOCK_SIDE};
use super::{Extractor, FeatureSet};
use crate::normalize::PrintImage;

/// Dimensions per channel: the pairs u ≤ v of the block, less the DC term.
const PER_CHANNEL: usize = BLOCK_SIDE * (BLOCK_SIDE + 1) / 2 - 1;
/// Number of dimensions: lightness, then structure.
pub const DIMENSIONS: usize = 2 * PER_CHANNEL;

pub struct GlobalVectorExtractor;

impl Extractor for GlobalVectorExtractor {
    fn extract_into(&self, print: &PrintImage, features: &mut FeatureSet) {
        let mut vector = Vec::with_capacity(DIMENSIONS);
        for channel in [&print.lightness, &print.structure] {
            let block = dct::low_frequencies(channel);
            let mut folded = Vec::with_capacity(PER_CHANNEL);
            for v in 0..BLOCK_SIDE {
                for u in v..BLOCK_SIDE {
                    if (u, v) != (0, 0) {
                        folded.push(block[[v, u]].abs() + block[[u, v]].abs());
                    }
                }
            }
            // A channel without variation (a plain print) says nothing: left at zero.
            if !dct::is_plain(&block) {
                // The square root evens out the weight of the strong low frequencies.
                folded.iter_mut().for_each(|x| *x = x.sqrt());
                normalize_l2(&mut folded);
            } else {
                folded.fill(0.0);
            }
            vector.extend(folded);
        }
        // Each half has unit length, so no entry exceeds 1: held as a byte, a quarter of the
        // floats' memory (twice over: the print's features and the graph each hold one).
        features.global_vector = vector.iter().map(|x| (x * 255.0).round() as u8).collect();
    }
}

fn normalize_l2(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    vector.iter_mut().for_each(|x| *x /= norm);
}

/// Cosine similarity of two global vectors, in [0, 1] (they have no negative entries); 0 when
/// either is all zero.
pub fn similarity(a: &[u8], b: &[u8]) -> f32 {
    let dot = |a: &[u8], b: &[u8]| -> f32 {
        a.iter()
            .zip(b)
            .map(|(&x, &y)| u32::from(x) * u32::from(y))
            .sum::<u32>() as f32
    };
    let norms = (dot(a, a) * dot(b, b)).sqrt();
    if norms == 0.0 {
        return 0.0;
    }
    (dot(a, b) / norms).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::normalize;
    use image::{RgbImage, imageops};

    fn print() -> RgbImage {
        RgbImage::from_fn(120, 90, |x, y| {
            let inside =
                (x as i32 - 40).pow(2) + (y as i32 - 30).pow(2) < 300 || (x > 80 && y > 50);
            image::Rgb(if inside {
                [180, 20, 40]
            } else {
                [250, 240, 220]
            })
        })
    }

    fn vector_of(image: &RgbImage) -> Vec<u8> {
        let mut features = FeatureSet::default();
        GlobalVectorExtractor.extract_into(&normalize(image), &mut features);
        features.global_vector
    }

    #[test]
    fn vector_is_orientation_invariant() {
        let upright = vector_of(&print());
        assert_eq!(upright.len(), DIMENSIONS);
        assert!((similarity(&upright, &upright) - 1.0).abs() < 1e-4);
        for turned in [
            imageops::rotate90(&print()),
            imageops::flip_horizontal(&print()),
        ] {
            assert!(similarity(&upright, &vector_of(&turned)) > 0.98);
        }
    }

    #[test]
    fn plain_print_gives_zero_vector() {
        let plain = vector_of(&RgbImage::from_pixel(50, 50, image::Rgb([9, 9, 9])));
        assert!(plain.iter().all(|x| *x == 0));
    }
}
