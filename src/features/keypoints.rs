//! Local features for copies that whole-print hashes cannot see: crops, repeat shifts, small
//! rotations, photos, and motifs cut out and rearranged. Keypoints are extrema of a
//! difference-of-Gaussians scale space of the structure channel (so a new colourway leaves them
//! in place), each with a dominant orientation and a 128-bin descriptor of gradient directions
//! around it (the design of Lowe's SIFT, written here from the paper's description). A
//! descriptor is invariant to rotation and scale; mirror images are handled by
//! [`mirror_descriptor`], which permutes its bins. The ink regions of [`super::regions`] are
//! described the same way, at the scale their size gives.

use std::f32::consts::{PI, TAU};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::regions::{InkRegion, ink_regions};
use super::{Extractor, FeatureSet};
use crate::index::{squared_bound, squared_distance_below};
use crate::normalize::{GrayF32, PrintImage};

/// Most keypoints a registered print keeps, strongest first and each repeat of one only once:
/// what each print costs in memory.
pub const MAX_KEYPOINTS: usize = 192;
/// Most ink-region keypoints ([`super::regions`]) a registered print keeps besides those.
pub const REGION_KEYPOINTS: usize = 64;
/// Most ink-region keypoints a query describes: its regions include those of foreign motifs
/// and of motifs cut by overlaps, and the original's may lie anywhere in its order by size
/// (public set recall@1 0.921 → 0.926 from twice to four times the registered number).
pub const QUERY_REGION_KEYPOINTS: usize = 4 * REGION_KEYPOINTS;
/// Most keypoints a registered print keeps in all.
pub const REGISTERED_KEYPOINTS: usize = MAX_KEYPOINTS + REGION_KEYPOINTS;
/// A region keypoint's blur is its region's radius over this: its descriptor's window (six
/// blurs each way) then spans the region and a ring of what surrounds it.
const REGION_WINDOW: f32 = 5.0;
/// A region keypoint's orientation is taken with the blur its radius over this would have: its
/// window (4.5 such blurs) then reaches past the region's outline, whose turns set it.
const REGION_OUTLINE: f32 = 3.0;
/// Most keypoints extracted, and used by a query, which is not stored: twice as many give a
/// rearranged copy's motifs, each with a new size and place, more chances to meet the
/// registered print's strongest ones.
pub const QUERY_KEYPOINTS: usize = 2 * MAX_KEYPOINTS;
/// Bins per descriptor: 4×4 cells × 8 orientation bins.
pub const DESCRIPTOR_LEN: usize = 128;

const INTERVALS: usize = 3;
const BASE_SIGMA: f32 = 1.6;
/// Smallest |DoG| response kept, for channels in [0, 1].
const CONTRAST_THRESHOLD: f32 = 0.012;
/// Largest ratio of principal curvatures: rejects points on straight edges.
const EDGE_RATIO: f32 = 10.0;
/// Largest descriptor distance that counts as a match (descriptors have length 512): the
/// verifier's and the keypoint index's, and below it two keypoints of one print are one
/// keypoint repeated.
pub const MATCH_DISTANCE: f32 = 200.0;
const ORIENTATION_BINS: usize = 36;
const CELLS: usize = 4;
const DIRECTION_BINS: usize = 8;

/// Where a keypoint sits in the channel it was found in, and its size and orientation there,
/// in 8 bytes (a registered print holds up to 192 of them). Detection puts keypoints on whole
/// pixels and at one of a few scales, so only the angle is rounded, to 1/65,536 of a turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keypoint {
    x: u16,
    y: u16,
    /// The scale-space octave and interval it was found at.
    octave: u8,
    interval: u8,
    /// The angle as a share of a turn, times 65,536.
    turn: u16,
}

impl Keypoint {
    /// A keypoint at pixel (x, y), found at `interval` of `octave`, turned by `angle` radians.
    pub fn new(x: u16, y: u16, octave: u8, interval: u8, angle: f32) -> Keypoint {
        Keypoint {
            x,
            y,
            octave,
            interval,
            turn: (angle.rem_euclid(TAU) / TAU * 65_536.0).round() as u32 as u16,
        }
    }

    pub fn x(&self) -> f32 {
        f32::from(self.x)
    }

    pub fn y(&self) -> f32 {
        f32::from(self.y)
    }

    /// The blur (sigma) it was found at, in pixels of the channel.
    pub fn scale(&self) -> f32 {
        self.log2_scale().exp2()
    }

    pub fn log2_scale(&self) -> f32 {
        BASE_SIGMA.log2() + f32::from(self.octave) + f32::from(self.interval) / INTERVALS as f32
    }

    /// Radians, in [0, 2π).
    pub fn angle(&self) -> f32 {
        f32::from(self.turn) / 65_536.0 * TAU
    }
}

/// A descriptor's bins as bytes (the whole scaled to length 512): the form distances and codes
/// are computed on.
pub type Descriptor = [u8; DESCRIPTOR_LEN];

/// Bin values a held descriptor can take: 128·(k/15)^1.5 for k = 0..15, finer near zero where
/// most bins lie (a fifth are zero; few exceed 128).
const LEVELS: [u8; 16] = [
    0, 2, 6, 11, 18, 25, 32, 41, 50, 59, 70, 80, 92, 103, 115, 128,
];

/// A descriptor as it is stored and held in memory: each bin rounded to the nearest of
/// [`LEVELS`], two bins to a byte. Half the memory of a byte per bin, and descriptors are most
/// of what the registry holds per print; on the fixtures' descriptor pairs, 0.5% of the pairs
/// within the match distance cross it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedDescriptor([u8; DESCRIPTOR_LEN / 2]);

