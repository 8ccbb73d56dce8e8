//! Brings every decoded print to one working resolution and to CIELAB, and derives the
//! structure channel: the colour-difference edge strength, which a recolouring leaves in place
//! because it changes the inks, not where one ink meets another. The whole-print hashes, the
//! global vector and the keypoints all read that one channel.

use std::sync::LazyLock;

use image::{ImageBuffer, Luma, RgbImage, imageops};

/// Longest side of the working image, in pixels.
pub const WORKING_SIDE: u32 = 256;
/// Longest side of the structure channel: keypoints are detected on it, and the motifs of a
/// rearranged print are 20–50 pixels across at the working side, too few for several
/// keypoints each.
pub const STRUCTURE_SIDE: u32 = 384;

/// How soon the structure channel saturates: tanh(EDGE_GAIN × edge strength). Ink boundaries
/// then read nearly as strong whatever the two inks are (one of ΔE 23 at 0.54 of one of ΔE
/// 77, instead of 0.30), so a recolouring that brings two inks closer or moves them apart
/// changes less of the keypoints' descriptors, which weigh the boundaries around a keypoint
/// against each other (public and third sets: recall@1 0.892 → 0.903 and 0.906 → 0.924), and
/// less of the structure hash, which weighs the print's edges against each other (copy TPR
/// on recolourings 0.873 → 0.915 and 0.854 → 0.878, docs/matching.md).
const EDGE_GAIN: f32 = 8.0;

/// A grey image with float samples.
pub type GrayF32 = ImageBuffer<Luma<f32>, Vec<f32>>;

/// A print at working resolution, ready for the feature extractors.
pub struct PrintImage {
    pub width: u32,
    pub height: u32,
    /// CIELAB (D65) per pixel, row-major.
    pub lab: Vec<[f32; 3]>,
    /// CIELAB lightness L* / 100: keeps the coarse layout that edges lose on dense all-over
    /// prints.
    pub lightness: GrayF32,
    /// The colour-robust structure channel, at [`STRUCTURE_SIDE`]: the edge strength in
    /// CIELAB (ΔE per pixel / 100) of the image smoothed first, saturated (see [`EDGE_GAIN`]).
    pub structure: GrayF32,
}

/// Channels are kept in [0, 1]: `image`'s resampling clamps float samples to that range.
///
/// Resizes to the working resolution (aspect kept) and converts to CIELAB; derives the
/// structure channel from the print resized to [`STRUCTURE_SIDE`].
pub fn normalize(rgb: &RgbImage) -> PrintImage {
    let (width, height, lab) = resized_lab(rgb, WORKING_SIDE);
    let lightness = GrayF32::from_fn(width, height, |x, y| {
        Luma([lab[(y * width + x) as usize][0] / 100.0])
    });
    let (structure_width, structure_height, structure_lab) = resized_lab(rgb, STRUCTURE_SIDE);
    let mut structure = edge_strength(
        &smoothed(
            &structure_lab,
            structure_width as usize,
            structure_height as usize,
        ),
        structure_width,
        structure_height,
    );
    for sample in structure.pixels_mut() {
        sample[0] = (EDGE_GAIN * sample[0]).tanh();
    }
    PrintImage {
        width,
        height,
        lab,
        lightness,
        structure,
    }
}

/// The print resized so its longest side is `side` (aspect kept), in CIELAB, row-major.
fn resized_lab(rgb: &RgbImage, side: u32) -> (u32, u32, Vec<[f32; 3]>) {
    let (w, h) = rgb.dimensions();
    let scale = side as f32 / w.max(h) as f32;
    let width = ((w as f32 * scale).round() as u32).max(1);
    let height = ((h as f32 * scale).round() as u32).max(1);
    let resized = if (width, height) == (w, h) {
        rgb.clone()
    } else if scale < 1.0 {
        area_averaged(rgb, width, height)
    } else {
        imageops::resize(rgb, width, height, imageops::FilterType::Triangle)
    };
    (
        width,
        height,
        resized.pixels().map(|p| srgb_to_lab(p.0)).collect(),
    )
}

