//! Stage 2 of matching: the repeat. Most prints are all-over repeats, one unit tiled on a
//! lattice. The lattice is found where the structure channel correlates with itself moved, and
//! the print is folded into its unit: each pixel is averaged into the cell of the unit it falls
//! on, in the lattice's own coordinates. Another window onto the same print, another repeat
//! size, a quarter turn, a mirror image or a skewed photo folds into the same unit up to a
//! cyclic shift and a relabelling of the lattice's axes, which [`UnitComparison`] searches.

use std::sync::{Arc, Mutex, OnceLock};

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};
use serde::{Deserialize, Serialize};

use super::{Extractor, FeatureSet};
use crate::normalize::{GrayF32, PrintImage};

/// Cells along each side of a folded unit.
pub const UNIT_SIDE: usize = 32;
/// The structure channel is searched for its lattice at about this many pixels a side.
const SEARCH_SIDE: u32 = 128;
/// A lattice vector spans at most this share of the image's width or height, so that at least
/// 1.6 repeats show and the correlation is measured over enough of the print.
const MAX_PERIOD_SHARE: f32 = 0.62;
/// A unit covers at least one structure pixel per cell: finer repeats (a dot grid, a fine
/// texture) are left to the other signals.
const MIN_UNIT_AREA: f32 = (UNIT_SIDE * UNIT_SIDE) as f32;
/// Normalised correlation of the print with itself moved by a lattice vector, at least.
const MIN_CORRELATION: f32 = 0.45;
/// How far a lattice point's correlation stands above the correlation 3 search pixels away in
/// every direction: a stripe correlates with itself all along its length, a lattice only at
/// its points.
const MIN_PROMINENCE: f32 = 0.1;
/// The sine of the angle between the two lattice vectors, at least.
const MIN_SINE: f32 = 0.34;
/// Two lattices have the same shape when the ratios of their vectors' lengths differ by at
/// most this factor and the angles between them by at most [`SHAPE_DEGREES`]. A crop, a
/// rescaling or a turn keeps the shape; a photo skews it a little.
const SHAPE_RATIO: f32 = 1.15;
const SHAPE_DEGREES: f32 = 10.0;

/// A print's repeat: its lattice and its folded unit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepeatUnit {
    /// The lattice's two shortest vectors (x, y), in pixels of the structure channel.
    pub lattice: [[f32; 2]; 2],
    /// The unit, [`UNIT_SIDE`] × [`UNIT_SIDE`] cells (first index along the first vector),
    /// zero mean, scaled to ±127.
    pub cells: Vec<i8>,
}

pub struct RepeatUnitExtractor;

impl Extractor for RepeatUnitExtractor {
    fn extract_into(&self, print: &PrintImage, features: &mut FeatureSet) {
        features.repeat_unit = repeat_unit(&print.structure);
    }
}

/// The repeat of a structure channel, or `None` where it shows no lattice.
pub fn repeat_unit(structure: &GrayF32) -> Option<RepeatUnit> {
    let lattice = find_lattice(structure)?;
    let cells = fold(structure, lattice)?;
    Some(RepeatUnit { lattice, cells })
}

/// The channel shrunk by a whole factor to about [`SEARCH_SIDE`] a side (box filter), with
/// its width and height.
fn shrink(channel: &GrayF32) -> (Vec<f32>, usize, usize) {
    let factor = channel.width().max(channel.height()).div_ceil(SEARCH_SIDE) as usize;
    let (width, height) = (
        channel.width() as usize / factor,
        channel.height() as usize / factor,
    );
    let mut shrunk = vec![0.0; width * height];
    if width == 0 {
        // A channel narrower than the factor, as a thin strip's is: nothing to shrink.
        return (shrunk, width, height);
    }
    for (y, row) in shrunk.chunks_mut(width).enumerate() {
        for (x, value) in row.iter_mut().enumerate() {
            let mut sum = 0.0;
            for dy in 0..factor {
                for dx in 0..factor {
                    sum += channel.get_pixel((x * factor + dx) as u32, (y * factor + dy) as u32)[0];
                }
            }
            *value = sum / (factor * factor) as f32;
        }
    }
    (shrunk, width, height)
}

