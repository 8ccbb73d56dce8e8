//! The ink map: a print separated into its inks, and a small map of which ink lies where.
//! Prints are screen-printed in a few inks, and a new colourway is the same map under another
//! palette; comparing two maps where local features match tells which ink became which (the
//! palette mapping of an explanation, `search::palette`).

use serde::{Deserialize, Serialize};

use super::colour::delta_e;
use super::{Extractor, FeatureSet};
use crate::normalize::{PrintImage, lab_to_srgb};

/// Longest side of the stored map, in cells: about five working pixels a cell, so a motif of
/// 20–50 working pixels spans several cells. At half a byte a cell it costs at most 1,152 bytes.
const MAP_SIDE: usize = 48;
/// Most inks a map tells apart: a label is half a byte.
const MAX_INKS: usize = 16;
/// Least share of the print an ink of the map covers (1%): rarer colours (the blend along an
/// edge, the smear of a JPEG's halved colour resolution) go to the nearest ink.
const MIN_SHARE: f32 = 0.01;
/// Colours closer than this (CIE76 ΔE) are one ink: a just-visible difference, well above
/// the spread of one ink in a JPEG.
const SAME_INK: f32 = 12.0;
/// Colour bins before merging: L* in steps of 10, a* and b* in steps of 16.
const L_STEP: f32 = 10.0;
const AB_STEP: f32 = 16.0;
const L_BINS: usize = 11;
const AB_BINS: usize = 16;

/// The inks of a print and where each lies.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InkMap {
    /// The inks in sRGB, largest share first.
    pub inks: Vec<[u8; 3]>,
    pub width: u8,
    pub height: u8,
    /// One ink number per cell, row-major, two cells a byte (the first in the low half).
    #[serde(with = "serde_bytes")]
    cells: Vec<u8>,
}

impl InkMap {
    /// The ink number at a cell; `None` outside the map.
    pub fn ink_at(&self, x: i32, y: i32) -> Option<usize> {
        let (w, h) = (i32::from(self.width), i32::from(self.height));
        if !(0..w).contains(&x) || !(0..h).contains(&y) {
            return None;
        }
        let cell = (y * w + x) as usize;
        let byte = *self.cells.get(cell / 2)?;
        let ink = usize::from(if cell.is_multiple_of(2) {
            byte & 0x0f
        } else {
            byte >> 4
        });
        (ink < self.inks.len()).then_some(ink)
    }

    /// The share of the map's cells each ink covers, in the order of `inks`.
    pub fn shares(&self) -> Vec<f32> {
        let mut cells = vec![0u32; self.inks.len()];
        for y in 0..i32::from(self.height) {
            for x in 0..i32::from(self.width) {
                if let Some(ink) = self.ink_at(x, y) {
                    cells[ink] += 1;
                }
            }
        }
        let total = (usize::from(self.width) * usize::from(self.height)).max(1) as f32;
        cells.into_iter().map(|n| n as f32 / total).collect()
    }

    /// The width and height of one cell in an image `width` × `height` that the map covers.
    pub fn cell_size(&self, width: u32, height: u32) -> (f32, f32) {
        (
            width as f32 / f32::from(self.width.max(1)),
            height as f32 / f32::from(self.height.max(1)),
        )
    }

    /// The ink under a point of an image `width` × `height` that the map covers (a print's
    /// keypoint image); `None` off the print.
    pub fn ink_under(&self, (x, y): (f32, f32), width: u32, height: u32) -> Option<usize> {
        let cell =
            |v: f32, side: u32, cells: u8| (v / side.max(1) as f32 * f32::from(cells)).floor();
        self.ink_at(
            cell(x, width, self.width) as i32,
            cell(y, height, self.height) as i32,
        )
    }
}

pub struct InkMapExtractor;

impl Extractor for InkMapExtractor {
    fn extract_into(&self, print: &PrintImage, features: &mut FeatureSet) {
        features.inks = ink_map(&print.lab, print.width as usize, print.height as usize);
    }
}