/// The image shrunk to `width` × `height` (each no larger than the image's), each pixel the
/// rounded mean of the block of whole pixels under it: what `imageops::thumbnail` computes
/// when shrinking, with the same block bounds, summed a row of blocks at a time instead of
/// pixel by pixel through a generic view (it was a tenth of an extraction's CPU).
fn area_averaged(rgb: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = rgb.dimensions();
    // Block bounds as `thumbnail` takes them: [ceil(i · ratio), ceil((i + 1) · ratio)).
    let bounds = |from: u32, to: u32| -> Vec<(usize, usize)> {
        let ratio = from as f32 / to as f32;
        (0..to)
            .map(|i| {
                let start = i as f32 * ratio;
                let first = (start.ceil() as u32).min(from - 1);
                let end = ((start + ratio).ceil() as u32).clamp(first, from);
                (first as usize, end as usize)
            })
            .collect()
    };
    let (columns, rows) = (bounds(w, width), bounds(h, height));
    let source = rgb.as_raw();
    let stride = w as usize * 3;
    let mut column_sums = vec![0u32; stride];
    let mut out = Vec::with_capacity(width as usize * height as usize * 3);
    for &(top, bottom) in &rows {
        column_sums.fill(0);
        for row in source[top * stride..bottom * stride].chunks_exact(stride) {
            for (sum, &value) in column_sums.iter_mut().zip(row) {
                *sum += u32::from(value);
            }
        }
        for &(left, right) in &columns {
            let count = ((right - left) * (bottom - top)) as u32;
            for c in 0..3 {
                let sum: u32 = (left..right).map(|x| column_sums[x * 3 + c]).sum();
                out.push(((sum + count / 2) / count) as u8);
            }
        }
    }
    RgbImage::from_raw(width, height, out).expect("three samples per pixel")
}

/// The image blurred by a 5-tap binomial kernel (σ = 1) along rows, then columns, edges
/// clamped. At the structure side the sensor noise and JPEG blocks of a photographed or
/// recompressed copy would otherwise become edges of their own.
fn smoothed(lab: &[[f32; 3]], width: usize, height: usize) -> Vec<[f32; 3]> {
    const TAPS: [f32; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];
    let add = |sum: &mut [f32; 3], weight: f32, source: [f32; 3]| {
        for c in 0..3 {
            sum[c] += weight * source[c];
        }
    };
    let mut along_rows = vec![[0.0; 3]; lab.len()];
    for (row, out_row) in lab
        .chunks_exact(width)
        .zip(along_rows.chunks_exact_mut(width))
    {
        for (x, sum) in out_row.iter_mut().enumerate() {
            for (tap, &weight) in TAPS.iter().enumerate() {
                add(sum, weight, row[(x + tap).saturating_sub(2).min(width - 1)]);
            }
        }
    }
    // Each output row is a weighted sum of whole rows, so the inner loop runs along memory.
    let mut out = vec![[0.0; 3]; lab.len()];
    for (y, out_row) in out.chunks_exact_mut(width).enumerate() {
        for (tap, &weight) in TAPS.iter().enumerate() {
            let source_y = (y + tap).saturating_sub(2).min(height - 1);
            let source_row = &along_rows[source_y * width..(source_y + 1) * width];
            for (sum, &source) in out_row.iter_mut().zip(source_row) {
                add(sum, weight, source);
            }
        }
    }
    out
}

