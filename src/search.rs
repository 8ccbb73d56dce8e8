//! From a query's features to ranked, scored, explained candidates. Every signal proposes
//! candidates; one pairwise verifier ([`compare`]) scores each, so a score means the same thing
//! whichever signal found the candidate, and the `copy` verdict is one threshold on it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::Serialize;

use crate::features::colour::delta_e;
use crate::features::global_vector::similarity;
use crate::features::{Dihedral, DihedralHashes, FeatureSet, Hash256};
use crate::index::Indexes;

/// Score at and above which two prints are judged copies. See README "The copy verdict".
pub const DEFAULT_COPY_THRESHOLD: f32 = 0.45;
/// Candidates each signal proposes, at least.
const CANDIDATES_PER_SIGNAL: usize = 32;

/// The verifier's answer for one pair of prints.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// In [0, 1], comparable across queries: higher is more similar.
    pub score: f32,
    /// The verdict at the configured operating point.
    pub copy: bool,
    pub explanation: Explanation,
    /// ΔE between the mean colours: breaks ties between equal scores.
    #[serde(skip)]
    pub colour_difference: f32,
}

/// Why the verifier scored a pair as it did.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    /// One sentence for people.
    pub summary: String,
    /// How the first print must be turned or mirrored to line up with the second.
    pub orientation: Dihedral,
    pub signals: Vec<Signal>,
}

/// One signal's view of a pair.
#[derive(Clone, Debug, Serialize)]
pub struct Signal {
    pub name: &'static str,
    /// This signal's similarity in [0, 1].
    pub similarity: f32,
    /// Whether this signal alone points to a copy.
    pub fired: bool,
    pub detail: String,
}

/// Hamming distance at which a hash similarity reaches zero: unrelated 256-bit hashes differ in
/// about half their bits.
const UNRELATED_HASH_DISTANCE: f32 = Hash256::BITS as f32 / 2.0;

/// One hash signal: its similarity in [0, 1] and the query orientation that reaches it. A plain
/// channel on either side is no evidence either way: similarity 0.
fn hash_signal(
    name: &'static str,
    query: Option<&DihedralHashes>,
    reference: Option<&DihedralHashes>,
    threshold: f32,
) -> (Signal, Dihedral) {
    let (Some(query), Some(reference)) = (query, reference) else {
        let signal = Signal {
            name,
            similarity: 0.0,
            fired: false,
            detail: "one of the prints is plain in this channel: nothing to compare".into(),
        };
        return (signal, Dihedral::Identity);
    };
    let (distance, orientation) = query.closest(&reference.upright());
    let similarity = (1.0 - distance as f32 / UNRELATED_HASH_DISTANCE).clamp(0.0, 1.0);
    let signal = Signal {
        name,
        similarity,
        fired: similarity >= threshold,
        detail: format!(
            "{distance} of 256 bits differ with the query {}",
            orientation.describe()
        ),
    };
    (signal, orientation)
}

/// Scores how likely `reference` is a registered original of which `query` is a copy.
///
/// The score is the mean of the two hash similarities: lightness alone is fooled by new
/// colourways and edges alone by dense textures, but unrelated prints rarely come close in
/// both at once.
pub fn compare(query: &FeatureSet, reference: &FeatureSet, copy_threshold: f32) -> Comparison {
    let (lightness, lightness_turn) = hash_signal(
        "lightness_hash",
        query.lightness_hash.as_ref(),
        reference.lightness_hash.as_ref(),
        copy_threshold,
    );
    let (structure, structure_turn) = hash_signal(
        "structure_hash",
        query.structure_hash.as_ref(),
        reference.structure_hash.as_ref(),
        copy_threshold,
    );
    let score = (lightness.similarity + structure.similarity) / 2.0;
    let orientation = if structure.similarity >= lightness.similarity {
        structure_turn
    } else {
        lightness_turn
    };
    let copy = score >= copy_threshold;
    let summary = if copy {
        format!(
            "The whole print matches in lightness and in ink edges once the query is {}.",
            orientation.describe()
        )
    } else {
        "The whole print is not found in the reference.".to_string()
    };
    let vector = Signal {
        name: "global_vector",
        similarity: similarity(&query.global_vector, &reference.global_vector),
        fired: false,
        detail: "cosine similarity of orientation-free DCT magnitudes (finds candidates only)"
            .into(),
    };
    let colour_difference = delta_e(query.mean_colour, reference.mean_colour);
    let colour = Signal {
        name: "mean_colour",
        similarity: (1.0 - colour_difference / 100.0).max(0.0),
        fired: false,
        detail: format!(
            "mean colours differ by ΔE {colour_difference:.1} (orders equal scores only)"
        ),
    };
    Comparison {
        score,
        copy,
        explanation: Explanation {
            summary,
            orientation,
            signals: vec![lightness, structure, vector, colour],
        },
        colour_difference,
    }
}

/// The `k` best registered prints for a query, best first, as (sequence number, comparison).
pub fn rank(
    query: &FeatureSet,
    indexes: &Indexes,
    features: &HashMap<u64, Arc<FeatureSet>>,
    k: usize,
    copy_threshold: f32,
) -> Vec<(u64, Comparison)> {
    let wanted = k.max(CANDIDATES_PER_SIGNAL);
    let mut candidates = BTreeSet::new();
    for (index, hashes) in [
        (&indexes.structure, &query.structure_hash),
        (&indexes.lightness, &query.lightness_hash),
    ] {
        if let Some(hashes) = hashes {
            candidates.extend(index.nearest(hashes, wanted).into_iter().map(|hit| hit.seq));
        }
    }
    candidates.extend(
        indexes
            .vectors
            .nearest(&query.global_vector, wanted)
            .into_iter()
            .map(|hit| hit.seq),
    );
    let mut ranked: Vec<(u64, Comparison)> = candidates
        .into_iter()
        .filter_map(|seq| Some((seq, compare(query, features.get(&seq)?, copy_threshold))))
        .collect();
    ranked.sort_by(|a, b| {
        (b.1.score.total_cmp(&a.1.score))
            .then(a.1.colour_difference.total_cmp(&b.1.colour_difference))
            .then(a.0.cmp(&b.0))
    });
    ranked.truncate(k);
    ranked
}
