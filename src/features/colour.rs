//! The mean colour of a print in CIELAB: a weak signal on its own (a recolouring changes it
//! entirely), kept to find candidates for prints that the structure signals cannot tell apart,
//! such as plain grounds.

use super::{Extractor, FeatureSet};
use crate::normalize::PrintImage;

pub struct MeanColourExtractor;

impl Extractor for MeanColourExtractor {
    fn extract_into(&self, print: &PrintImage, features: &mut FeatureSet) {
        let mut sum = [0f64; 3];
        for pixel in &print.lab {
            for (total, value) in sum.iter_mut().zip(pixel) {
                *total += f64::from(*value);
            }
        }
        let count = print.lab.len().max(1) as f64;
        features.mean_colour = sum.map(|total| (total / count) as f32);
    }
}

/// CIE76 colour difference ΔE*ab between two CIELAB colours.
pub fn delta_e(a: [f32; 3], b: [f32; 3]) -> f32 {
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}
