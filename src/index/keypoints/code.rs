//! Descriptors as 128-bit codes, and the binary vocabulary that files them: the parts of the
//! keypoint index that know about bits, not about prints.

use std::sync::LazyLock;

use crate::features::keypoints::{DESCRIPTOR_LEN, Descriptor};

/// A descriptor as 128 bits.
pub type Code = [u64; CODE_WORDS];
pub const CODE_WORDS: usize = 2;
pub(super) const CODE_BITS: usize = 64 * CODE_WORDS;

/// Keypoints per posting list just after training or a split.
pub(super) const LIST_TARGET: usize = 32;
/// Centres at each level of the vocabulary, and lists a leaf splits into, at most.
pub(super) const MAX_BRANCHING: usize = 128;
/// Codes a vocabulary level is trained on, per centre.
pub(super) const SAMPLE_PER_CENTRE: usize = 32;
const TRAINING_ROUNDS: usize = 6;
/// A lookup follows this many top-level centres and this many leaves below them: as before
/// leaves split, so that a small registry scans the same codes. Measured on the 50,000-print
/// registry of the scale bench (docs/scale.md, step 20), with the index's `PROBE_LISTS`: 3%
/// fewer true neighbours found than before leaves split, in 13% less time, and half the time
/// at four times the density.
const PROBE_TOP: usize = 3;
const PROBE_LEAVES: usize = 8;

/// Fixed random directions (Gaussian, from a seeded generator), one per code bit.
static PROJECTIONS: LazyLock<Vec<[f32; DESCRIPTOR_LEN]>> = LazyLock::new(|| {
    let mut state: u64 = 0x6875_6178_696e_6721; // "huaxing!"
    let mut uniform = move || {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..CODE_BITS)
        .map(|_| {
            std::array::from_fn(|_| {
                // Box–Muller
                let (u, v) = (uniform().max(f64::MIN_POSITIVE), uniform());
                ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
            })
        })
        .collect()
});

/// A descriptor's code.
pub fn code_of(descriptor: &Descriptor) -> Code {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { code_of_avx2(descriptor) };
    }
    code_of_portable(descriptor)
}

/// [`code_of_portable`] compiled for AVX2: the eight running sums fit one register. No fused
/// multiply-add, so the code is the same.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn code_of_avx2(descriptor: &Descriptor) -> Code {
    code_of_portable(descriptor)
}

#[inline(always)]
fn code_of_portable(descriptor: &Descriptor) -> Code {
    let mean = descriptor.iter().map(|&v| f32::from(v)).sum::<f32>() / DESCRIPTOR_LEN as f32;
    let centred: [f32; DESCRIPTOR_LEN] = std::array::from_fn(|i| f32::from(descriptor[i]) - mean);
    let mut code = [0u64; CODE_WORDS];
    for (bit, direction) in PROJECTIONS.iter().enumerate() {
        // Eight running sums rather than one: a single float sum must be added in order and
        // is not vectorised; this made code_of a seventh of an import's time.
        let mut lanes = [0f32; 8];
        for (d, c) in direction.chunks_exact(8).zip(centred.chunks_exact(8)) {
            for lane in 0..8 {
                lanes[lane] += d[lane] * c[lane];
            }
        }
        let dot: f32 = lanes.iter().sum();
        if dot > 0.0 {
            code[bit / 64] |= 1 << (bit % 64);
        }
    }
    code
}

#[inline(always)]
pub fn hamming(a: &Code, b: &Code) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// Adds to `found` the codes in `codes` within `bits` of `code`, as (distance in bits,
/// position). With the CPU's popcount instruction where it has one (the portable build counts
/// bits in a dozen instructions a word), chosen at run time.
pub fn close_codes(code: &Code, codes: &[Code], bits: u32, found: &mut Vec<(u32, usize)>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("popcnt") {
        // SAFETY: the CPU has popcnt, checked just above.
        return unsafe { close_codes_popcnt(code, codes, bits, found) };
    }
    close_codes_portable(code, codes, bits, found);
}

#[inline(always)]
fn close_codes_portable(code: &Code, codes: &[Code], bits: u32, found: &mut Vec<(u32, usize)>) {
    for (i, candidate) in codes.iter().enumerate() {
        let distance = hamming(code, candidate);
        if distance <= bits {
            found.push((distance, i));
        }
    }
}