/// The two shortest lattice vectors of the channel, in its pixels, reduced (the second as
/// short as the first allows, at most 90° from it).
fn find_lattice(structure: &GrayF32) -> Option<[[f32; 2]; 2]> {
    let (shrunk, width, height) = shrink(structure);
    if width < 8 || height < 8 {
        return None;
    }
    let correlation = SelfCorrelation::of(&shrunk, width, height)?;
    let max_dx = (width as f32 * MAX_PERIOD_SHARE) as i32;
    let max_dy = (height as f32 * MAX_PERIOD_SHARE) as i32;
    let mut peaks = Vec::new();
    for dy in 0..=max_dy {
        for dx in -max_dx..=max_dx {
            if (dy == 0 && dx <= 0) || dx * dx + dy * dy < 9 {
                continue;
            }
            if correlation.is_lattice_point(dx, dy) {
                peaks.push((dx * dx + dy * dy, dx, dy));
            }
        }
    }
    peaks.sort_unstable();
    let (_, x1, y1) = *peaks.first()?;
    let length = |x: i32, y: i32| ((x * x + y * y) as f32).sqrt();
    let &(_, x2, y2) = peaks[1..].iter().find(|&&(_, x2, y2)| {
        ((x1 * y2 - y1 * x2).abs() as f32) > MIN_SINE * length(x1, y1) * length(x2, y2)
    })?;
    let scale_x = structure.width() as f32 / width as f32;
    let scale_y = structure.height() as f32 / height as f32;
    let to_channel = |(x, y): (f32, f32)| [x * scale_x, y * scale_y];
    let lattice = reduce([
        to_channel(correlation.refined(x1, y1)),
        to_channel(correlation.refined(x2, y2)),
    ]);
    let area = (lattice[0][0] * lattice[1][1] - lattice[0][1] * lattice[1][0]).abs();
    (area >= MIN_UNIT_AREA).then_some(lattice)
}

/// Gauss's reduction: the shortest basis of the same lattice, its vectors at most 90° apart.
fn reduce([mut a, mut b]: [[f32; 2]; 2]) -> [[f32; 2]; 2] {
    let dot = |p: [f32; 2], q: [f32; 2]| p[0] * q[0] + p[1] * q[1];
    for _ in 0..32 {
        if dot(a, a) > dot(b, b) {
            std::mem::swap(&mut a, &mut b);
        }
        let m = (dot(a, b) / dot(a, a)).round();
        if m == 0.0 {
            break;
        }
        b = [b[0] - m * a[0], b[1] - m * a[1]];
    }
    if dot(a, b) < 0.0 {
        b = [-b[0], -b[1]];
    }
    [a, b]
}

/// The normalised correlation of a channel with itself moved by every shift, each over the
/// part where the two overlap.
struct SelfCorrelation {
    values: Vec<f32>,
    padded_width: usize,
    padded_height: usize,
}

impl SelfCorrelation {
    /// `None` for a plain channel.
    fn of(channel: &[f32], width: usize, height: usize) -> Option<SelfCorrelation> {
        let (padded_width, padded_height) = (
            (2 * width).next_power_of_two(),
            (2 * height).next_power_of_two(),
        );
        let mean = channel.iter().sum::<f32>() / channel.len() as f32;
        let variance =
            channel.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / channel.len() as f32;
        if variance < 1e-6 {
            return None;
        }
        let zero = Complex32::new(0.0, 0.0);
        let mut centred = vec![zero; padded_width * padded_height];
        let mut squared = centred.clone();
        let mut inside = centred.clone();
        for y in 0..height {
            for x in 0..width {
                let v = channel[y * width + x] - mean;
                let i = y * padded_width + x;
                centred[i].re = v;
                squared[i].re = v * v;
                inside[i].re = 1.0;
            }
        }
        for grid in [&mut centred, &mut squared, &mut inside] {
            fft2(grid, padded_width, padded_height, false);
        }
        // Products moved by d against unmoved: the sum of v(x + d)·v(x), and the energy of
        // the moved part within the overlap; the unmoved part's is the latter at −d.
        let mut products: Vec<Complex32> = centred.iter().map(|c| c * c.conj()).collect::<Vec<_>>();
        let mut energy: Vec<Complex32> = squared
            .iter()
            .zip(&inside)
            .map(|(s, m)| s * m.conj())
            .collect();
        fft2(&mut products, padded_width, padded_height, true);
        fft2(&mut energy, padded_width, padded_height, true);
        let at = |grid: &[Complex32], dx: isize, dy: isize| {
            let x = dx.rem_euclid(padded_width as isize) as usize;
            let y = dy.rem_euclid(padded_height as isize) as usize;
            grid[y * padded_width + x].re
        };
        let mut values = vec![0.0; padded_width * padded_height];
        for y in 0..padded_height {
            for x in 0..padded_width {
                let (dx, dy) = (x as isize, y as isize);
                let moved = at(&energy, dx, dy).max(1e-9);
                let unmoved = at(&energy, -dx, -dy).max(1e-9);
                values[y * padded_width + x] = at(&products, dx, dy) / (moved * unmoved).sqrt();
            }
        }
        Some(SelfCorrelation {
            values,
            padded_width,
            padded_height,
        })
    }