impl PackedDescriptor {
    pub fn pack(descriptor: &Descriptor) -> Self {
        let level = |value: u8| {
            (0..LEVELS.len())
                .min_by_key(|&k| LEVELS[k].abs_diff(value))
                .expect("levels are not empty") as u8
        };
        let mut packed = [0u8; DESCRIPTOR_LEN / 2];
        for (byte, pair) in packed.iter_mut().zip(descriptor.chunks_exact(2)) {
            *byte = level(pair[0]) | level(pair[1]) << 4;
        }
        PackedDescriptor(packed)
    }

    pub fn unpack(&self) -> Descriptor {
        let mut descriptor = [0u8; DESCRIPTOR_LEN];
        for (pair, byte) in descriptor.chunks_exact_mut(2).zip(self.0) {
            pair[0] = LEVELS[usize::from(byte & 0x0f)];
            pair[1] = LEVELS[usize::from(byte >> 4)];
        }
        descriptor
    }
}

/// The keypoints of a print and their descriptors, in the same order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LocalFeatures {
    pub keypoints: Vec<Keypoint>,
    #[serde(
        serialize_with = "serialize_descriptors",
        deserialize_with = "deserialize_descriptors"
    )]
    /// Shared with the keypoint index, which checks its hits against them.
    pub descriptors: Arc<[PackedDescriptor]>,
    /// Size of the working image the coordinates refer to.
    pub width: u32,
    pub height: u32,
    /// How many of the last keypoints a registered print does not keep: those that repeat an
    /// earlier one (the same motif in another repeat of the print) and those past the most it
    /// keeps. A query uses them: each repeat gives a motif another chance to match.
    pub query_only: usize,
}

impl LocalFeatures {
    /// The descriptors a registered print keeps: the [`MAX_KEYPOINTS`] strongest extrema and
    /// the [`REGION_KEYPOINTS`] largest ink regions' keypoints that repeat none before them. A
    /// print fresh from an upload has more; compared as a reference, it is held to these so
    /// that it scores as it would registered.
    pub fn registered_descriptors(&self) -> &[PackedDescriptor] {
        let kept = self.descriptors.len() - self.query_only;
        &self.descriptors[..kept.min(REGISTERED_KEYPOINTS)]
    }

    /// Keeps only what a registered print keeps ([`Self::registered_descriptors`]).
    pub fn keep_registered(&mut self) {
        let kept = self.registered_descriptors().len();
        self.keypoints.truncate(kept);
        if self.descriptors.len() > kept {
            self.descriptors = self.descriptors[..kept].into();
        }
        self.query_only = 0;
    }

    /// Every descriptor in the form distances are taken on.
    pub fn unpacked_descriptors(&self) -> Vec<Descriptor> {
        self.descriptors
            .iter()
            .map(PackedDescriptor::unpack)
            .collect()
    }
}

/// Hex for people (JSON), raw bytes for storage.
fn serialize_descriptors<S: Serializer>(
    descriptors: &Arc<[PackedDescriptor]>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let bytes: Vec<u8> = descriptors.iter().flat_map(|d| d.0).collect();
    if serializer.is_human_readable() {
        serializer.serialize_str(&hex::encode(bytes))
    } else {
        serializer.serialize_bytes(&bytes)
    }
}

fn deserialize_descriptors<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Arc<[PackedDescriptor]>, D::Error> {
    let bytes = if deserializer.is_human_readable() {
        hex::decode(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)?
    } else {
        serde_bytes::ByteBuf::deserialize(deserializer)?.into_vec()
    };
    if bytes.len() % (DESCRIPTOR_LEN / 2) != 0 {
        return Err(serde::de::Error::custom(
            "descriptor bytes are not a whole number of descriptors",
        ));
    }
    Ok(bytes
        .chunks_exact(DESCRIPTOR_LEN / 2)
        .map(|chunk| PackedDescriptor(chunk.try_into().expect("chunk of descriptor length")))
        .collect())
}

pub struct KeypointExtractor;

impl Extractor for KeypointExtractor {
    fn extract_into(&self, print: &PrintImage, features: &mut FeatureSet) {
        features.local = detect_and_describe(
            &contrast_normalised(&print.structure),
            QUERY_KEYPOINTS,
            &ink_regions(&print.structure),
            QUERY_REGION_KEYPOINTS,
        );
    }
}

/// The channel scaled so that its strongest edges (the 98th percentile) reach 1: a soft,
/// shaded texture then yields keypoints as a hard-edged screen print does. A channel without
/// edges is left as it is.
pub fn contrast_normalised(channel: &GrayF32) -> GrayF32 {
    let mut samples: Vec<f32> = channel.as_raw().clone();
    let rank = (samples.len() * 98 / 100).min(samples.len().saturating_sub(1));
    let (_, strong, _) = samples.select_nth_unstable_by(rank, f32::total_cmp);
    let strong = *strong;
    if strong < MIN_EDGE_STRENGTH {
        return channel.clone();
    }
    GrayF32::from_fn(channel.width(), channel.height(), |x, y| {
        image::Luma([(channel.get_pixel(x, y)[0] / strong).min(1.0)])
    })
}

/// Edge strength (ΔE / 100) below which a channel counts as having no edges worth scaling.
const MIN_EDGE_STRENGTH: f32 = 0.02;

/// A grey image with its gradient, at one level of the scale space.
struct Level {
    width: usize,
    height: usize,
    magnitude: Vec<f32>,
    direction: Vec<f32>,
}

impl Level {
    /// Calls `visit(dx, dy, index)` for each pixel within `radius` of (x, y) in both axes that
    /// has a gradient (the channel's border has none), row by row: plain loops over the
    /// window's clipped ranges, with no test per pixel.
    fn for_each_in_window(
        &self,
        x: usize,
        y: usize,
        radius: isize,
        mut visit: impl FnMut(isize, isize, usize),
    ) {
        let (x, y) = (x as isize, y as isize);
        let (width, height) = (self.width as isize, self.height as isize);
        let columns = (1 - x).max(-radius)..=(width - 2 - x).min(radius);
        for dy in (1 - y).max(-radius)..=(height - 2 - y).min(radius) {
            let row_start = (y + dy) as usize * self.width;
            for dx in columns.clone() {
                visit(dx, dy, row_start + (x + dx) as usize);
            }
        }
    }