/// [`close_codes_portable`], compiled with the popcount instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
unsafe fn close_codes_popcnt(
    code: &Code,
    codes: &[Code],
    bits: u32,
    found: &mut Vec<(u32, usize)>,
) {
    close_codes_portable(code, codes, bits, found);
}

/// A reproducible stream of pseudo-random words for the index's tests (a 64-bit linear
/// congruential generator; the first word is the state after one step from `seed`).
#[cfg(test)]
pub(super) fn test_words(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_popcount_scan_finds_what_the_portable_one_finds() {
        let mut word = test_words(1);
        let codes: Vec<Code> = (0..5000).map(|_| std::array::from_fn(|_| word())).collect();
        let query = codes[17];
        for bits in [0, 50, 60, 64, 128] {
            let (mut fast, mut portable) = (Vec::new(), Vec::new());
            close_codes(&query, &codes, bits, &mut fast);
            close_codes_portable(&query, &codes, bits, &mut portable);
            assert_eq!(fast, portable, "within {bits} bits");
            assert!(fast.contains(&(0, 17)));
        }
    }

    #[test]
    fn codes_are_the_same_with_and_without_avx2() {
        let mut word = test_words(5);
        for _ in 0..2000 {
            let descriptor: Descriptor = std::array::from_fn(|_| (word() >> 58) as u8 * 4);
            assert_eq!(code_of(&descriptor), code_of_portable(&descriptor));
        }
    }

    #[test]
    fn a_bounded_distance_is_the_distance_or_nothing() {
        let mut word = test_words(3);
        let mut descriptor =
            move || -> Descriptor { std::array::from_fn(|_| (word() >> 57) as u8 * 3) };
        for _ in 0..200 {
            let (a, b) = (descriptor(), descriptor());
            let exact: u32 = a
                .iter()
                .zip(&b)
                .map(|(p, q)| (i32::from(*p) - i32::from(*q)).pow(2) as u32)
                .sum();
            for bound in [0, exact / 4, exact, exact + 1, u32::MAX] {
                let expected = (exact < bound).then_some(exact);
                assert_eq!(squared_distance_below(&a, &b, bound), expected);
            }
        }
        let references: Vec<Descriptor> = (0..300).map(|_| descriptor()).collect();
        for (i, reference) in references.iter().enumerate().step_by(7) {
            // A keypoint seen again (every fifth bin a little off), then an unrelated one.
            let mut seen_again = *reference;
            for bin in seen_again.iter_mut().step_by(5) {
                *bin = bin.saturating_add(9);
            }
            for query in [seen_again, descriptor()] {
                for bound in [40_000, 200_000, u32::MAX] {
                    assert_eq!(
                        nearest_below(&query, &references, bound),
                        nearest_below_portable(&query, &references, bound)
                    );
                }
            }
            let found = nearest_below(&seen_again, &references, 40_000);
            assert_eq!(found.map(|(index, _)| index), Some(i));
        }
        assert_eq!(squared_bound(200.0), 40_000);
        assert_eq!(squared_bound(1.5), 3);
    }
}

/// The squared Euclidean distance between two descriptors if it is below `bound`. Summed in
/// integers a quarter of the bins at a time (vectorised by the compiler), giving up as soon as
/// the sum reaches the bound: most pairs a verifier or a lookup meets are far apart, and a
/// quarter of their bins already says so.
#[inline(always)]
pub fn squared_distance_below(a: &Descriptor, b: &Descriptor, bound: u32) -> Option<u32> {
    let mut sum = 0u32;
    for (x, y) in a.chunks_exact(QUARTER).zip(b.chunks_exact(QUARTER)) {
        let (x, y): (&[u8; QUARTER], &[u8; QUARTER]) = (
            x.try_into().expect("quarter of a descriptor"),
            y.try_into().expect("quarter of a descriptor"),
        );
        sum += x
            .iter()
            .zip(y)
            .map(|(p, q)| {
                let d = u32::from(p.abs_diff(*q));
                d * d
            })
            .sum::<u32>();
        if sum >= bound {
            return None;
        }
    }
    Some(sum)
}

const QUARTER: usize = DESCRIPTOR_LEN / 4;

/// The index of the descriptor in `references` nearest to `descriptor` and its squared
/// distance, if that is below `bound`; the first of equals. The verifier's inner loop, written
/// out in AVX2 where the CPU has it.
pub fn nearest_below(
    descriptor: &Descriptor,
    references: &[Descriptor],
    bound: u32,
) -> Option<(usize, u32)> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { nearest_below_avx2(descriptor, references, bound) };
    }
    nearest_below_portable(descriptor, references, bound)
}