    fn at(&self, dx: i32, dy: i32) -> f32 {
        let x = dx.rem_euclid(self.padded_width as i32) as usize;
        let y = dy.rem_euclid(self.padded_height as i32) as usize;
        self.values[y * self.padded_width + x]
    }

    /// A shift at which the channel correlates strongly with itself, more than at its
    /// neighbours, and clearly more than 3 pixels away in every direction.
    fn is_lattice_point(&self, dx: i32, dy: i32) -> bool {
        let value = self.at(dx, dy);
        if value < MIN_CORRELATION {
            return false;
        }
        let neighbours = (-1..=1).flat_map(|a| (-1..=1).map(move |b| (a, b)));
        if neighbours
            .into_iter()
            .any(|(a, b)| self.at(dx + a, dy + b) > value)
        {
            return false;
        }
        const RING: [(i32, i32); 8] = [
            (3, 0),
            (-3, 0),
            (0, 3),
            (0, -3),
            (2, 2),
            (-2, -2),
            (2, -2),
            (-2, 2),
        ];
        RING.iter()
            .all(|&(a, b)| value - self.at(dx + a, dy + b) >= MIN_PROMINENCE)
    }

    /// A lattice point to a fraction of a pixel: the vertex of a parabola through it and its
    /// two neighbours, along each axis.
    fn refined(&self, dx: i32, dy: i32) -> (f32, f32) {
        let vertex = |before: f32, at: f32, after: f32| {
            let curvature = before - 2.0 * at + after;
            if curvature < 0.0 {
                0.5 * (before - after) / curvature
            } else {
                0.0
            }
        };
        let centre = self.at(dx, dy);
        (
            dx as f32 + vertex(self.at(dx - 1, dy), centre, self.at(dx + 1, dy)),
            dy as f32 + vertex(self.at(dx, dy - 1), centre, self.at(dx, dy + 1)),
        )
    }
}

/// Every pixel of the channel averaged into the cell of the unit it falls on; `None` for a
/// plain unit.
fn fold(structure: &GrayF32, [a, b]: [[f32; 2]; 2]) -> Option<Vec<i8>> {
    let determinant = a[0] * b[1] - a[1] * b[0];
    let n = UNIT_SIDE as f32;
    let mut sums = vec![0.0f32; UNIT_SIDE * UNIT_SIDE];
    let mut counts = vec![0u32; UNIT_SIDE * UNIT_SIDE];
    for (x, y, pixel) in structure.enumerate_pixels() {
        let (x, y) = (x as f32, y as f32);
        // p = u·a + v·b, solved for u and v.
        let u = (x * b[1] - y * b[0]) / determinant;
        let v = (y * a[0] - x * a[1]) / determinant;
        let cell = |t: f32| (((t - t.floor()) * n) as usize).min(UNIT_SIDE - 1);
        let i = cell(u) * UNIT_SIDE + cell(v);
        sums[i] += pixel[0];
        counts[i] += 1;
    }
    let mut unit: Vec<f32> = sums
        .iter()
        .zip(&counts)
        .map(|(&s, &c)| if c > 0 { s / c as f32 } else { f32::NAN })
        .collect();
    let filled: Vec<f32> = unit.iter().copied().filter(|v| !v.is_nan()).collect();
    let mean = filled.iter().sum::<f32>() / filled.len().max(1) as f32;
    // A cell no pixel fell on says nothing: the mean, which the comparison ignores.
    unit.iter_mut()
        .for_each(|v| *v = if v.is_nan() { 0.0 } else { *v - mean });
    let largest = unit.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if largest < 1e-3 {
        return None;
    }
    Some(
        unit.iter()
            .map(|v| (v / largest * 127.0).round() as i8)
            .collect(),
    )
}