    fn new(width: usize, height: usize, pixels: &[f32]) -> Level {
        let mut magnitude = vec![0.0; pixels.len()];
        let mut direction = vec![0.0; pixels.len()];
        for y in 1..height.saturating_sub(1) {
            for x in 1..width - 1 {
                let i = y * width + x;
                let dx = pixels[i + 1] - pixels[i - 1];
                let dy = pixels[i + width] - pixels[i - width];
                magnitude[i] = (dx * dx + dy * dy).sqrt();
                let angle = fast_atan2(dy, dx);
                direction[i] = if angle < 0.0 { angle + TAU } else { angle };
            }
        }
        Level {
            width,
            height,
            magnitude,
            direction,
        }
    }
}

/// A scale-space extremum, before it is described.
struct Extremum {
    response: f32,
    octave: u8,
    interval: usize,
    x: usize,
    y: usize,
}

/// atan2 to within 0.002 radians, several times faster than the exact one; orientation
/// histograms bin by 10° and descriptors by 45°, so the error is invisible to them.
fn fast_atan2(y: f32, x: f32) -> f32 {
    let (ax, ay) = (x.abs(), y.abs());
    let (ratio, steep) = if ay > ax {
        (ax / ay, true)
    } else {
        (ay / ax.max(f32::MIN_POSITIVE), false)
    };
    let square = ratio * ratio;
    let mut angle =
        ((-0.046_496_473 * square + 0.159_314_22) * square - 0.327_622_77) * square * ratio + ratio;
    if steep {
        angle = std::f32::consts::FRAC_PI_2 - angle;
    }
    if x < 0.0 {
        angle = PI - angle;
    }
    if y < 0.0 { -angle } else { angle }
}

/// Keypoints and descriptors of one channel: at most `limit` of its extrema, strongest first,
/// then keypoints of its ink `regions` in their order until about `region_limit` (a region
/// gives one per dominant orientation), described on the same scale space. Only the strongest
/// extrema are described: describing is the costly step.
pub fn detect_and_describe(
    channel: &GrayF32,
    limit: usize,
    regions: &[InkRegion],
    region_limit: usize,
) -> LocalFeatures {
    let (width, height) = (channel.width() as usize, channel.height() as usize);
    let sigmas: Vec<f32> = (0..INTERVALS + 3)
        .map(|s| BASE_SIGMA * 2f32.powf(s as f32 / INTERVALS as f32))
        .collect();
    // The input is taken to carry a blur of 0.5 already.
    let mut base = blur(
        channel.as_raw(),
        width,
        height,
        (BASE_SIGMA * BASE_SIGMA - 0.25).sqrt(),
    );
    let (mut w, mut h) = (width, height);
    let mut extrema = Vec::new();
    // Per octave, the gradients of the levels where extrema are looked for.
    let mut octaves: Vec<Vec<Level>> = Vec::new();
    while w >= 24 && h >= 24 {
        let mut gaussians = vec![base];
        for s in 1..INTERVALS + 3 {
            let step = (sigmas[s] * sigmas[s] - sigmas[s - 1] * sigmas[s - 1]).sqrt();
            gaussians.push(blur(&gaussians[s - 1], w, h, step));
        }
        let dogs: Vec<Vec<f32>> = gaussians
            .windows(2)
            .map(|g| g[1].iter().zip(&g[0]).map(|(a, b)| a - b).collect())
            .collect();
        for interval in 1..=INTERVALS {
            for y in 5..h - 5 {
                for x in 5..w - 5 {
                    if let Some(response) = extremum(&dogs, interval, x, y, w) {
                        extrema.push(Extremum {
                            response: response.abs(),
                            octave: octaves.len() as u8,
                            interval,
                            x,
                            y,
                        });
                    }
                }
            }
        }
        octaves.push(
            (1..=INTERVALS)
                .map(|s| Level::new(w, h, &gaussians[s]))
                .collect(),
        );
        // The next octave starts from the image blurred twice as much, halved.
        let twice = &gaussians[INTERVALS];
        let (nw, nh) = (w / 2, h / 2);
        base = (0..nh)
            .flat_map(|y| (0..nw).map(move |x| (x, y)))
            .map(|(x, y)| twice[2 * y * w + 2 * x])
            .collect();
        (w, h) = (nw, nh);
    }
    extrema.sort_by(|a, b| b.response.total_cmp(&a.response));
    let mut keypoints = Vec::with_capacity(limit);
    let mut descriptors = Vec::with_capacity(limit);
    for e in &extrema {
        let level = &octaves[usize::from(e.octave)][e.interval - 1];
        let sigma = sigmas[e.interval];
        let (x, y) = ((e.x << e.octave) as u16, (e.y << e.octave) as u16);
        for angle in orientations(level, e.x, e.y, sigma) {
            if keypoints.len() == limit {
                break;
            }
            let descriptor = describe(level, e.x as f32, e.y as f32, sigma, angle);
            descriptors.push(PackedDescriptor::pack(&descriptor));
            keypoints.push(Keypoint::new(x, y, e.octave, e.interval as u8, angle));
        }
        if keypoints.len() == limit {
            break;
        }
    }
    let extremum_count = keypoints.len();
    for region in regions {
        if keypoints.len() - extremum_count >= region_limit {
            break;
        }
        for (keypoint, descriptor) in describe_region(&octaves, region) {
            keypoints.push(keypoint);
            descriptors.push(PackedDescriptor::pack(&descriptor));
        }
    }
    // Repeats are judged on the descriptors as held, as the verifier sees them.
    let held: Vec<Descriptor> = descriptors.iter().map(PackedDescriptor::unpack).collect();
    let (order, kept) = registered_first(&held, extremum_count);
    LocalFeatures {
        keypoints: order.iter().map(|&i| keypoints[i]).collect(),
        descriptors: order.iter().map(|&i| descriptors[i]).collect(),
        width: width as u32,
        height: height as u32,
        query_only: order.len() - kept,
    }
}