fn nearest_below_portable(
    descriptor: &Descriptor,
    references: &[Descriptor],
    mut bound: u32,
) -> Option<(usize, u32)> {
    let mut nearest = None;
    for (i, reference) in references.iter().enumerate() {
        if let Some(squared) = squared_distance_below(descriptor, reference, bound) {
            bound = squared;
            nearest = Some((i, squared));
        }
    }
    nearest
}

/// [`nearest_below_portable`] written out in AVX2, with the query held in registers: a
/// quarter of a reference is 32 byte differences, widened to 16 bits, then squared and summed
/// in pairs by `madd`. The bound is checked after each half instead of each quarter: the
/// result is the same, and the check after the first quarter went either way about as often,
/// so its mispredicted branch cost more than the quarter it saved (this loop took 19% of an
/// import's CPU, now 12%).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn nearest_below_avx2(
    descriptor: &Descriptor,
    references: &[Descriptor],
    mut bound: u32,
) -> Option<(usize, u32)> {
    use std::arch::x86_64::*;
    let load = |bytes: &[u8]| {
        let quarter: &[u8; QUARTER] = bytes.try_into().expect("quarter of a descriptor");
        // SAFETY: 32 readable bytes; the load is unaligned.
        unsafe { _mm256_loadu_si256(quarter.as_ptr().cast()) }
    };
    let query: [__m256i; 4] = std::array::from_fn(|k| load(&descriptor[k * QUARTER..][..QUARTER]));
    let zero = _mm256_setzero_si256();
    let mut nearest = None;
    'references: for (i, reference) in references.iter().enumerate() {
        let mut sums = zero;
        let mut sum = 0;
        for (k, (q, r)) in query
            .iter()
            .zip(reference.chunks_exact(QUARTER).map(load))
            .enumerate()
        {
            let difference = _mm256_or_si256(_mm256_subs_epu8(*q, r), _mm256_subs_epu8(r, *q));
            let low = _mm256_unpacklo_epi8(difference, zero);
            let high = _mm256_unpackhi_epi8(difference, zero);
            sums = _mm256_add_epi32(sums, _mm256_madd_epi16(low, low));
            sums = _mm256_add_epi32(sums, _mm256_madd_epi16(high, high));
            let half_done = k % 2 == 1;
            if !half_done {
                continue;
            }
            let lanes = _mm_add_epi32(
                _mm256_castsi256_si128(sums),
                _mm256_extracti128_si256::<1>(sums),
            );
            let pairs = _mm_add_epi32(lanes, _mm_shuffle_epi32::<0b01_00_11_10>(lanes));
            let total = _mm_add_epi32(pairs, _mm_shuffle_epi32::<0b10_11_00_01>(pairs));
            sum = _mm_cvtsi128_si32(total) as u32;
            if sum >= bound {
                continue 'references;
            }
        }
        bound = sum;
        nearest = Some((i, sum));
    }
    nearest
}

/// The bound for [`squared_distance_below`] that keeps distances below `distance`.
pub fn squared_bound(distance: f32) -> u32 {
    (distance * distance).ceil().min(u32::MAX as f32) as u32
}

/// The centre nearest `code`; the first of equals.
pub(super) fn nearest(centres: &[Code], code: &Code) -> usize {
    (0..centres.len())
        .min_by_key(|&i| hamming(&centres[i], code))
        .expect("at least one centre")
}

/// `k` centres for `codes` by k-majority: assign each code to its nearest centre, set each
/// bit of a centre to the majority of its codes' bits, repeat. Deterministic: the first
/// centres are codes spread evenly through the input.
pub(super) fn k_majority(codes: &[Code], k: usize) -> Vec<Code> {
    let k = k.min(codes.len()).max(1);
    let mut centres: Vec<Code> = (0..k).map(|i| codes[i * codes.len() / k]).collect();
    for _ in 0..TRAINING_ROUNDS {
        let mut ones = vec![[0u32; CODE_BITS]; k];
        let mut sizes = vec![0u32; k];
        for code in codes {
            let c = nearest(&centres, code);
            sizes[c] += 1;
            for (word, &bits) in code.iter().enumerate() {
                let mut bits = bits;
                while bits != 0 {
                    ones[c][word * 64 + bits.trailing_zeros() as usize] += 1;
                    bits &= bits - 1;
                }
            }
        }
        for c in (0..k).filter(|&c| sizes[c] > 0) {
            let mut centre = [0u64; CODE_WORDS];
            for (bit, &count) in ones[c].iter().enumerate() {
                if 2 * count > sizes[c] {
                    centre[bit / 64] |= 1 << (bit % 64);
                }
            }
            centres[c] = centre;
        }
    }
    centres
}

