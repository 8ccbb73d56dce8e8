//! The whole print as one signal: how close two prints' hashes come in their best
//! orientation, and how far that rises above what chance reaches for the query in this
//! registry.

use super::{Finding, Signal};
use crate::features::repeat_unit::RepeatUnit;
use crate::features::{Dihedral, DihedralHashes, FeatureSet, Hash256};
use crate::index::{HashHit, HashIndex, Indexes};
use crate::normalize::STRUCTURE_SIDE;

/// The whole-print similarity of a query's this-many-th nearest registered print, channel by
/// channel, is what chance reaches for that query: see [`super::Query`]. Eight, not sixteen:
/// in a registry of a few hundred prints, most of them motif prints, a dense texture's
/// sixteenth-nearest print is already far below the unrelated textures it comes close to, and
/// such prints were held for review as copies of each other (docs/matching.md, §4).
pub(super) const BACKGROUND_RANK: usize = 8;

/// The query's `k` nearest registered prints in each hash channel (structure, lightness),
/// nearest first, and at least as many as [`whole_background`] reads; none in a plain channel.
/// One scan serves both the background and the search's whole-print candidates.
pub(super) fn hash_neighbours(
    features: &FeatureSet,
    indexes: &Indexes,
    k: usize,
) -> [Vec<HashHit>; 2] {
    let channel = |index: &HashIndex, hashes: &Option<DihedralHashes>| match hashes {
        Some(hashes) => index.nearest(hashes, k.max(BACKGROUND_RANK + 1)),
        None => Vec::new(),
    };
    [
        channel(&indexes.structure, &features.structure_hash),
        channel(&indexes.lightness, &features.lightness_hash),
    ]
}

/// What unrelated registered prints reach for a query in each hash channel: the similarity of
/// its [`BACKGROUND_RANK`]-th nearest registered print in that channel (itself left out), from
/// [`hash_neighbours`]. A copy is one print, the background is what many reach. A plain
/// channel's is 0, as in the verifier.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct HashBackground {
    pub structure: f32,
    pub lightness: f32,
}

impl HashBackground {
    pub fn of(neighbours: &[Vec<HashHit>; 2], itself: Option<u64>) -> HashBackground {
        let channel = |hits: &[HashHit]| {
            hits.iter()
                .filter(|hit| Some(hit.seq) != itself)
                .nth(BACKGROUND_RANK - 1)
                .map_or(0.0, |hit| hash_similarity(hit.distance))
        };
        HashBackground {
            structure: channel(&neighbours[0]),
            lightness: channel(&neighbours[1]),
        }
    }

    /// The background of the two channels' mean similarity.
    pub fn mean(&self) -> f32 {
        (self.structure + self.lightness) / 2.0
    }
}

/// How far `similarity` rises above `background`, rescaled to [0, 1].
pub(super) fn above_background(similarity: f32, background: f32) -> f32 {
    ((similarity - background) / (1.0 - background).max(f32::EPSILON)).clamp(0.0, 1.0)
}

fn hash_similarity(distance: u32) -> f32 {
    (1.0 - distance as f32 / UNRELATED_HASH_DISTANCE).clamp(0.0, 1.0)
}

/// Hamming distance at which a hash similarity reaches zero: unrelated 256-bit hashes differ in
/// about half their bits.
const UNRELATED_HASH_DISTANCE: f32 = Hash256::BITS as f32 / 2.0;

/// Longest lattice vector, in pixels of the structure channel, of a fine repeat: one that
/// shows at least four repeats each way. Below its lattice's fundamental frequency a repeat has
/// no variation of its own, so most of the hash's 16 × 16 coefficients are then the faint
/// leakage of the lattice's few harmonics, which any repeat of the same lattice shares: two
/// unrelated GIMP textures tiled at 112 and 114 pixels of 768 had lightness hashes 38 bits
/// apart, and the one registered second was held for review as a copy (docs/matching.md, §2).
const FINE_LATTICE: f32 = STRUCTURE_SIDE as f32 / 4.0;

/// Whether a print is a fine repeat ([`FINE_LATTICE`]).
pub(super) fn is_fine_repeat(unit: Option<&RepeatUnit>) -> bool {
    unit.is_some_and(|unit| {
        unit.lattice
            .iter()
            .all(|vector| vector[0].hypot(vector[1]) <= FINE_LATTICE)
    })
}