/// The keypoints of one ink region, one per dominant orientation, described at the octave and
/// interval nearest the blur its size calls for (a print too small for that octave has none).
fn describe_region(octaves: &[Vec<Level>], region: &InkRegion) -> Vec<(Keypoint, Descriptor)> {
    let sigma = region.radius / REGION_WINDOW;
    let steps = ((INTERVALS as f32 * (sigma / BASE_SIGMA).log2()).round() as i32).max(1);
    let octave = ((steps - 1) / INTERVALS as i32) as usize;
    let interval = steps as usize - INTERVALS * octave;
    let Some(levels) = octaves.get(octave) else {
        return Vec::new();
    };
    let level = &levels[interval - 1];
    let factor = (1u32 << octave) as f32;
    let (x, y) = (region.x / factor, region.y / factor);
    let outline = region.radius / REGION_OUTLINE / factor;
    orientations(level, x as usize, y as usize, outline)
        .into_iter()
        .map(|angle| {
            let keypoint = Keypoint::new(
                region.x.round() as u16,
                region.y.round() as u16,
                octave as u8,
                interval as u8,
                angle,
            );
            (keypoint, describe(level, x, y, sigma / factor, angle))
        })
        .collect()
}

/// The order in which a print's keypoints are kept, and how many a registered print keeps: the
/// first [`MAX_KEYPOINTS`] distinct extrema (the first `extrema` descriptors), then the first
/// [`REGION_KEYPOINTS`] distinct region keypoints (the rest), then what only a query uses.
fn registered_first(descriptors: &[Descriptor], extrema: usize) -> (Vec<usize>, usize) {
    let (extremum_order, extremum_distinct) = distinct_first(&descriptors[..extrema]);
    let (region_order, region_distinct) = distinct_first(&descriptors[extrema..]);
    let region_order: Vec<usize> = region_order.iter().map(|&i| i + extrema).collect();
    let (kept_extrema, kept_regions) = (
        extremum_distinct.min(MAX_KEYPOINTS),
        region_distinct.min(REGION_KEYPOINTS),
    );
    let order = extremum_order[..kept_extrema]
        .iter()
        .chain(&region_order[..kept_regions])
        .chain(&extremum_order[kept_extrema..])
        .chain(&region_order[kept_regions..])
        .copied()
        .collect();
    (order, kept_extrema + kept_regions)
}

/// The order in which a print's keypoints are kept, and how many of them repeat none before
/// them: strongest first, but a keypoint that repeats one already taken (the same motif in the
/// next repeat of the print) only after every keypoint that repeats none. A repeat print would
/// otherwise spend its registered keypoints on the same motifs again, and a copy that shows
/// each motif once (rearranged, partial) meets fewer of them.
fn distinct_first(descriptors: &[Descriptor]) -> (Vec<usize>, usize) {
    let bound = squared_bound(MATCH_DISTANCE);
    let mut distinct: Vec<usize> = Vec::new();
    let mut repeats = Vec::new();
    for (i, descriptor) in descriptors.iter().enumerate() {
        let seen = distinct
            .iter()
            .any(|&j| squared_distance_below(descriptor, &descriptors[j], bound).is_some());
        if seen {
            repeats.push(i)
        } else {
            distinct.push(i)
        }
    }
    let count = distinct.len();
    distinct.extend(repeats);
    (distinct, count)
}

/// Separable Gaussian blur with edge clamping: rows, then columns.
fn blur(pixels: &[f32], width: usize, height: usize, sigma: f32) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil() as usize;
    let kernel: Vec<f32> = (0..=2 * radius)
        .map(|i| {
            let d = i as f32 - radius as f32;
            (-(d * d) / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let total: f32 = kernel.iter().sum();
    let kernel: Vec<f32> = kernel.iter().map(|k| k / total).collect();
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { blur_avx2(pixels, width, height, &kernel) };
    }
    blur_columns(&blur_rows(pixels, width, &kernel), width, height, &kernel)
}

/// The same passes compiled for AVX2, eight samples to an instruction instead of four (the
/// blur was a twentieth of a registration's time); no fused multiply-add, so the sums are
/// the same.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn blur_avx2(pixels: &[f32], width: usize, height: usize, kernel: &[f32]) -> Vec<f32> {
    blur_columns(&blur_rows(pixels, width, kernel), width, height, kernel)
}

/// Convolves each row with `kernel` (odd length). Each row is copied into a padded line first,
/// and the taps form the outer loop, so the inner loop runs over independent pixels and is
/// vectorised by the compiler.
#[inline(always)]
fn blur_rows(pixels: &[f32], width: usize, kernel: &[f32]) -> Vec<f32> {
    let radius = kernel.len() / 2;
    let mut padded = Vec::with_capacity(width + 2 * radius);
    let mut out = vec![0.0; pixels.len()];
    for (row, out_row) in pixels.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        padded.clear();
        padded.extend(std::iter::repeat_n(row[0], radius));
        padded.extend_from_slice(row);
        padded.extend(std::iter::repeat_n(row[width - 1], radius));
        for (tap, weight) in kernel.iter().enumerate() {
            for (value, source) in out_row.iter_mut().zip(&padded[tap..tap + width]) {
                *value += weight * source;
            }
        }
    }
    out
}