/// An sRGB colour as people write it: `#rrggbb`.
pub fn hex([r, g, b]: [u8; 3]) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// The main inks among CIELAB pixels with the share of pixels each covers, largest first:
/// pixels binned coarsely, bins merged into the largest one within [`SAME_INK`], each ink the
/// mean of what it gathered.
fn main_inks(pixels: &[[f32; 3]]) -> Vec<([f32; 3], f32)> {
    // L* in [0, 100] and a*, b* in [-128, 128): 11 × 16 × 16 bins.
    let step =
        |v: f32, size: f32, bins: usize| ((v / size).floor().max(0.0) as usize).min(bins - 1);
    let bin = |[l, a, b]: [f32; 3]| {
        let ab = |v: f32| step(v + 128.0, AB_STEP, AB_BINS);
        (step(l, L_STEP, L_BINS) * AB_BINS + ab(a)) * AB_BINS + ab(b)
    };
    let mut bins = vec![([0.0f32; 3], 0.0f32); L_BINS * AB_BINS * AB_BINS];
    for &pixel in pixels {
        let (sum, count) = &mut bins[bin(pixel)];
        for c in 0..3 {
            sum[c] += pixel[c];
        }
        *count += 1.0;
    }
    let mut colours: Vec<([f32; 3], f32)> = bins
        .into_iter()
        .filter(|(_, count)| *count > 0.0)
        .map(|(sum, count)| (sum.map(|s| s / count), count))
        .collect();
    colours.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut inks: Vec<([f32; 3], f32)> = Vec::new();
    for (lab, count) in colours {
        match inks
            .iter_mut()
            .find(|(ink, _)| delta_e(*ink, lab) < SAME_INK)
        {
            Some((ink, n)) => {
                for c in 0..3 {
                    ink[c] = (ink[c] * *n + lab[c] * count) / (*n + count);
                }
                *n += count;
            }
            None => inks.push((lab, count)),
        }
    }
    inks.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total = pixels.len().max(1) as f32;
    inks.into_iter().map(|(lab, n)| (lab, n / total)).collect()
}