/// Two levels of binary centres; each leaf owns the codes nearest it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Vocabulary {
    pub(super) top: Vec<Code>,
    /// The leaves below top centre `t` are `leaves[leaf_start[t]..leaf_start[t + 1]]`.
    pub(super) leaf_start: Vec<u32>,
    pub(super) leaves: Vec<Code>,
    /// Keypoints it was trained on.
    pub(super) trained_on: usize,
}

impl Vocabulary {
    /// Trains on `codes` (a sample of the index, in registration order) for about
    /// `keypoints / LIST_TARGET` lists.
    pub(super) fn train(codes: &[Code], keypoints: usize) -> Vocabulary {
        let branching = ((keypoints / LIST_TARGET) as f64)
            .sqrt()
            .ceil()
            .clamp(2.0, MAX_BRANCHING as f64) as usize;
        let top = k_majority(codes, branching);
        let mut below: Vec<Vec<Code>> = vec![Vec::new(); top.len()];
        for code in codes {
            below[nearest(&top, code)].push(*code);
        }
        let mut leaf_start = vec![0u32];
        let mut leaves = Vec::new();
        for (t, members) in below.iter().enumerate() {
            if members.is_empty() {
                leaves.push(top[t]);
            } else {
                leaves.extend(k_majority(members, branching));
            }
            leaf_start.push(leaves.len() as u32);
        }
        Vocabulary {
            top,
            leaf_start,
            leaves,
            trained_on: keypoints,
        }
    }

    fn leaves_below(&self, t: usize) -> std::ops::Range<usize> {
        self.leaf_start[t] as usize..self.leaf_start[t + 1] as usize
    }

    /// The leaf a code is filed under.
    pub(super) fn leaf_of(&self, code: &Code) -> usize {
        let below = self.leaves_below(nearest(&self.top, code));
        below.start + nearest(&self.leaves[below], code)
    }

    /// The leaves a lookup follows, into `leaves` as (bits, leaf), nearest first: the nearest
    /// leaves below the nearest top centres, ranked in `tops`. With the CPU's popcount
    /// instruction where it has one, as [`close_codes`].
    pub(super) fn leaves_near(
        &self,
        code: &Code,
        tops: &mut Vec<(u32, usize)>,
        leaves: &mut Vec<(u32, usize)>,
    ) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("popcnt") {
            // SAFETY: the CPU has popcnt, checked just above.
            return unsafe { self.leaves_near_popcnt(code, tops, leaves) };
        }
        self.leaves_near_portable(code, tops, leaves)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt")]
    unsafe fn leaves_near_popcnt(
        &self,
        code: &Code,
        tops: &mut Vec<(u32, usize)>,
        leaves: &mut Vec<(u32, usize)>,
    ) {
        self.leaves_near_portable(code, tops, leaves)
    }

    /// Loops rather than iterator adapters: an adapter's `next` is compiled apart from its
    /// caller, without the popcount instruction.
    #[inline(always)]
    fn leaves_near_portable(
        &self,
        code: &Code,
        tops: &mut Vec<(u32, usize)>,
        leaves: &mut Vec<(u32, usize)>,
    ) {
        tops.clear();
        for (t, centre) in self.top.iter().enumerate() {
            tops.push((hamming(centre, code), t));
        }
        keep_smallest(tops, PROBE_TOP);
        leaves.clear();
        for &(_, t) in tops.iter() {
            for leaf in self.leaves_below(t) {
                leaves.push((hamming(&self.leaves[leaf], code), leaf));
            }
        }
        keep_smallest(leaves, PROBE_LEAVES);
    }
}

/// Keeps the `k` smallest of `items`, in order. Selecting them first spares a full sort of up
/// to 512 centres in each of a query's 768 lookups (the sorts were 8% of an import's time).
pub(super) fn keep_smallest<T: Ord>(items: &mut Vec<T>, k: usize) {
    if items.len() > k {
        items.select_nth_unstable(k);
        items.truncate(k);
    }
    items.sort_unstable();
}