/// Sobel gradient magnitude over the three CIELAB channels together, edges clamped.
fn edge_strength(lab: &[[f32; 3]], width: u32, height: u32) -> GrayF32 {
    let (w, h) = (width as usize, height as usize);
    let mut sums = vec![0.0f32; w * h];
    // One channel at a time, each row padded with copies of its end pixels, so that the inner
    // loop runs over plain slices with no clamping per pixel and is vectorised.
    let mut padded = vec![0.0f32; (w + 2) * h];
    for c in 0..3 {
        for (row, line) in lab.chunks_exact(w).zip(padded.chunks_exact_mut(w + 2)) {
            for (value, pixel) in line[1..=w].iter_mut().zip(row) {
                *value = pixel[c];
            }
            (line[0], line[w + 1]) = (row[0][c], row[w - 1][c]);
        }
        let line = |y: usize| &padded[y * (w + 2)..(y + 1) * (w + 2)];
        for (y, sums) in sums.chunks_exact_mut(w).enumerate() {
            let (above, row, below) =
                (line(y.saturating_sub(1)), line(y), line((y + 1).min(h - 1)));
            for (x, sum) in sums.iter_mut().enumerate() {
                let (left, middle, right) = (x, x + 1, x + 2);
                let gx = above[right] + 2.0 * row[right] + below[right]
                    - above[left]
                    - 2.0 * row[left]
                    - below[left];
                let gy = below[left] + 2.0 * below[middle] + below[right]
                    - above[left]
                    - 2.0 * above[middle]
                    - above[right];
                *sum += gx * gx + gy * gy;
            }
        }
    }
    // Sobel weights sum to 8 per side; 100 ΔE is a jump from black to white.
    let strength = sums
        .into_iter()
        .map(|sum| (sum.sqrt() / 8.0 / 100.0).min(1.0))
        .collect();
    GrayF32::from_raw(width, height, strength).expect("one sample per pixel")
}