/// The relabellings of a lattice's axes under which the unit is compared: which of the two
/// vectors comes first, the sign of each, and the other reduced basis of a lattice of two
/// equally short diagonals (a half-drop repeat), whose choice a slight skew decides.
const RELABELLINGS: usize = 16;

/// The cells of `unit` relabelled the `k`-th way (see [`RELABELLINGS`]).
fn relabel(unit: &[f32], k: usize) -> Vec<f32> {
    let n = UNIT_SIDE;
    let (swap, flip_first, flip_second, sheared) = (k & 1 != 0, k & 2 != 0, k & 4 != 0, k & 8 != 0);
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            // The basis (a, a − b) of the same lattice: u' = u + v, v' = −v.
            let (i0, j0) = if sheared {
                ((i + j) % n, (n - j) % n)
            } else {
                (i, j)
            };
            let (i1, j1) = if swap { (j0, i0) } else { (i0, j0) };
            let i2 = if flip_first { n - 1 - i1 } else { i1 };
            let j2 = if flip_second { n - 1 - j1 } else { j1 };
            out[i * n + j] = unit[i2 * n + j2];
        }
    }
    out
}

/// A unit's cells as floats of unit length.
fn normalised(unit: &RepeatUnit) -> Vec<f32> {
    let mut cells: Vec<f32> = unit.cells.iter().map(|&c| f32::from(c)).collect();
    scale_to_unit_length(&mut cells);
    cells
}

/// Divides `values` by their Euclidean length (left as they are when it is zero).
fn scale_to_unit_length(values: &mut [f32]) {
    let norm = values
        .iter()
        .map(|v| v * v)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    values.iter_mut().for_each(|v| *v /= norm);
}

/// A lattice's shape: the ratio of its reduced vectors' lengths (at least 1) and the angle
/// between them in degrees (60° to 90°), which neither a turn, a mirror nor a rescaling changes.
fn shape([a, b]: [[f32; 2]; 2]) -> (f32, f32) {
    let (la, lb) = (a[0].hypot(a[1]), b[0].hypot(b[1]));
    let cosine = (a[0] * b[0] + a[1] * b[1]).abs() / (la * lb).max(f32::EPSILON);
    (
        la.max(lb) / la.min(lb).max(f32::EPSILON),
        cosine.min(1.0).acos().to_degrees(),
    )
}

/// A query's unit, ready to be compared with many: the spectrum of each relabelling.
pub struct UnitComparison {
    relabelled: Vec<Vec<Complex32>>,
    harmonics: Vec<Vec<f32>>,
    shape: (f32, f32),
}

impl UnitComparison {
    pub fn new(unit: &RepeatUnit) -> UnitComparison {
        let cells = normalised(unit);
        let relabelled: Vec<Vec<Complex32>> = (0..RELABELLINGS)
            .map(|k| spectrum(&relabel(&cells, k)))
            .collect();
        let harmonics = relabelled.iter().map(|s| low_magnitudes(s)).collect();
        UnitComparison {
            relabelled,
            harmonics,
            shape: shape(unit.lattice),
        }
    }

    /// [`correlation`](Self::correlation) where the two lattices have the same shape, 0 where
    /// they differ: no window, size or turn of one print changes the shape of its lattice.
    pub fn similarity(&self, reference: &RepeatUnit) -> f32 {
        if self.same_shape(reference) {
            self.correlation(reference)
        } else {
            0.0
        }
    }

    /// Whether the two lattices have the same shape (see [`SHAPE_RATIO`]).
    pub fn same_shape(&self, reference: &RepeatUnit) -> bool {
        let (ratio, degrees) = shape(reference.lattice);
        (ratio / self.shape.0).ln().abs() <= SHAPE_RATIO.ln()
            && (degrees - self.shape.1).abs() <= SHAPE_DEGREES
    }

