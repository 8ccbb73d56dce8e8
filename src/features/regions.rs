//! Ink regions: the flat areas of one ink that the structure channel's edges enclose (a leaf, a
//! face, a petal). Where a difference-of-Gaussians keypoint finds the corners and curves of a
//! motif at the few scales its detector samples, a region has a size of its own: the same
//! motif printed at half its size gives the same region at half its radius. Each region
//! becomes a keypoint at its centre with a scale from its area, so a motif placed anew at
//! another size (a rearranged or partial copy) still meets its original's descriptors.

use crate::normalize::GrayF32;

/// Structure-channel strength below which a pixel lies inside an ink area, not on a boundary:
/// an ink boundary reads near 1 (the channel is saturated). Strong JPEG noise reads above a
/// half in places and splits some regions, yet a bar of 0.9 found fewer copies (docs/matching.md
/// §3).
const FLAT: f32 = 0.5;
/// Fewest pixels a region needs: smaller ones are dots and the gaps of anti-aliasing.
const MIN_AREA: u32 = 40;
/// Most of the channel one region may cover: larger ones are the print's ground.
const MAX_SHARE: f32 = 1.0 / 8.0;
/// Longest axis over shortest (of the region's second moments) beyond which a region is a
/// stripe or a band of ground, not a shape.
const MAX_ELONGATION: f32 = 8.0;
/// The boundary band around a region reads above [`FLAT`], so its flat interior is smaller
/// than the area the ink covers by about this many pixels of radius.
const BOUNDARY_BAND: f32 = 1.5;

/// A region's centre and the radius of the disc of the same area, in pixels of the channel.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InkRegion {
    pub x: f32,
    pub y: f32,
    pub radius: f32,
}

/// Per-region sums as the pixels of one component are visited.
#[derive(Default)]
struct Moments {
    area: u32,
    x: f64,
    y: f64,
    xx: f64,
    yy: f64,
    xy: f64,
}

impl Moments {
    fn add(&mut self, x: usize, y: usize) {
        let (x, y) = (x as f64, y as f64);
        self.area += 1;
        self.x += x;
        self.y += y;
        self.xx += x * x;
        self.yy += y * y;
        self.xy += x * y;
    }

    fn centre(&self) -> (f64, f64) {
        let n = f64::from(self.area);
        (self.x / n, self.y / n)
    }

    /// The ratio of the longer axis to the shorter, from the covariance's eigenvalues.
    fn elongation(&self) -> f32 {
        let n = f64::from(self.area);
        let (mx, my) = self.centre();
        let (a, b, c) = (
            self.xx / n - mx * mx,
            self.yy / n - my * my,
            self.xy / n - mx * my,
        );
        let spread = ((a - b) * (a - b) / 4.0 + c * c).sqrt();
        let (major, minor) = ((a + b) / 2.0 + spread, (a + b) / 2.0 - spread);
        (major / minor.max(1e-6)).sqrt() as f32
    }
}

/// The ink regions of a structure channel, largest first: the 4-connected components of its
/// flat pixels, less dots, grounds and stripes.
pub fn ink_regions(channel: &GrayF32) -> Vec<InkRegion> {
    let (width, height) = (channel.width() as usize, channel.height() as usize);
    // Flat pixels not yet taken into a region.
    let mut unvisited: Vec<bool> = channel.as_raw().iter().map(|&v| v < FLAT).collect();
    let mut stack = Vec::new();
    let mut regions = Vec::new();
    let max_area = MAX_SHARE * (width * height) as f32;
    for start in 0..unvisited.len() {
        if !unvisited[start] {
            continue;
        }
        let mut moments = Moments::default();
        unvisited[start] = false;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % width, i / width);
            moments.add(x, y);
            let neighbours = [
                (x > 0).then(|| i - 1),
                (x + 1 < width).then(|| i + 1),
                (y > 0).then(|| i - width),
                (y + 1 < height).then(|| i + width),
            ];
            for j in neighbours.into_iter().flatten() {
                if unvisited[j] {
                    unvisited[j] = false;
                    stack.push(j);
                }
            }
        }
        let area = moments.area as f32;
        if moments.area < MIN_AREA || area > max_area || moments.elongation() > MAX_ELONGATION {
            continue;
        }
        let (x, y) = moments.centre();
        regions.push(InkRegion {
            x: x as f32,
            y: y as f32,
            radius: (area / std::f32::consts::PI).sqrt() + BOUNDARY_BAND,
        });
    }
    regions.sort_by(|a, b| b.radius.total_cmp(&a.radius));
    regions
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::normalize;
    use image::{Rgb, RgbImage};

    /// Two inks' shapes on a ground with a scatter of small dots and a band of stripes: a
    /// lemon-shaped blob with a bite out of it and a round spot inside, and a plain disc.
    fn print(inks: [[u8; 3]; 4]) -> RgbImage {
        RgbImage::from_fn(512, 512, |x, y| {
            let (x, y) = (x as f32, y as f32);
            let lemon = ((x - 160.0) / 90.0).powi(2) + ((y - 170.0) / 60.0).powi(2) < 1.0;
            let bite = (x - 230.0).abs() < 25.0 && (y - 150.0).abs() < 20.0;
            let spot = (x - 130.0).powi(2) + (y - 180.0).powi(2) < 20.0 * 20.0;
            let disc = (x - 370.0).powi(2) + (y - 380.0).powi(2) < 50.0 * 50.0;
            let dot = (x as u32 % 64 < 3) && (y as u32 % 64 < 3);
            let stripe = y > 460.0 && (y as u32 / 10).is_multiple_of(2);
            Rgb(if spot {
                inks[2]
            } else if lemon && !bite || disc {
                inks[1]
            } else if dot {
                inks[3]
            } else if stripe {
                inks[0]
            } else {
                inks[3]
            })
        })
    }

    const INKS: [[u8; 3]; 4] = [
        [30, 60, 120],
        [220, 180, 40],
        [150, 30, 40],
        [240, 235, 220],
    ];

    #[test]
    fn shapes_are_regions_but_grounds_stripes_and_dots_are_not() {
        let regions = ink_regions(&normalize(&print(INKS)).structure);
        // The lemon less its spot, the spot, the disc: the working image is 384 pixels, so
        // radii are three quarters of the drawing's.
        assert_eq!(regions.len(), 3, "{regions:?}");
        let near = |x: f32, y: f32, radius: f32| {
            regions.iter().any(|r| {
                (r.x - x * 0.75).abs() < 3.0
                    && (r.y - y * 0.75).abs() < 3.0
                    && (r.radius - radius * 0.75).abs() < 4.0
            })
        };
        assert!(near(370.0, 380.0, 50.0), "the disc: {regions:?}");
        assert!(near(130.0, 180.0, 20.0), "the spot: {regions:?}");
    }

    #[test]
    fn a_recoloured_print_has_the_same_regions() {
        let recoloured = [[120, 200, 90], [20, 20, 20], [200, 120, 230], [90, 40, 10]];
        let a = ink_regions(&normalize(&print(INKS)).structure);
        let b = ink_regions(&normalize(&print(recoloured)).structure);
        assert_eq!(a.len(), b.len(), "{a:?} against {b:?}");
        for (a, b) in a.iter().zip(&b) {
            assert!(
                (a.x - b.x).abs() < 1.0 && (a.y - b.y).abs() < 1.0,
                "{a:?} {b:?}"
            );
            assert!((a.radius - b.radius).abs() < 1.0, "{a:?} {b:?}");
        }
    }
}