/// sRGB (8-bit) to CIELAB under D65.
pub fn srgb_to_lab([r, g, b]: [u8; 3]) -> [f32; 3] {
    static LINEAR: LazyLock<[f32; 256]> = LazyLock::new(|| {
        std::array::from_fn(|i| {
            let c = i as f32 / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        })
    });
    let linear = |c: u8| LINEAR[usize::from(c)];
    fn f(t: f32) -> f32 {
        if t > 0.008856 {
            cube_root(t)
        } else {
            7.787 * t + 16.0 / 116.0
        }
    }
    let (r, g, b) = (linear(r), linear(g), linear(b));
    let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
    let (fx, fy, fz) = (f(x), f(y), f(z));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// CIELAB (D65) back to 8-bit sRGB, for showing an ink.
pub fn lab_to_srgb([l, a, b]: [f32; 3]) -> [u8; 3] {
    let fy = (l + 16.0) / 116.0;
    let (fx, fz) = (fy + a / 500.0, fy - b / 200.0);
    let inverse = |t: f32| {
        if t > 6.0 / 29.0 {
            t * t * t
        } else {
            3.0 * (6.0f32 / 29.0).powi(2) * (t - 4.0 / 29.0)
        }
    };
    let (x, y, z) = (0.95047 * inverse(fx), inverse(fy), 1.08883 * inverse(fz));
    let linear = [
        3.2406 * x - 1.5372 * y - 0.4986 * z,
        -0.9689 * x + 1.8758 * y + 0.0415 * z,
        0.0557 * x - 0.2040 * y + 1.0570 * z,
    ];
    linear.map(|c| {
        let c = c.clamp(0.0, 1.0);
        let encoded = if c <= 0.003_130_8 {
            12.92 * c
        } else {
            1.055 * c.powf(1.0 / 2.4) - 0.055
        };
        (encoded * 255.0).round() as u8
    })
}

/// t^(1/3) for positive normal t, within a few parts in 10^7: an exponent divided by three
/// in the float's bits (within 4%), then two steps of Halley's method, which triples the
/// correct digits each. The library's cube root was 3.5% of an import's CPU.
fn cube_root(t: f32) -> f32 {
    let mut root = f32::from_bits(t.to_bits() / 3 + 0x2a51_4067);
    for _ in 0..2 {
        let cube = root * root * root;
        root *= (cube + 2.0 * t) / (2.0 * cube + t);
    }
    root
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cube_root_agrees_with_the_library() {
        for i in 0..100_000 {
            let t = 0.008 + i as f32 * 1.2e-5;
            let (fast, exact) = (cube_root(t), t.cbrt());
            assert!(
                (fast - exact).abs() <= 4e-7 * exact,
                "{t}: {fast} vs {exact}"
            );
        }
    }

    #[test]
    fn lab_of_white_black_and_red() {
        let white = srgb_to_lab([255, 255, 255]);
        assert!((white[0] - 100.0).abs() < 0.1 && white[1].abs() < 0.1 && white[2].abs() < 0.1);
        assert!(srgb_to_lab([0, 0, 0])[0].abs() < 0.01);
        let red = srgb_to_lab([255, 0, 0]);
        assert!((red[0] - 53.2).abs() < 0.5 && (red[1] - 80.1).abs() < 1.0);
    }

    #[test]
    fn working_image_keeps_aspect_and_longest_side() {
        let print = normalize(&RgbImage::new(1000, 500));
        assert_eq!(
            (print.width, print.height),
            (WORKING_SIDE, WORKING_SIDE / 2)
        );
        let small = normalize(&RgbImage::new(64, 128));
        assert_eq!(
            (small.width, small.height),
            (WORKING_SIDE / 2, WORKING_SIDE)
        );
    }

    /// A square print of `side` pixels: the left half one ink, the right half another.
    fn two_inks(side: u32, left: [u8; 3], right: [u8; 3]) -> RgbImage {
        RgbImage::from_fn(side, side, |x, _| {
            image::Rgb(if x < side / 2 { left } else { right })
        })
    }

    #[test]
    fn edges_sit_where_inks_meet_whatever_the_inks() {
        let side = STRUCTURE_SIDE;
        let a = normalize(&two_inks(side, [200, 30, 30], [240, 240, 200])).structure;
        let b = normalize(&two_inks(side, [20, 60, 160], [250, 200, 0])).structure;
        let strongest_column = |s: &GrayF32| {
            (0..s.width())
                .max_by(|&i, &j| s.get_pixel(i, 100)[0].total_cmp(&s.get_pixel(j, 100)[0]))
                .unwrap()
        };
        assert!((side / 2 - 1..=side / 2).contains(&strongest_column(&a)));
        assert_eq!(strongest_column(&a), strongest_column(&b));
        assert!(a.get_pixel(20, 100)[0] < 1e-4);
    }

    #[test]
    fn a_faint_ink_boundary_reads_nearly_as_strongly_as_a_bold_one() {
        // The same layout in two colourways: ΔE about 77, and about 23.
        let bold_print = two_inks(STRUCTURE_SIDE, [30, 30, 30], [220, 220, 220]);
        let faint_print = two_inks(STRUCTURE_SIDE, [120, 120, 120], [180, 180, 180]);
        let peak = |channel: &GrayF32| channel.pixels().map(|p| p[0]).fold(0.0, f32::max);
        let (bold, faint) = (normalize(&bold_print), normalize(&faint_print));
        let saturated = peak(&faint.structure) / peak(&bold.structure);
        assert!(saturated > 0.5, "structure channel ratio {saturated}");
        assert!(peak(&bold.structure) <= 1.0);
        // Unsaturated, the faint boundary reads at under a third of the bold one.
        let linear = |rgb: &RgbImage| {
            let (width, height, lab) = resized_lab(rgb, STRUCTURE_SIDE);
            peak(&edge_strength(&lab, width, height))
        };
        let ratio = linear(&faint_print) / linear(&bold_print);
        assert!(ratio < 0.35, "edge strength ratio {ratio}");
    }

    #[test]
    fn lab_round_trips_to_srgb() {
        for rgb in [[0, 0, 0], [255, 255, 255], [180, 20, 40], [20, 120, 200]] {
            let back = lab_to_srgb(srgb_to_lab(rgb));
            for c in 0..3 {
                assert!(
                    (back[c] as i32 - rgb[c] as i32).abs() <= 2,
                    "{rgb:?} -> {back:?}"
                );
            }
        }
    }

    #[test]
    fn shrinking_averages_blocks_as_thumbnail_does() {
        let mut state = 12345u32;
        let mut noise = || {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (state >> 16) as u8
        };
        for (w, h, to_w, to_h) in [
            (512, 512, 384, 384),
            (512, 512, 256, 256),
            (700, 333, 384, 183),
            (385, 97, 384, 97),
            (1000, 10, 256, 3),
        ] {
            let image = RgbImage::from_fn(w, h, |_, _| image::Rgb([noise(), noise(), noise()]));
            assert_eq!(
                area_averaged(&image, to_w, to_h),
                imageops::thumbnail(&image, to_w, to_h),
                "{w}×{h} → {to_w}×{to_h}"
            );
        }
    }
}