/// One hash signal: its similarity in [0, 1] and the query orientation that reaches it. A plain
/// channel on either side is no evidence either way: similarity 0. A single hash never fires
/// alone; the whole-print signal (the mean of both, or the structure hash alone against its
/// own background) is held against the threshold.
/// `lattice_only`: a fine repeat beside a print that does not fold into its unit (another unit
/// on the same lattice, or no repeat at all, as stripes of the same period show), so the bits
/// say no more than that the lattices agree, and count for nothing; a copy of a repeat keeps
/// its unit.
pub(super) fn hash_signal(
    name: &'static str,
    query: Option<&DihedralHashes>,
    reference: Option<&DihedralHashes>,
    lattice_only: bool,
) -> (Signal, Dihedral) {
    let (Some(query), Some(reference)) = (query, reference) else {
        let signal = Signal::new(name, 0.0, false, Finding::PlainChannel);
        return (signal, Dihedral::Identity);
    };
    let (distance, orientation) = query.closest(&reference.upright());
    let similarity = if lattice_only {
        0.0
    } else {
        hash_similarity(distance)
    };
    let finding = Finding::HashBits {
        differing: distance,
        orientation,
        lattice_only,
    };
    let signal = Signal::new(name, similarity, false, finding);
    (signal, orientation)
}

/// The whole-print similarity as a score. Below the copy threshold it is squared (relative to
/// the threshold): unrelated prints reach 0.2–0.4 there by chance, which would otherwise
/// outrank a real but partial local match (a few rearranged motifs) of the same similarity. At
/// and above the threshold it is left as it is, so the verdict does not change.
pub(super) fn whole_score(similarity: f32, copy_threshold: f32) -> f32 {
    if similarity >= copy_threshold {
        similarity
    } else {
        similarity * similarity / copy_threshold.max(f32::EPSILON)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;
    use crate::features::{extract, global_vector};
    use crate::index::{KeypointIndex, VECTOR_SHAPE, VectorIndex};
    use crate::normalize::normalize;
    use crate::search::DEFAULT_COPY_THRESHOLD;

    /// A generated print: stripes of a width and angle chosen by the seed.
    fn print(seed: u64) -> FeatureSet {
        let width = 6 + (seed % 7) as u32 * 3;
        let image = image::RgbImage::from_fn(128, 128, |x, y| {
            let band = (x + y * (seed as u32 % 3)) / width + y / (width + seed as u32);
            if band.is_multiple_of(2) {
                image::Rgb([200, 40, 40])
            } else {
                image::Rgb([240, 230, 200])
            }
        });
        extract(&normalize(&image))
    }

    fn registry(prints: impl Iterator<Item = FeatureSet>) -> Indexes {
        let features: HashMap<u64, Arc<FeatureSet>> = prints
            .enumerate()
            .map(|(i, f)| (i as u64, Arc::new(f)))
            .collect();
        let vectors = VectorIndex::new(global_vector::DIMENSIONS, features.len(), VECTOR_SHAPE);
        Indexes::new(vectors, KeypointIndex::default(), &features)
    }

    #[test]
    fn a_whole_print_match_counts_for_how_far_it_rises_above_chance() {
        assert_eq!(above_background(0.7, 0.0), 0.7);
        // A textured query 0.61 from an unrelated print whose background is 0.42: no copy.
        assert!(above_background(0.61, 0.42) < DEFAULT_COPY_THRESHOLD);
        // A JPEG copy at 0.89 over a background of 0.36: still a copy.
        assert!(above_background(0.89, 0.36) >= DEFAULT_COPY_THRESHOLD);
        assert_eq!(above_background(0.3, 0.4), 0.0);
        assert_eq!(above_background(1.0, 1.0), 0.0);
    }

    #[test]
    fn the_background_is_what_the_eighth_nearest_print_reaches() {
        let query = print(0);
        let few = registry((1..=7).map(print));
        let background = |neighbours, itself| HashBackground::of(&neighbours, itself).mean();
        assert_eq!(
            background(hash_neighbours(&query, &few, 0), None),
            0.0,
            "7 prints: no 8th"
        );
        let unrelated = background(
            hash_neighbours(&query, &registry((1..=40).map(print)), 0),
            None,
        );
        let twins = |n| registry(std::iter::repeat_with(|| print(0)).take(n));
        assert_eq!(
            background(hash_neighbours(&query, &twins(8), 0), None),
            1.0,
            "8 copies of it"
        );
        assert_eq!(
            background(hash_neighbours(&query, &twins(7), 0), None),
            0.0,
            "7 copies of it: no 8th"
        );
        assert!(unrelated < 0.9, "{unrelated}");
        let mut with_itself = (1..=7).map(print).collect::<Vec<_>>();
        with_itself.push(print(0));
        assert_eq!(
            background(
                hash_neighbours(&query, &registry(with_itself.into_iter()), 0),
                Some(7)
            ),
            0.0,
            "the query itself is not part of the background"
        );
    }
}