/// Convolves each column with `kernel` (odd length), clamping at the top and bottom: each
/// output row is a weighted sum of whole input rows, so the inner loop runs along memory and
/// is vectorised, with no transpose.
#[inline(always)]
fn blur_columns(pixels: &[f32], width: usize, height: usize, kernel: &[f32]) -> Vec<f32> {
    let radius = kernel.len() / 2;
    let mut out = vec![0.0; pixels.len()];
    for (y, out_row) in out.chunks_exact_mut(width).enumerate() {
        for (tap, weight) in kernel.iter().enumerate() {
            let source_y = (y + tap).saturating_sub(radius).min(height - 1);
            let source = &pixels[source_y * width..(source_y + 1) * width];
            for (value, source) in out_row.iter_mut().zip(source) {
                *value += weight * source;
            }
        }
    }
    out
}

/// The DoG value at (x, y, s) when it is a strong, well-localised extremum of its 26 neighbours.
fn extremum(dogs: &[Vec<f32>], s: usize, x: usize, y: usize, width: usize) -> Option<f32> {
    let i = y * width + x;
    let value = dogs[s][i];
    if value.abs() < CONTRAST_THRESHOLD {
        return None;
    }
    let is_max = value > 0.0;
    for layer in &dogs[s - 1..=s + 1] {
        for dy in [-(width as isize), 0, width as isize] {
            for dx in [-1isize, 0, 1] {
                let j = (i as isize + dy + dx) as usize;
                if std::ptr::eq(layer, &dogs[s]) && j == i {
                    continue;
                }
                let other = layer[j];
                if (is_max && other >= value) || (!is_max && other <= value) {
                    return None;
                }
            }
        }
    }
    // Reject edge-like points: the 2×2 Hessian's curvature ratio.
    let d = &dogs[s];
    let dxx = d[i + 1] + d[i - 1] - 2.0 * value;
    let dyy = d[i + width] + d[i - width] - 2.0 * value;
    let dxy = (d[i + width + 1] - d[i + width - 1] - d[i - width + 1] + d[i - width - 1]) / 4.0;
    let trace = dxx + dyy;
    let det = dxx * dyy - dxy * dxy;
    if det <= 0.0 || trace * trace * EDGE_RATIO >= (EDGE_RATIO + 1.0).powi(2) * det {
        return None;
    }
    Some(value)
}

/// Dominant gradient directions around a point: the highest peak of a 36-bin histogram and any
/// other peak within 80% of it.
fn orientations(level: &Level, x: usize, y: usize, sigma: f32) -> Vec<f32> {
    let weight_sigma = 1.5 * sigma;
    let radius = (3.0 * weight_sigma).round() as isize;
    let falloff: Vec<f32> = (-radius..=radius)
        .map(|d| (-((d * d) as f32) / (2.0 * weight_sigma * weight_sigma)).exp())
        .collect();
    let mut histogram = [0f32; ORIENTATION_BINS];
    level.for_each_in_window(x, y, radius, |dx, dy, i| {
        let weight = falloff[(dx + radius) as usize] * falloff[(dy + radius) as usize];
        let bin = (level.direction[i] / TAU * ORIENTATION_BINS as f32) as usize % ORIENTATION_BINS;
        histogram[bin] += weight * level.magnitude[i];
    });
    // Smooth twice with a [1, 1, 1] window to steady the peaks.
    for _ in 0..2 {
        let copy = histogram;
        for b in 0..ORIENTATION_BINS {
            histogram[b] = (copy[(b + ORIENTATION_BINS - 1) % ORIENTATION_BINS]
                + copy[b]
                + copy[(b + 1) % ORIENTATION_BINS])
                / 3.0;
        }
    }
    let highest = histogram.iter().copied().fold(0.0, f32::max);
    if highest <= 0.0 {
        return Vec::new();
    }
    let mut angles = Vec::new();
    for b in 0..ORIENTATION_BINS {
        let (left, right) = (
            histogram[(b + ORIENTATION_BINS - 1) % ORIENTATION_BINS],
            histogram[(b + 1) % ORIENTATION_BINS],
        );
        let value = histogram[b];
        if value >= 0.8 * highest && value > left && value > right {
            // Parabolic interpolation of the peak.
            let offset = 0.5 * (left - right) / (left - 2.0 * value + right);
            angles.push(
                (((b as f32 + 0.5 + offset) / ORIENTATION_BINS as f32) * TAU).rem_euclid(TAU),
            );
        }
    }
    angles.truncate(2);
    angles
}

/// The 4×4×8 histogram of gradient directions around a point, in its own frame: rotated by its
/// angle and scaled by its sigma. Normalised, clipped at 0.2 to damp strong edges, renormalised
/// and quantised to bytes.
fn describe(level: &Level, x: f32, y: f32, sigma: f32, angle: f32) -> Descriptor {
    let cell = 3.0 * sigma;
    let half_width = cell * CELLS as f32 / 2.0;
    let radius = (half_width * std::f32::consts::SQRT_2).ceil() as isize;
    let (sin, cos) = angle.sin_cos();
    // The Gaussian falloff is separable: a table per axis rather than an exp per pixel.
    let falloff: Vec<f32> = (-radius..=radius)
        .map(|d| (-((d * d) as f32) / (2.0 * half_width * half_width)).exp())
        .collect();
    let mut bins = SpreadBins::new();
    level.for_each_in_window(x as usize, y as usize, radius, |dx, dy, i| {
        let (fx, fy) = (dx as f32, dy as f32);
        // Coordinates in the keypoint frame, in cells, centred on the grid.
        let u = (cos * fx + sin * fy) / cell + CELLS as f32 / 2.0 - 0.5;
        let v = (-sin * fx + cos * fy) / cell + CELLS as f32 / 2.0 - 0.5;
        if u <= -1.0 || v <= -1.0 || u >= CELLS as f32 || v >= CELLS as f32 {
            return;
        }
        let weight =
            falloff[(dx + radius) as usize] * falloff[(dy + radius) as usize] * level.magnitude[i];
        // Both angles lie in [0, 2π).
        let mut relative = level.direction[i] - angle;
        if relative < 0.0 {
            relative += TAU;
        }
        bins.spread(u, v, relative / TAU * DIRECTION_BINS as f32, weight);
    });
    normalise_and_quantise(&mut bins.folded())
}