/// The ink map of a working image `width` × `height`: its [`MAX_INKS`] largest inks, each
/// pixel given to the nearest, and each cell of the map to the ink most of its pixels have.
/// Every other pixel each way is looked at: a cell spans five or more, so each still gets
/// several votes, at a quarter of the cost.
pub fn ink_map(lab: &[[f32; 3]], width: usize, height: usize) -> InkMap {
    if lab.len() != width * height || lab.is_empty() {
        return InkMap::default();
    }
    let scale = MAP_SIDE as f32 / width.max(height) as f32;
    let side = |n: usize| ((n as f32 * scale).round() as usize).clamp(1, MAP_SIDE);
    let (map_width, map_height) = (side(width), side(height));
    let (cell_of, samples): (Vec<usize>, Vec<[f32; 3]>) = (0..height)
        .step_by(2)
        .flat_map(|y| (0..width).step_by(2).map(move |x| (x, y)))
        .map(|(x, y)| {
            let cell = (y * map_height / height) * map_width + x * map_width / width;
            (cell, lab[y * width + x])
        })
        .unzip();
    let inks: Vec<[f32; 3]> = main_inks(&samples)
        .into_iter()
        .filter(|(_, share)| *share >= MIN_SHARE)
        .take(MAX_INKS)
        .map(|(ink, _)| ink)
        .collect();
    let nearest = |pixel: [f32; 3]| {
        let mut best = (f32::MAX, 0);
        for (i, ink) in inks.iter().enumerate() {
            let squared: f32 = (0..3).map(|c| (ink[c] - pixel[c]).powi(2)).sum();
            if squared < best.0 {
                best = (squared, i);
            }
        }
        best.1
    };
    let mut votes = vec![[0u16; MAX_INKS]; map_width * map_height];
    for (&cell, &pixel) in cell_of.iter().zip(&samples) {
        votes[cell][nearest(pixel)] += 1;
    }
    let mut cells = vec![0u8; votes.len().div_ceil(2)];
    for (cell, counts) in votes.iter().enumerate() {
        let ink = (0..MAX_INKS)
            .max_by_key(|&i| (counts[i], MAX_INKS - i))
            .unwrap() as u8;
        cells[cell / 2] |= if cell.is_multiple_of(2) {
            ink
        } else {
            ink << 4
        };
    }
    InkMap {
        inks: inks.into_iter().map(lab_to_srgb).collect(),
        width: map_width as u8,
        height: map_height as u8,
        cells,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::normalize;
    use image::{Rgb, RgbImage};

    /// A ground, a large blob and a bar, in the three given inks.
    fn print(inks: [[u8; 3]; 3]) -> RgbImage {
        RgbImage::from_fn(300, 240, |x, y| {
            let (dx, dy) = (x as i32 - 100, y as i32 - 110);
            Rgb(if dx * dx + 2 * dy * dy < 60 * 60 {
                inks[1]
            } else if (220..250).contains(&x) && (30..200).contains(&y) {
                inks[2]
            } else {
                inks[0]
            })
        })
    }

    fn map_of(image: &RgbImage) -> InkMap {
        let print = normalize(image);
        ink_map(&print.lab, print.width as usize, print.height as usize)
    }

    /// Cells of `a` that hold the same ink number in `b`, and all cells of `a`.
    fn agreement(a: &InkMap, b: &InkMap) -> (usize, usize) {
        let agree = (0..i32::from(a.height))
            .flat_map(|y| (0..i32::from(a.width)).map(move |x| (x, y)))
            .filter(|&(x, y)| a.ink_at(x, y) == b.ink_at(x, y))
            .count();
        (agree, usize::from(a.width) * usize::from(a.height))
    }

    #[test]
    fn a_recoloured_print_has_the_same_ink_map_under_another_palette() {
        let original = map_of(&print([[240, 230, 200], [30, 90, 160], [200, 40, 50]]));
        let recoloured = map_of(&print([[20, 40, 30], [250, 200, 60], [120, 200, 220]]));
        assert_eq!(original.inks.len(), 3, "{:?}", original.inks);
        assert_eq!(recoloured.inks.len(), 3, "{:?}", recoloured.inks);
        assert_eq!((original.width, original.height), (48, 38));
        // Ink numbers follow area, and each ink covers the same area in both: the same map,
        // but where an edge halves a cell.
        let (agree, cells) = agreement(&original, &recoloured);
        assert!(agree * 100 >= cells * 98, "{agree} of {cells} cells agree");
        let [r, g, b] = original.inks[1];
        assert!(
            b > 120 && r < 80 && g < 120,
            "the blob's ink {:?}",
            original.inks[1]
        );
        assert_eq!(original.ink_at(-1, 0), None);
        assert_eq!(original.ink_at(0, 38), None);
    }

    #[test]
    fn each_ink_covers_its_share() {
        let image = RgbImage::from_fn(100, 100, |_, y| {
            Rgb(if y < 25 {
                [180, 20, 40]
            } else {
                [250, 240, 220]
            })
        });
        let inks = main_inks(&normalize(&image).lab);
        // The upscaled boundary row blends the two, in under 1% of the print.
        assert!(
            inks[2..].iter().all(|(_, share)| *share < MIN_SHARE),
            "{inks:?}"
        );
        assert!((inks[0].1 - 0.75).abs() < 0.02 && (inks[1].1 - 0.25).abs() < 0.02);
        let [r, g, b] = lab_to_srgb(inks[1].0);
        assert!(r > 150 && g < 60 && b < 70, "{:?}", [r, g, b]);
    }

    #[test]
    fn jpeg_noise_does_not_split_an_ink() {
        let image = print([[240, 230, 200], [30, 90, 160], [200, 40, 50]]);
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 40)
            .encode_image(&image)
            .unwrap();
        let decoded = image::load_from_memory(&jpeg).unwrap().to_rgb8();
        let (clean, noisy) = (map_of(&image), map_of(&decoded));
        assert_eq!(noisy.inks.len(), 3, "{:?}", noisy.inks);
        let (agree, cells) = agreement(&clean, &noisy);
        assert!(agree * 100 >= cells * 98, "{agree} of {cells} cells agree");
    }
}