    /// The best correlation of the two units over every cyclic shift and relabelling, in
    /// [0, 1]: 1 for the same unit.
    pub fn correlation(&self, reference: &RepeatUnit) -> f32 {
        let reference = spectrum(&normalised(reference));
        let mut best = 0.0f32;
        let mut product = vec![Complex32::new(0.0, 0.0); UNIT_SIDE * UNIT_SIDE];
        for query in &self.relabelled {
            for ((p, q), r) in product.iter_mut().zip(query).zip(&reference) {
                *p = q * r.conj();
            }
            fft2(&mut product, UNIT_SIDE, UNIT_SIDE, true);
            let peak = product.iter().fold(f32::MIN, |m, c| m.max(c.re));
            best = best.max(peak / (UNIT_SIDE * UNIT_SIDE) as f32);
        }
        best.clamp(0.0, 1.0)
    }

    /// The magnitudes of the lowest harmonics of each relabelling (see [`harmonics`]).
    pub fn harmonics(&self) -> &[Vec<f32>] {
        &self.harmonics
    }
}

/// Harmonics kept each way (either sign) by [`harmonics`].
const HARMONICS: usize = 5;

/// The magnitudes of a unit's lowest harmonics (square roots, zero mean, unit length): the
/// same for any cyclic shift of the unit, so that similar units can be found by a dot product
/// before they are compared in full.
pub fn harmonics(unit: &RepeatUnit) -> Vec<f32> {
    low_magnitudes(&spectrum(&normalised(unit)))
}

fn low_magnitudes(spectrum: &[Complex32]) -> Vec<f32> {
    let n = UNIT_SIDE as isize;
    let k = HARMONICS as isize;
    let mut magnitudes = Vec::with_capacity((2 * HARMONICS + 1).pow(2));
    for i in -k..=k {
        for j in -k..=k {
            let at = i.rem_euclid(n) * n + j.rem_euclid(n);
            magnitudes.push(if (i, j) == (0, 0) {
                0.0
            } else {
                spectrum[at as usize].norm().sqrt()
            });
        }
    }
    let mean = magnitudes.iter().sum::<f32>() / magnitudes.len() as f32;
    magnitudes.iter_mut().for_each(|m| *m -= mean);
    scale_to_unit_length(&mut magnitudes);
    magnitudes
}

fn spectrum(cells: &[f32]) -> Vec<Complex32> {
    let mut grid: Vec<Complex32> = cells.iter().map(|&v| Complex32::new(v, 0.0)).collect();
    fft2(&mut grid, UNIT_SIDE, UNIT_SIDE, false);
    grid
}

/// The 2-D discrete Fourier transform of a row-major grid, in place; unnormalised both ways.
fn fft2(grid: &mut [Complex32], width: usize, height: usize, inverse: bool) {
    plan(width, inverse).process(grid);
    let mut columns = vec![Complex32::new(0.0, 0.0); grid.len()];
    for y in 0..height {
        for x in 0..width {
            columns[x * height + y] = grid[y * width + x];
        }
    }
    plan(height, inverse).process(&mut columns);
    for y in 0..height {
        for x in 0..width {
            grid[y * width + x] = columns[x * height + y];
        }
    }
}