/// A descriptor's bins while it is summed, with a margin of one cell around the 4×4 grid and
/// two extra direction bins, so that each sample adds to its eight neighbouring bins with no
/// test of where they lie; [`SpreadBins::folded`] drops the margin and wraps the directions.
struct SpreadBins([f32; SpreadBins::LEN]);

impl SpreadBins {
    const SIDE: usize = CELLS + 2;
    const DIRECTIONS: usize = DIRECTION_BINS + 2;
    const LEN: usize = Self::SIDE * Self::SIDE * Self::DIRECTIONS;

    fn new() -> SpreadBins {
        SpreadBins([0.0; Self::LEN])
    }

    /// Adds `weight` to the eight bins around (v, u, direction), each by its trilinear share;
    /// `u` and `v` lie in (−1, 4) and `direction` in [0, 8]. The floor is truncation, one
    /// less below zero (`f32::floor` is a library call on baseline x86-64, and this runs per
    /// pixel; truncating t + 1 instead rounds 4 − ε up to 5, past the bins).
    fn spread(&mut self, u: f32, v: f32, direction: f32, weight: f32) {
        let floor = |t: f32| {
            let truncated = t as i32;
            truncated - i32::from(truncated as f32 > t)
        };
        let (u0, v0, d0) = (floor(u), floor(v), floor(direction));
        let (fu, fv, fd) = (u - u0 as f32, v - v0 as f32, direction - d0 as f32);
        // Cell (−1, −1) is the margin's corner, at index 0. Integer arithmetic: a float cast
        // to usize costs a range check of its own.
        let corner =
            ((v0 + 1) as usize * Self::SIDE + (u0 + 1) as usize) * Self::DIRECTIONS + d0 as usize;
        for (row, wv) in [(0, 1.0 - fv), (Self::SIDE, fv)] {
            for (col, wu) in [(0, 1.0 - fu), (1, fu)] {
                let at = corner + (row + col) * Self::DIRECTIONS;
                self.0[at] += weight * wv * wu * (1.0 - fd);
                self.0[at + 1] += weight * wv * wu * fd;
            }
        }
    }

    /// The 4×4×8 bins: the margin dropped, directions past the last wrapped to the first.
    fn folded(&self) -> [f32; DESCRIPTOR_LEN] {
        let mut bins = [0f32; DESCRIPTOR_LEN];
        for row in 0..CELLS {
            for col in 0..CELLS {
                let from = ((row + 1) * Self::SIDE + col + 1) * Self::DIRECTIONS;
                let cell = &self.0[from..from + Self::DIRECTIONS];
                for (bin, value) in cell.iter().enumerate() {
                    bins[(row * CELLS + col) * DIRECTION_BINS + bin % DIRECTION_BINS] += value;
                }
            }
        }
        bins
    }
}

fn normalise_and_quantise(bins: &mut [f32; DESCRIPTOR_LEN]) -> Descriptor {
    for _ in 0..2 {
        let norm = bins.iter().map(|b| b * b).sum::<f32>().sqrt().max(1e-12);
        bins.iter_mut().for_each(|b| *b = (*b / norm).min(0.2));
    }
    let norm = bins.iter().map(|b| b * b).sum::<f32>().sqrt().max(1e-12);
    bins.map(|b| ((b / norm) * 512.0).min(255.0) as u8)
}

/// The descriptor the same point would have in the left-right mirror image of the print:
/// mirroring flips the frame's second axis and reverses gradient directions relative to it.
pub fn mirror_descriptor(descriptor: &Descriptor) -> Descriptor {
    let mut mirrored = [0u8; DESCRIPTOR_LEN];
    for row in 0..CELLS {
        for col in 0..CELLS {
            for bin in 0..DIRECTION_BINS {
                let from = (row * CELLS + col) * DIRECTION_BINS + bin;
                let to = ((CELLS - 1 - row) * CELLS + col) * DIRECTION_BINS
                    + (DIRECTION_BINS - bin) % DIRECTION_BINS;
                mirrored[to] = descriptor[from];
            }
        }
    }
    mirrored
}

