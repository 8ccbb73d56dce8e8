//! The low-frequency 2-D DCT of a channel (structure or lightness), shared by the hashes and
//! the global vector. The channel is area-resampled to 64×64 and its 16×16 lowest DCT-II coefficients
//! kept, as in pHash and PDQ.

use std::sync::LazyLock;

use image::imageops::{self, FilterType};
use ndarray::{Array2, ArrayView2};

use crate::normalize::GrayF32;

/// Side of the resampled structure image.
pub const SAMPLE_SIDE: usize = 64;
/// Side of the kept block of coefficients.
pub const BLOCK_SIDE: usize = 16;

/// Rows of the DCT-II basis for the first BLOCK_SIDE frequencies, orthonormal scaling.
static BASIS: LazyLock<Array2<f32>> = LazyLock::new(|| {
    let n = SAMPLE_SIDE as f32;
    Array2::from_shape_fn((BLOCK_SIDE, SAMPLE_SIDE), |(k, i)| {
        let scale = if k == 0 {
            (1.0 / n).sqrt()
        } else {
            (2.0 / n).sqrt()
        };
        scale * (std::f32::consts::PI * (2.0 * i as f32 + 1.0) * k as f32 / (2.0 * n)).cos()
    })
});

/// Coefficient block `C[v][u]`: `v` is the vertical frequency, `u` the horizontal one.
pub fn low_frequencies(structure: &GrayF32) -> Array2<f32> {
    let side = SAMPLE_SIDE as u32;
    let sampled = imageops::resize(structure, side, side, FilterType::Triangle);
    let samples = ArrayView2::from_shape((SAMPLE_SIDE, SAMPLE_SIDE), sampled.as_raw())
        .expect("resize returns side×side samples");
    block_of(samples)
}

/// The DCT block of a SAMPLE_SIDE × SAMPLE_SIDE array.
pub fn block_of(samples: ArrayView2<f32>) -> Array2<f32> {
    BASIS.dot(&samples).dot(&BASIS.t())
}

/// Root-mean-square of the AC coefficients below which a channel counts as plain: about ten
/// times what JPEG noise leaves on a single colour, a hundredth of a typical print's.
const PLAIN_AC_RMS: f32 = 0.01;

/// Whether the block shows no variation beyond noise.
pub fn is_plain(block: &Array2<f32>) -> bool {
    let ac_energy: f32 = block.iter().skip(1).map(|c| c * c).sum();
    (ac_energy / (block.len() - 1) as f32).sqrt() < PLAIN_AC_RMS
}