/// A transform of `len` points; the planner keeps each one it made.
fn plan(len: usize, inverse: bool) -> Arc<dyn Fft<f32>> {
    static PLANNER: OnceLock<Mutex<FftPlanner<f32>>> = OnceLock::new();
    let mut planner = PLANNER
        .get_or_init(|| Mutex::new(FftPlanner::new()))
        .lock()
        .expect("fft planner lock");
    if inverse {
        planner.plan_fft_inverse(len)
    } else {
        planner.plan_fft_forward(len)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::normalize::normalize;
    use image::{Rgb, RgbImage};

    /// Discs of three inks on a ground, laid out in a unit square by `seed` and seamless across
    /// its edges.
    fn unit_design(seed: u64) -> Vec<(f32, f32, f32, Rgb<u8>)> {
        let inks = [Rgb([200, 40, 60]), Rgb([30, 90, 160]), Rgb([240, 200, 40])];
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        (0..7)
            .map(|i| (next(), next(), 0.05 + 0.12 * next(), inks[i % 3]))
            .collect()
    }

    /// A print of `side` pixels: the design repeated every `period` pixels, the window moved
    /// by `phase` repeats, the design turned a quarter if `turned`.
    pub(crate) fn tiled(
        seed: u64,
        period: f32,
        phase: (f32, f32),
        side: u32,
        turned: bool,
    ) -> RgbImage {
        let design = unit_design(seed);
        RgbImage::from_fn(side, side, |x, y| {
            let (x, y) = if turned { (y, side - 1 - x) } else { (x, y) };
            let u = (x as f32 / period + phase.0).rem_euclid(1.0);
            let v = (y as f32 / period + phase.1).rem_euclid(1.0);
            let torus = |a: f32, b: f32| (a - b).abs().min(1.0 - (a - b).abs());
            design
                .iter()
                .find(|(cx, cy, r, _)| torus(u, *cx).hypot(torus(v, *cy)) < *r)
                .map_or(Rgb([235, 230, 215]), |disc| disc.3)
        })
    }

    pub(crate) fn unit_of(image: &RgbImage) -> Option<RepeatUnit> {
        repeat_unit(&normalize(image).structure)
    }

    fn similarity(a: &RgbImage, b: &RgbImage) -> f32 {
        let (a, b) = (unit_of(a).expect("a repeat"), unit_of(b).expect("a repeat"));
        UnitComparison::new(&a).similarity(&b)
    }

    #[test]
    fn the_lattice_is_the_repeat() {
        let unit = unit_of(&tiled(1, 128.0, (0.0, 0.0), 512, false)).expect("a repeat");
        // 128 of 512 pixels is 96 of the structure channel's 384.
        for vector in unit.lattice {
            let length = vector[0].hypot(vector[1]);
            assert!((length - 96.0).abs() < 1.5, "{:?}", unit.lattice);
        }
        let [a, b] = unit.lattice;
        assert!(
            (a[0] * b[0] + a[1] * b[1]).abs() < 0.05 * 96.0 * 96.0,
            "square"
        );
    }

    #[test]
    fn a_shifted_window_of_a_repeat_folds_into_the_same_unit() {
        let print = tiled(1, 128.0, (0.0, 0.0), 512, false);
        let shifted = tiled(1, 128.0, (0.37, 0.81), 512, false);
        let other = tiled(2, 128.0, (0.0, 0.0), 512, false);
        let same = similarity(&print, &shifted);
        let different = similarity(&print, &other);
        assert!(same > 0.9, "{same}");
        assert!(different < 0.5, "{different}");
    }

    #[test]
    fn the_same_repeat_at_another_size_or_turned_folds_into_the_same_unit() {
        let print = tiled(3, 128.0, (0.0, 0.0), 512, false);
        let smaller = tiled(3, 81.0, (0.2, 0.6), 512, false);
        let turned = tiled(3, 128.0, (0.5, 0.1), 512, true);
        let other = tiled(4, 81.0, (0.2, 0.6), 512, false);
        assert!(similarity(&print, &smaller) > 0.8);
        assert!(similarity(&print, &turned) > 0.9);
        assert!(similarity(&print, &other) < 0.5);
    }

    #[test]
    fn a_strip_narrower_than_the_search_grid_shows_no_repeat() {
        for (width, height) in [(2, 20_000), (1, 384), (15, 3000), (20_000, 2)] {
            let strip = RgbImage::from_fn(width, height, |x, y| {
                Rgb([(x * 7 + y * 13) as u8, (y / 3) as u8, 90])
            });
            assert_eq!(unit_of(&strip), None, "{width} × {height}");
        }
    }

    #[test]
    fn stripes_and_a_design_that_does_not_repeat_show_no_repeat() {
        let stripes = RgbImage::from_fn(512, 512, |x, _| {
            if (x / 20) % 2 == 0 {
                Rgb([200, 40, 60])
            } else {
                Rgb([235, 230, 215])
            }
        });
        assert_eq!(unit_of(&stripes), None);
        // One repeat of 512 pixels fills the whole print: nothing repeats within it.
        assert_eq!(unit_of(&tiled(5, 512.0, (0.0, 0.0), 512, false)), None);
        assert_eq!(
            unit_of(&RgbImage::from_pixel(300, 200, Rgb([90, 90, 90]))),
            None
        );
    }
}