/// The keypoint as it sits in the left-right mirror image of a working image `width` wide.
pub fn mirror_keypoint(keypoint: &Keypoint, width: u32) -> Keypoint {
    Keypoint {
        x: (width as u16).saturating_sub(1).saturating_sub(keypoint.x),
        // π − angle, in shares of a turn.
        turn: 32_768u16.wrapping_sub(keypoint.turn),
        ..*keypoint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::regions::ink_regions;
    use crate::normalize::normalize;
    use image::{RgbImage, imageops};

    /// Blobs and crosses of several inks on a ground, larger than the working image as uploads
    /// are.
    fn motif_print() -> RgbImage {
        RgbImage::from_fn(480, 400, |x, y| {
            let (x, y) = (x as i32 / 2, y as i32 / 2);
            let blob = |cx: i32, cy: i32, r: i32| (x - cx).pow(2) + 2 * (y - cy).pow(2) < r * r;
            let bar = (x - 170).abs() < 4 && (60..150).contains(&y)
                || (y - 105).abs() < 4 && (130..210).contains(&x);
            image::Rgb(if blob(60, 60, 30) {
                [200, 30, 60]
            } else if blob(80, 150, 18) || bar {
                [30, 90, 170]
            } else if blob(150, 40, 12) {
                [240, 190, 20]
            } else {
                [245, 240, 225]
            })
        })
    }

    /// The strongest keypoints of a print, as the extractor computes them.
    fn strongest(print: &RgbImage) -> LocalFeatures {
        detect_and_describe(
            &contrast_normalised(&normalize(print).structure),
            60,
            &[],
            0,
        )
    }

    fn distance(a: &Descriptor, b: &Descriptor) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (f32::from(*x) - f32::from(*y)).powi(2))
            .sum::<f32>()
            .sqrt()
    }

    fn nearest(features: &LocalFeatures, descriptor: &Descriptor) -> (usize, f32) {
        features
            .unpacked_descriptors()
            .iter()
            .enumerate()
            .map(|(i, d)| (i, distance(d, descriptor)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap()
    }

    /// Share of `a`'s keypoints whose nearest descriptor in `b` sits where `place` says, within
    /// the keypoint's own scale (coarse keypoints sit on a coarse grid).
    fn repeatability(
        a: &LocalFeatures,
        b: &LocalFeatures,
        mirror: bool,
        place: impl Fn(&Keypoint) -> (f32, f32),
    ) -> f32 {
        let hits = a
            .keypoints
            .iter()
            .zip(a.unpacked_descriptors())
            .filter(|(kp, d)| {
                let query = if mirror { mirror_descriptor(d) } else { *d };
                let (i, _) = nearest(b, &query);
                let (x, y) = place(kp);
                (b.keypoints[i].x() - x).hypot(b.keypoints[i].y() - y) < 4.0
            })
            .count();
        hits as f32 / a.keypoints.len() as f32
    }

    #[test]
    fn the_blur_is_the_same_with_and_without_avx2() {
        let (width, height) = (37, 23);
        let pixels: Vec<f32> = (0..width * height)
            .map(|i| ((i * 7919) % 101) as f32 / 100.0)
            .collect();
        for radius in [2, 5, 10] {
            let kernel: Vec<f32> = (0..=2 * radius).map(|i| 1.0 / (1.0 + i as f32)).collect();
            let portable =
                blur_columns(&blur_rows(&pixels, width, &kernel), width, height, &kernel);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, checked just above.
                let fast = unsafe { blur_avx2(&pixels, width, height, &kernel) };
                assert_eq!(fast, portable, "radius {radius}");
            }
        }
    }

    #[test]
    fn finds_keypoints_on_motifs_but_none_on_a_plain_ground() {
        let features =
            detect_and_describe(&normalize(&motif_print()).structure, MAX_KEYPOINTS, &[], 0);
        assert!(
            features.keypoints.len() >= 10,
            "{} keypoints",
            features.keypoints.len()
        );
        let plain = RgbImage::from_pixel(200, 200, image::Rgb([90, 20, 40]));
        assert!(
            detect_and_describe(&normalize(&plain).structure, MAX_KEYPOINTS, &[], 0)
                .keypoints
                .is_empty()
        );
    }

    #[test]
    fn a_turned_copy_meets_the_same_descriptors() {
        let print = motif_print();
        let upright = strongest(&print);
        let turned = strongest(&imageops::rotate90(&print));
        // Rotating 90° clockwise sends (x, y) to (h − 1 − y, x) in the working image.
        let h = upright.height as f32;
        let share = repeatability(&upright, &turned, false, |kp| (h - 1.0 - kp.y(), kp.x()));
        // The print repeats its shapes (blob edges, bar ends), so some nearest descriptors are
        // a twin elsewhere; the verifier's grouping by transform absorbs those.
        assert!(share > 0.4, "only {share:.2} of keypoints found again");
    }

    #[test]
    fn a_mirrored_copy_meets_the_mirrored_descriptors() {
        let print = motif_print();
        let upright = strongest(&print);
        let mirrored = strongest(&imageops::flip_horizontal(&print));
        let width = upright.width;
        let share = repeatability(&upright, &mirrored, true, |kp| {
            let m = mirror_keypoint(kp, width);
            (m.x(), m.y())
        });
        assert!(share > 0.4, "only {share:.2} of keypoints found again");
        assert!(
            repeatability(&upright, &mirrored, false, |kp| (
                width as f32 - 1.0 - kp.x(),
                kp.y()
            )) < share
        );
    }

    #[test]
    fn a_recoloured_copy_keeps_its_keypoints() {
        let print = motif_print();
        let recoloured = RgbImage::from_fn(print.width(), print.height(), |x, y| {
            let [r, g, b] = print.get_pixel(x, y).0;
            image::Rgb([g, b, r])
        });
        let (a, b) = (strongest(&print), strongest(&recoloured));
        let share = repeatability(&a, &b, false, |kp| (kp.x(), kp.y()));
        assert!(share > 0.5, "only {share:.2} of keypoints found again");
    }

    /// Features of a print at the structure side, with its ink regions' keypoints when `regions`.
    fn described(print: &RgbImage, regions: bool) -> LocalFeatures {
        let print = normalize(print);
        let regions = if regions {
            ink_regions(&print.structure)
        } else {
            Vec::new()
        };
        detect_and_describe(
            &contrast_normalised(&print.structure),
            QUERY_KEYPOINTS,
            &regions,
            QUERY_REGION_KEYPOINTS,
        )
    }

    /// Pairs of keypoints, one of `a` and one of `b`, whose descriptors match and whose places
    /// and scales agree with `b` being `a` shrunk by `factor` about the print's centre.
    fn matched_at_scale(a: &LocalFeatures, b: &LocalFeatures, factor: f32) -> usize {
        let centre = a.width as f32 / 2.0;
        a.unpacked_descriptors()
            .iter()
            .zip(&a.keypoints)
            .filter(|(descriptor, kp)| {
                let (i, d) = nearest(b, descriptor);
                let other = b.keypoints[i];
                let x = centre + (kp.x() - centre) / factor;
                let y = centre + (kp.y() - centre) / factor;
                d < MATCH_DISTANCE
                    && (other.x() - x).hypot(other.y() - y) < 2.0 * other.scale()
                    && (kp.log2_scale() - other.log2_scale() - factor.log2()).abs() < 0.5
            })
            .count()
    }

    #[test]
    fn a_motif_at_half_its_size_meets_its_ink_regions() {
        // A lemon with a bite out of it and a spot, on a plain ground, drawn at two sizes.
        let lemon = |scale: f32| {
            RgbImage::from_fn(512, 512, |x, y| {
                let (x, y) = ((x as f32 - 256.0) / scale, (y as f32 - 256.0) / scale);
                let body = (x / 180.0).powi(2) + (y / 120.0).powi(2) < 1.0;
                let bite = (x - 140.0).abs() < 50.0 && (y + 40.0).abs() < 40.0;
                let spot = (x + 60.0).powi(2) + (y - 20.0).powi(2) < 40.0 * 40.0;
                image::Rgb(if spot {
                    [150, 30, 40]
                } else if body && !bite {
                    [220, 180, 40]
                } else {
                    [30, 60, 120]
                })
            })
        };
        let (large, small) = (lemon(1.0), lemon(0.5));
        let with_regions =
            matched_at_scale(&described(&large, true), &described(&small, true), 2.0);
        let without = matched_at_scale(&described(&large, false), &described(&small, false), 2.0);
        assert!(
            with_regions >= 2,
            "{with_regions} matched with regions, {without} without"
        );
        assert!(
            with_regions > without,
            "{with_regions} matched with regions, {without} without"
        );
    }

    #[test]
    fn a_held_keypoint_keeps_its_angle_and_mirrors_back_to_itself() {
        for angle in [0.0, 0.3, PI, 4.0, TAU - 1e-6] {
            let keypoint = Keypoint::new(37, 120, 2, 1, angle);
            let error = (keypoint.angle() - angle).abs();
            assert!(
                error.min(TAU - error) < 1e-4,
                "{angle} came back as {}",
                keypoint.angle()
            );
            let mirrored = mirror_keypoint(&keypoint, 384);
            assert_eq!((mirrored.x(), mirrored.y()), (346.0, 120.0));
            let error = (mirrored.angle() - (PI - angle).rem_euclid(TAU)).abs();
            assert!(error.min(TAU - error) < 1e-4);
            assert_eq!(mirror_keypoint(&mirrored, 384), keypoint);
        }
        // Found at octave 2, interval 1: blurred by 1.6 · 2^(1/3) at a quarter of the size.
        let scale = Keypoint::new(0, 0, 2, 1, 0.0).scale();
        assert!((scale - 4.0 * 1.6 * 2f32.powf(1.0 / 3.0)).abs() < 1e-4);
    }

    #[test]
    fn fast_atan2_is_close_to_atan2() {
        for i in 0..720 {
            let a = i as f32 * PI / 360.0;
            for r in [0.01f32, 1.0, 300.0] {
                let (y, x) = (r * a.sin(), r * a.cos());
                let error = (fast_atan2(y, x) - y.atan2(x)).abs();
                assert!(error.min(TAU - error) < 0.002, "at {a}: {error}");
            }
        }
        assert_eq!(fast_atan2(0.0, 0.0), 0.0);
    }

    #[test]
    fn a_sample_at_the_grid_edge_is_spread_without_a_panic() {
        // Just inside the grid's far edge, where adding 1 before truncating rounds up to 5:
        // its weight goes to the margin, which folding drops.
        let edge = 4f32.next_down();
        let mut bins = SpreadBins::new();
        bins.spread(edge, edge, 0.5, 1.0);
        assert!(bins.folded().iter().sum::<f32>() < 1e-5);
        // At the last cell's centre, all of it stays there, halved between two directions.
        bins.spread(3.0, 3.0, 0.5, 1.0);
        let folded = bins.folded();
        let last_cell = (CELLS * CELLS - 1) * DIRECTION_BINS;
        assert!((folded[last_cell] - 0.5).abs() < 1e-5);
        assert!((folded[last_cell + 1] - 0.5).abs() < 1e-5);
    }

    #[test]
    fn packing_keeps_each_bin_near_its_value() {
        let descriptor: Descriptor = std::array::from_fn(|i| (i * 2) as u8);
        let unpacked = PackedDescriptor::pack(&descriptor).unpack();
        for (a, b) in descriptor.iter().zip(&unpacked) {
            // Half the widest gap between levels below 128; above it, the top level.
            assert!(a.abs_diff(*b) <= 6 || (*a > 128 && *b == 128), "{a} → {b}");
        }
        assert_eq!(PackedDescriptor::pack(&unpacked).unpack(), unpacked);
    }

    #[test]
    fn a_repeat_print_keeps_each_keypoint_once_when_registered() {
        let tile = motif_print();
        let mut tiled = RgbImage::new(2 * tile.width(), 2 * tile.height());
        for (x, y) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            imageops::replace(
                &mut tiled,
                &tile,
                i64::from(x * tile.width()),
                i64::from(y * tile.height()),
            );
        }
        let channel = contrast_normalised(&normalize(&tiled).structure);
        let query = detect_and_describe(&channel, QUERY_KEYPOINTS, &[], 0);
        assert!(query.query_only > 0, "the query keeps the repeats");
        let mut registered = query.clone();
        registered.keep_registered();
        let kept = registered.unpacked_descriptors();
        assert!(kept.len() < query.keypoints.len());
        for (i, a) in kept.iter().enumerate() {
            for b in &kept[i + 1..] {
                assert!(distance(a, b) >= MATCH_DISTANCE, "a repeat was kept");
            }
        }
        // Nothing the query sees is lost: each of its keypoints has its twin among the kept.
        for descriptor in query.unpacked_descriptors() {
            assert!(nearest(&registered, &descriptor).1 < MATCH_DISTANCE);
        }
    }

    #[test]
    fn descriptors_survive_the_stored_form() {
        let features = detect_and_describe(&normalize(&motif_print()).structure, 5, &[], 0);
        let json = serde_json::to_string(&features).unwrap();
        assert_eq!(
            serde_json::from_str::<LocalFeatures>(&json).unwrap(),
            features
        );
    }
}
