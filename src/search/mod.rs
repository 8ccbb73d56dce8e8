//! From a query's features to ranked, scored, explained candidates. Every signal proposes
//! candidates; one pairwise verifier ([`compare`]) scores each, so a score means the same thing
//! whichever signal found the candidate, and the `copy` verdict is one threshold on it.

mod explanation;
pub mod local;
pub mod palette;
mod placement;
mod whole;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use rayon::prelude::*;
use serde::Serialize;

use crate::features::colour::delta_e;
use crate::features::global_vector::similarity;
use crate::features::keypoints::{Descriptor, MATCH_DISTANCE};
use crate::features::repeat_unit::UnitComparison;
use crate::features::{Dihedral, FeatureSet};
use crate::index::{Indexes, LookupBuffers};
use crate::lang::Lang;
pub use explanation::{Explanation, Finding, Reading, Signal, Transform, orientation_words};
use local::{
    LocalEvidence, NearestKeypoints, QueryDescriptors, QueryKeypoint, TransformBin,
    transform_between, transform_bins,
};
use palette::InkShares;
use whole::{
    HashBackground, above_background, hash_neighbours, hash_signal, is_fine_repeat, whole_score,
};

/// Score at and above which two prints are judged copies. See README "Scores and the copy
/// verdict" and docs/matching.md for how it was chosen.
pub const DEFAULT_COPY_THRESHOLD: f32 = 0.45;
/// The features of every registered print, by sequence number.
pub type RegisteredFeatures = RwLock<HashMap<u64, Arc<FeatureSet>>>;

/// Candidates each whole-print signal proposes, at least.
const CANDIDATES_PER_SIGNAL: usize = 16;
/// Candidates the keypoint index proposes: the prints most query keypoints land near.
const KEYPOINT_CANDIDATES: usize = 24;
/// Registered repeat units whose harmonics come closest to the query's, compared in full; the
/// background of the repeat view is read among them.
const UNIT_SHORTLIST: usize = 32;
/// Candidates the repeat view proposes, at most: those of the shortlist above its background.
const UNIT_CANDIDATES: usize = 8;
/// The repeat view's background is the correlation of the this-many-th best unit of the
/// shortlist (see [`shortlisted_units`]).
const UNIT_BACKGROUND_RANK: usize = 16;
/// The repeat-unit correlation that chance reaches, at least, whatever the registry: a
/// registry of fewer than [`UNIT_BACKGROUND_RANK`] repeats has no background of its own to
/// measure, and prints of one style fold into units that correlate well at some shift. Set
/// above the best correlation any negative of the public and third sets reached with a
/// registered repeat: 0.75, two embossed swirl textures of GIMP's (docs/matching.md, stage 2).
const UNIT_CHANCE: f32 = 0.6;
/// Neighbours looked up per query keypoint.
const KEYPOINT_NEIGHBOURS: usize = 16;
/// Local evidence weight at which the local similarity reaches one half, for a query of
/// [`HALF_WEIGHT_KEYPOINTS`] kinds of keypoint against a reference of as many keypoints (see
/// [`half_weight`]). Raised from 20 with this one and [`MIN_HALF_WEIGHT`] by a fifth when
/// distinctive matches beyond the match distance began to count ([`local`]): evidence grew,
/// and at 20 the public set's negatives judged copies went from 1 to 3 of 153.
const LOCAL_HALF_WEIGHT: f32 = 24.0;
const HALF_WEIGHT_KEYPOINTS: f32 = 128.0;
/// The half weight however few keypoints are compared: a copy verdict then still needs about
/// twelve distinct kinds of matched keypoint, since a print of a few discs or dots agrees with
/// any other such print in a few.
const MIN_HALF_WEIGHT: f32 = 14.4;
/// Local evidence weighs up to this much more where the matched parts show the same colours
/// at both ends, above chance ([`palette::same_colours`]): a copy that kept its inks (a
/// rearrangement, a partial copy, a crop) then outweighs a print that shares shapes by chance.
/// A recolouring gets no more than chance. At 1 the public set's false positives rose from 1
/// to 2 of 153 (docs/matching.md, §3).
const SAME_COLOUR_GAIN: f32 = 0.5;

/// The verifier's answer for one pair of prints.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// In [0, 1], comparable across queries: higher is more similar.
    pub score: f32,
    /// The verdict at the configured operating point.
    pub copy: bool,
    pub explanation: Explanation,
}

/// A query's features with what the verifier derives from them once per query.
pub struct Query<'a> {
    pub features: &'a FeatureSet,
    descriptors: QueryDescriptors<'a>,
    /// The registered prints nearest the query in each hash channel, then those that
    /// distinctive query keypoints land near, most votes first.
    candidates: Vec<u64>,
    /// The weighed votes of the query keypoints that land near each registered print (raised
    /// by same colours only where that could make a candidate); `None` without a registry.
    landings: Option<HashMap<u64, f32>>,
    /// The hash similarities that unrelated registered prints reach for this query; a
    /// whole-print match counts only for how far it rises above them. A textured or dark query
    /// comes close to many prints by chance, and the more prints are registered the closer
    /// its nearest chance neighbour: measured from the registry, the bar rises with it. 0
    /// without a registry of at least [`whole::BACKGROUND_RANK`] prints.
    whole_background: HashBackground,
    /// The local evidence for each keypoint candidate, gathered to weigh the query's keypoints
    /// (see [`verify_to_weigh`]).
    verified: HashMap<u64, LocalEvidence>,
    /// The query's repeat unit, ready to compare; `None` where no repeat shows.
    repeat: Option<UnitComparison>,
    /// The repeat-unit similarity that unrelated registered prints reach for this query (as
    /// `whole_background` for the hashes; see [`shortlisted_units`]).
    unit_background: f32,
    /// The repeat-unit similarity of each shortlisted print, computed once.
    unit_similarities: HashMap<u64, f32>,
}

impl<'a> Query<'a> {
    /// A query compared without a registry: every keypoint counts fully.
    pub fn alone(features: &'a FeatureSet) -> Self {
        Query {
            features,
            descriptors: QueryDescriptors::new(&features.local),
            candidates: Vec::new(),
            landings: None,
            whole_background: HashBackground::default(),
            verified: HashMap::new(),
            repeat: features.repeat_unit.as_ref().map(UnitComparison::new),
            unit_background: UNIT_CHANCE,
            unit_similarities: HashMap::new(),
        }
    }

    /// A query looked up in the registry's hash and keypoint indexes: keypoints common among
    /// registered prints count for less, a whole-print match counts above the query's
    /// background, and the `wanted` nearest prints in each hash channel and the prints most
    /// keypoints land near, in groups that agree on a transform, become candidates. A query
    /// that is itself registered (`itself`) does not count its own keypoints as common, nor
    /// itself as background.
    pub fn in_registry(
        features: &'a FeatureSet,
        indexes: &Indexes,
        registered: &RegisteredFeatures,
        itself: Option<u64>,
        wanted: usize,
    ) -> Self {
        let mut descriptors = QueryDescriptors::new(&features.local);
        let lookups: Vec<&Descriptor> = descriptors
            .given
            .iter()
            .chain(&descriptors.mirrored)
            .collect();
        let landings: Vec<Vec<(u64, usize)>> = lookups
            .par_iter()
            .map_init(LookupBuffers::default, |buffers, descriptor| {
                let mut near = indexes.keypoints.keypoints_near(
                    descriptor,
                    KEYPOINT_NEIGHBOURS,
                    MATCH_DISTANCE,
                    buffers,
                );
                near.retain(|(seq, _)| Some(*seq) != itself);
                near
            })
            .collect();
        // How common each query keypoint is: the prints it lands near.
        let mut landed: Vec<BTreeSet<u64>> = landings
            .iter()
            .map(|near| near.iter().map(|(seq, _)| *seq).collect())
            .collect();
        let n = descriptors.given.len();
        // Each landing with the transform it implies, by print.
        let mut by_print: HashMap<u64, Vec<Landing>> = HashMap::new();
        let votes: HashMap<u64, f32> = {
            let registered = registered.read().expect("registered features lock");
            for (i, near) in landings.iter().enumerate() {
                let (index, mirrored) = (i % n, i >= n);
                let query_keypoint = &features.local.keypoints[index];
                for (seq, keypoint) in near {
                    let Some(registered_keypoint) = registered
                        .get(seq)
                        .and_then(|reference| reference.local.keypoints.get(*keypoint))
                    else {
                        continue;
                    };
                    let (rotation, log2_scale) = transform_between(
                        query_keypoint,
                        mirrored,
                        features.local.width,
                        registered_keypoint,
                    );
                    by_print.entry(*seq).or_default().push(Landing {
                        kind: descriptors.kind_of(index),
                        vote: 1.0 / (landed[i].len() as f32).sqrt(),
                        bins: transform_bins(mirrored, rotation, log2_scale),
                        query: QueryKeypoint { index, mirrored },
                        reference: *keypoint,
                    });
                }
            }
            let plain: Vec<(u64, f32, Vec<Landing>)> = by_print
                .into_iter()
                .map(|(seq, landings)| (seq, print_vote(&landings), landings))
                .collect();
            // Colours can at most multiply a vote by 1 + the gain: a print whose vote stays
            // below the last candidate's even so is not worth reading them for.
            let mut plain_votes: Vec<f32> = plain.iter().map(|(_, vote, _)| *vote).collect();
            let last_candidate = if plain_votes.len() > KEYPOINT_CANDIDATES {
                *plain_votes
                    .select_nth_unstable_by(KEYPOINT_CANDIDATES - 1, |a, b| b.total_cmp(a))
                    .1
            } else {
                0.0
            };
            plain
                .into_iter()
                .filter_map(|(seq, vote, landings)| {
                    let reference = registered.get(&seq)?;
                    if vote * (1.0 + VOTE_SAME_COLOUR_GAIN) < last_candidate {
                        return Some((seq, vote));
                    }
                    let pairs = landings.iter().map(|l| (l.query, l.reference));
                    let samples = palette::sample_counts(features, reference, pairs);
                    let same_colours = palette::same_colours(features, reference, &samples);
                    Some((seq, vote * (1.0 + VOTE_SAME_COLOUR_GAIN * same_colours)))
                })
                .collect()
        };
        let mut ranked: Vec<(u64, f32)> = votes.iter().map(|(s, n)| (*s, *n)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(KEYPOINT_CANDIDATES);
        let mirrored = landed.split_off(n);
        descriptors.weigh([landed, mirrored]);
        let verified = verify_to_weigh(&mut descriptors, &ranked, registered);
        let neighbours = hash_neighbours(features, indexes, wanted);
        let repeat = features.repeat_unit.as_ref().map(UnitComparison::new);
        let (units, unit_background) = match &repeat {
            Some(repeat) => shortlisted_units(repeat, indexes, registered, itself),
            None => (Vec::new(), UNIT_CHANCE),
        };
        let candidates = neighbours
            .iter()
            .flat_map(|hits| hits.iter().take(wanted).map(|hit| hit.seq))
            .chain(ranked.into_iter().map(|(seq, _)| seq))
            .chain(
                units
                    .iter()
                    .take_while(|(_, similarity)| *similarity > unit_background)
                    .take(UNIT_CANDIDATES)
                    .map(|(seq, _)| *seq),
            )
            .collect();
        Query {
            features,
            descriptors,
            candidates,
            landings: Some(votes),
            whole_background: HashBackground::of(&neighbours, itself),
            verified,
            repeat,
            unit_background,
            unit_similarities: units.into_iter().collect(),
        }
    }
}

/// The registered repeat units whose harmonics come closest to the query's, compared in full
/// (most similar first), and the background of the repeat view: the [`UNIT_BACKGROUND_RANK`]-th
/// best correlation among them whatever their lattices' shapes, at least [`UNIT_CHANCE`]. A
/// unit of a few motifs on a plain ground correlates with many such units at some shift; the
/// shortlist, nearest in harmonics, shows how far.
fn shortlisted_units(
    repeat: &UnitComparison,
    indexes: &Indexes,
    registered: &RegisteredFeatures,
    itself: Option<u64>,
) -> (Vec<(u64, f32)>, f32) {
    let shortlist = indexes
        .units
        .nearest(repeat.harmonics(), UNIT_SHORTLIST + 1);
    let references: Vec<(u64, Arc<FeatureSet>)> = {
        let registered = registered.read().expect("registered features lock");
        shortlist
            .iter()
            .filter(|(seq, _)| Some(*seq) != itself)
            .filter_map(|(seq, _)| Some((*seq, registered.get(seq)?.clone())))
            .collect()
    };
    let mut units = Vec::new();
    let mut correlations = Vec::new();
    for (seq, reference) in &references {
        let Some(unit) = &reference.repeat_unit else {
            continue;
        };
        // One full comparison serves both: the similarity is the correlation where the
        // lattices' shapes agree.
        let correlation = repeat.correlation(unit);
        let similarity = if repeat.same_shape(unit) {
            correlation
        } else {
            0.0
        };
        units.push((*seq, similarity));
        correlations.push(correlation);
    }
    units.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    correlations.sort_by(|a, b| b.total_cmp(a));
    let background = correlations
        .get(UNIT_BACKGROUND_RANK - 1)
        .map_or(UNIT_CHANCE, |c| c.max(UNIT_CHANCE));
    (units, background)
}

/// Verifies the query against the prints its keypoints voted for most (`voted`), counts the
/// prints the verifier matched each keypoint to among those it lands near, and weighs the
/// keypoints again. The index is approximate: searching 21 public queries in a 20,000-print
/// haystack, a fifth of the matches the verifier grouped were on prints the index had not
/// found for that keypoint, and a keypoint it finds near no print counted fully, as if rare,
/// where the verifier showed it was not. The verified prints are also each keypoint's rivals,
/// against which a match beyond the match distance must prove distinctive, so their evidence
/// is gathered again once they are known. Returns each print's evidence at the new weights.
fn verify_to_weigh(
    descriptors: &mut QueryDescriptors,
    voted: &[(u64, f32)],
    registered: &RegisteredFeatures,
) -> HashMap<u64, LocalEvidence> {
    let references: Vec<(u64, Arc<FeatureSet>)> = {
        let registered = registered.read().expect("registered features lock");
        voted
            .iter()
            .filter_map(|(seq, _)| Some((*seq, registered.get(seq)?.clone())))
            .collect()
    };
    let nearest: Vec<(u64, &FeatureSet, NearestKeypoints)> = references
        .par_iter()
        .map(|(seq, reference)| {
            let nearest = local::nearest_keypoints(descriptors, &reference.local);
            (*seq, &**reference, nearest)
        })
        .collect();
    let evidence_of_all = |descriptors: &QueryDescriptors| -> Vec<(u64, LocalEvidence)> {
        nearest
            .iter()
            .map(|(seq, reference, nearest)| {
                let evidence = local::evidence(descriptors, &reference.local, Some(*seq), nearest);
                (*seq, evidence)
            })
            .collect()
    };
    let within_match_distance = evidence_of_all(descriptors);
    descriptors.add_verified(&within_match_distance);
    descriptors.set_rivals(nearest.iter().map(|(seq, _, nearest)| (*seq, nearest)));
    let mut verified = evidence_of_all(descriptors);
    descriptors.add_verified(&verified);
    for (seq, evidence) in &mut verified {
        evidence.weight = descriptors.evidence_weight(&evidence.matched, Some(*seq));
    }
    verified.into_iter().collect()
}

/// A query keypoint landing near a keypoint of a registered print.
struct Landing {
    /// The kind of query keypoint (repeats of one motif are one kind).
    kind: usize,
    /// 1/√n for a keypoint that lands near n prints: common keypoints count for little; not
    /// 1/n, since in a large registry a copy's keypoints too land near a few chance prints each.
    vote: f32,
    /// The transform from the query keypoint to the registered one.
    bins: [TransformBin; 4],
    /// The query keypoint, and the registered print's keypoint it landed near.
    query: QueryKeypoint,
    reference: usize,
}

/// How far a landing that agrees on its transform with no landing of another kind counts:
/// a copy's keypoints land on its original in groups that share a transform (one per motif
/// when motifs were rearranged), while chance landings, one rare keypoint here and there,
/// scatter. Public set in a 20,000-print haystack, recall@1 for 1 (all count alike), 0.5,
/// 0.25, 0: 0.882, 0.884, 0.886, 0.883 (10,000 prints: 0.884 → 0.886 at 0.25); without a
/// haystack and on the third set unchanged.
const LONE_LANDING: f32 = 0.25;

/// A print's vote grows by up to this multiple of itself where the inks around its landings
/// are the same colours at both ends, above chance (as [`SAME_COLOUR_GAIN`] weighs the
/// verifier's evidence): in a large registry a rearranged or partial copy's original gets few
/// landings, and prints that share shapes but not colours crowd it out of the candidates.
/// Public set in the 10,000-print haystack, recall@10 for 0, 0.5, 2 and 4: 0.930, 0.931,
/// 0.937, 0.938.
const VOTE_SAME_COLOUR_GAIN: f32 = 2.0;

/// A print's vote to become a candidate: each kind of query keypoint votes once (its best
/// landing), so a motif the query repeats counts once, as in the verifier; the sum over kinds.
fn print_vote(landings: &[Landing]) -> f32 {
    // Per bin, the one kind that landed in it, or None once several have.
    let mut kinds_in: HashMap<TransformBin, Option<usize>> = HashMap::new();
    for landing in landings {
        for bin in landing.bins {
            let kinds = kinds_in.entry(bin).or_insert(Some(landing.kind));
            if *kinds != Some(landing.kind) {
                *kinds = None;
            }
        }
    }
    let mut by_kind: HashMap<usize, f32> = HashMap::new();
    for landing in landings {
        let agrees = landing.bins.iter().any(|bin| kinds_in[bin].is_none());
        let vote = landing.vote * if agrees { 1.0 } else { LONE_LANDING };
        let best = by_kind.entry(landing.kind).or_insert(0.0);
        *best = best.max(vote);
    }
    by_kind.values().sum()
}

/// Scores how likely `reference` is a registered original of which `query` is a copy.
///
/// Two views, each a score in [0, 1], combined as independent evidence (see [`combine`]):
/// - the whole print: the mean of two hash similarities (lightness alone is fooled by new
///   colourways and edges alone by dense textures, but unrelated prints rarely come close in
///   both at once), squashed below the threshold by [`whole_score`];
/// - its parts: local matches that agree on a transform, w / (w + h) for their weight w (see
///   [`local`]), the half weight h growing with what was compared (see [`half_weight`]).
///
/// Beside them, where both prints repeat, their repeat units (see [`repeat_view`]): the score is
/// the better of the two views together and the repeat.
pub fn compare(
    query: &Query,
    reference: &FeatureSet,
    reference_seq: Option<u64>,
    copy_threshold: f32,
) -> Comparison {
    // A keypoint candidate's evidence was gathered with the query: the same, at no cost.
    let evidence = match reference_seq.and_then(|seq| query.verified.get(&seq)) {
        Some(evidence) => evidence.clone(),
        None => local::verify(&query.descriptors, &reference.local, reference_seq),
    };
    let units = unit_correlation(query, reference, reference_seq);
    let whole = WholeView::of(query, reference, units, copy_threshold);
    score_pair(query, reference, units, whole, evidence, copy_threshold)
}

/// The two views' scores as one, 1 − (1 − a)(1 − b): read as the chances that each view is
/// right to call the pair a copy, independently, the chance that at least one is. A recolouring
/// or a photo often leaves the whole print clearly above chance and some of its parts
/// matching, each short of the bar alone: the stronger view alone would miss it. Unrelated
/// prints seldom reach either (the whole print counts only above this query's chance level),
/// so their scores hardly move.
fn combine(whole: f32, parts: f32) -> f32 {
    1.0 - (1.0 - whole) * (1.0 - parts)
}

/// The whole-print view of a pair: both hash signals and what they say together.
struct WholeView {
    lightness: Signal,
    structure: Signal,
    /// How far the hashes rise above what unrelated prints reach for this query, in [0, 1].
    similarity: f32,
    /// What `similarity` was read from: the mean of both hashes, or the structure hash alone.
    finding: Finding,
    /// `similarity` as a score: squashed below the threshold by [`whole_score`].
    score: f32,
    /// The query orientation at which the stronger hash signal matches.
    orientation: Dihedral,
}

impl WholeView {
    /// `units`: the pair's repeat-unit correlation ([`unit_correlation`]).
    fn of(
        query: &Query,
        reference: &FeatureSet,
        units: Option<f32>,
        copy_threshold: f32,
    ) -> WholeView {
        // A fine repeat's hashes see little but its lattice: they count only beside a print
        // that folds into the same unit.
        let fine = (
            is_fine_repeat(query.features.repeat_unit.as_ref()),
            is_fine_repeat(reference.repeat_unit.as_ref()),
        );
        let lattice_only = match units {
            // Other fine repeats of a lattice: their units correlate no better than chance.
            Some(correlation) => fine.0 && fine.1 && correlation <= query.unit_background,
            // A fine repeat beside a print that shows none, such as stripes of its period.
            None => fine.0 || fine.1,
        };
        let (lightness, lightness_turn) = hash_signal(
            "lightness_hash",
            query.features.lightness_hash.as_ref(),
            reference.lightness_hash.as_ref(),
            lattice_only,
        );
        let (structure, structure_turn) = hash_signal(
            "structure_hash",
            query.features.structure_hash.as_ref(),
            reference.structure_hash.as_ref(),
            lattice_only,
        );
        let raw = (lightness.similarity + structure.similarity) / 2.0;
        let both = above_background(raw, query.whole_background.mean());
        // The structure channel is the colour-robust one (§1 of docs/matching.md): a new
        // colourway changes the lightness layout, not where one ink meets another, so the
        // structure hash may carry the whole print alone, measured against its own background.
        let alone = above_background(structure.similarity, query.whole_background.structure);
        let structure_alone = alone > both;
        let orientation = if structure_alone || structure.similarity >= lightness.similarity {
            structure_turn
        } else {
            lightness_turn
        };
        let finding = if structure_alone {
            Finding::StructureAboveBackground {
                similarity: structure.similarity,
                background: query.whole_background.structure,
            }
        } else {
            Finding::AboveBackground {
                mean: raw,
                background: query.whole_background.mean(),
            }
        };
        let similarity = both.max(alone);
        WholeView {
            lightness,
            structure,
            similarity,
            finding,
            score: whole_score(similarity, copy_threshold),
            orientation,
        }
    }
}

/// The repeat view of a pair: how far their repeat units' correlation rises above what
/// unrelated prints reach, as a signal, and as a score squashed like the whole print's. It
/// stands alone rather than joining the other two views (see [`score_pair`]): prints of one
/// style (two embossed swirl textures) fold into units that correlate at 0.6 and share some
/// local features, and the views together would call them copies.
fn repeat_view(query: &Query, units: Option<f32>, copy_threshold: f32) -> (Signal, f32) {
    let Some(correlation) = units else {
        return (
            Signal::new("repeat_unit", 0.0, false, Finding::NoRepeat),
            0.0,
        );
    };
    let background = query.unit_background;
    let above = above_background(correlation, background);
    let finding = Finding::RepeatUnit {
        correlation,
        background,
    };
    let signal = Signal::new("repeat_unit", above, above >= copy_threshold, finding);
    (signal, whole_score(above, copy_threshold))
}

/// The best correlation of the two prints' repeat units, `None` where either shows no repeat
/// (a shortlisted print's was computed with the query). Computed once a pair: both the whole
/// view and the repeat view read it.
fn unit_correlation(
    query: &Query,
    reference: &FeatureSet,
    reference_seq: Option<u64>,
) -> Option<f32> {
    let (Some(repeat), Some(unit)) = (&query.repeat, &reference.repeat_unit) else {
        return None;
    };
    Some(
        reference_seq
            .and_then(|seq| query.unit_similarities.get(&seq).copied())
            .unwrap_or_else(|| repeat.similarity(unit)),
    )
}

/// [`compare`], with both views' inputs already gathered.
fn score_pair(
    query: &Query,
    reference: &FeatureSet,
    units: Option<f32>,
    whole: WholeView,
    mut evidence: LocalEvidence,
    copy_threshold: f32,
) -> Comparison {
    let WholeView {
        lightness,
        structure,
        similarity: whole,
        finding: whole_finding,
        score: whole_part,
        orientation,
    } = whole;
    let (repeat, repeat_part) = repeat_view(query, units, copy_threshold);
    let query_kinds = query.descriptors.kind_count();
    let reference_keypoints = reference.local.registered_descriptors().len();
    let half = half_weight(query_kinds, reference_keypoints);
    let samples = palette::sample_counts(query.features, reference, evidence.matched_pairs());
    let same_colours = palette::same_colours(query.features, reference, &samples);
    evidence.weight *= 1.0 + SAME_COLOUR_GAIN * same_colours;
    let parts = evidence.weight / (evidence.weight + half);
    let together = combine(whole_part, parts);
    let score = together.max(repeat_part);
    let copy = score >= copy_threshold;
    let lead = if repeat_part > together {
        Lead::Repeat
    } else if whole_part.max(parts) < copy_threshold {
        Lead::Together
    } else if whole_part >= parts {
        Lead::WholePrint
    } else {
        Lead::Parts
    };
    // Only a copy found by its parts in several groups needs telling a crop from a
    // rearrangement, and the ink maps' placement search is the costly part of a summary.
    let carrying = match lead {
        Lead::Parts if copy && evidence.groups.len() > 1 => {
            placement::carrying_group(query.features, reference, &evidence)
        }
        _ => None,
    };
    let reading = reading(
        copy,
        lead,
        orientation,
        &evidence,
        carrying,
        &repeat.finding,
    );
    let whole_signal = Signal::new("whole_print", whole, whole >= copy_threshold, whole_finding);
    let local_signal = Signal::new(
        "local_features",
        parts,
        parts >= copy_threshold,
        Finding::LocalMatches {
            consistent: evidence.consistent_matches,
            by_descriptor: evidence.descriptor_matches,
            groups: evidence.groups.len(),
            weight: evidence.weight,
            same_colours,
            half_weight: half,
            query_kinds,
            reference_keypoints,
        },
    );
    let vector = Signal::new(
        "global_vector",
        similarity(&query.features.global_vector, &reference.global_vector),
        false,
        Finding::CandidatesOnly,
    );
    let palette = palette::ink_pairs(query.features, reference, &samples);
    let colour_difference = delta_e(query.features.mean_colour, reference.mean_colour);
    let colour = Signal::new(
        "mean_colour",
        (1.0 - colour_difference / 100.0).max(0.0),
        false,
        Finding::ColourDifference {
            delta_e: colour_difference,
        },
    );
    Comparison {
        score,
        copy,
        explanation: Explanation {
            summary: reading.sentence(Lang::En),
            reading,
            orientation,
            signals: vec![
                whole_signal,
                local_signal,
                repeat,
                lightness,
                structure,
                vector,
                colour,
            ],
            local: evidence,
            palette,
        },
    }
}

/// The local evidence weight at which the local similarity reaches one half. Evidence is
/// summed over kinds of query keypoint (repeats of one motif count once); chance agreement
/// grows with the pairs of kinds and reference keypoints compared, its spread with their
/// square root: a dense texture with every keypoint slot filled meets more of it than a print
/// of a few repeated motifs, and must show more to count as a copy.
fn half_weight(query_kinds: usize, reference_keypoints: usize) -> f32 {
    let pairs = (query_kinds * reference_keypoints).max(1) as f32;
    (LOCAL_HALF_WEIGHT * pairs.sqrt() / HALF_WEIGHT_KEYPOINTS).max(MIN_HALF_WEIGHT)
}

/// Which view makes a copy.
enum Lead {
    WholePrint,
    Parts,
    /// Neither alone reaches the copy threshold; both together do.
    Together,
    /// The repeat units, scored above the other two views together.
    Repeat,
}

/// What makes the pair a copy, for the summary. `carrying`: of several groups of local
/// matches, the one whose transform carries the whole design, where they are the design moved
/// as one (see [`placement`]); `repeat`: what the repeat units showed.
fn reading(
    copy: bool,
    lead: Lead,
    orientation: Dihedral,
    evidence: &LocalEvidence,
    carrying: Option<usize>,
    repeat: &Finding,
) -> Reading {
    if !copy {
        return Reading::NotFound;
    }
    match lead {
        Lead::WholePrint => Reading::WholePrint { orientation },
        Lead::Together => Reading::Together {
            orientation,
            local_matches: evidence.consistent_matches,
        },
        Lead::Parts => Reading::of_parts(evidence, carrying),
        Lead::Repeat => match *repeat {
            Finding::RepeatUnit { correlation, .. } => Reading::SameRepeat { correlation },
            _ => Reading::NotFound,
        },
    }
}

/// The registered prints closest in mean colour. For a query without coarse structure (a plain
/// ground, a texture finer than the hashes see) colour is all that is left to go on, and the
/// graph search cannot find neighbours of an all-zero global vector.
fn nearest_in_colour(
    features: &FeatureSet,
    registered: &HashMap<u64, Arc<FeatureSet>>,
    k: usize,
) -> Vec<u64> {
    let mut by_colour: Vec<(f32, u64)> = registered
        .iter()
        .map(|(seq, f)| (delta_e(features.mean_colour, f.mean_colour), *seq))
        .collect();
    let k = k.min(by_colour.len());
    if k == 0 {
        return Vec::new();
    }
    by_colour.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    by_colour[..k].iter().map(|(_, seq)| *seq).collect()
}

/// Orders each run of equal scores that begins among the first `k` (prints that no evidence
/// tells apart, most often all at 0 for a plain query) by how far their inks lie from the
/// query's ([`InkShares::difference`]), computed for those prints alone: a search's many
/// candidates at 0 further down are not shown.
fn order_ties_by_inks(
    ranked: &mut [(u64, Comparison)],
    k: usize,
    query: &FeatureSet,
    candidates: &[(u64, Arc<FeatureSet>)],
) {
    // Where the run begins; the query's inks, read at the first tie.
    let mut position = 0;
    let mut query_inks = None;
    for run in ranked.chunk_by_mut(|a, b| a.1.score == b.1.score) {
        if position >= k {
            break;
        }
        position += run.len();
        if run.len() < 2 {
            continue;
        }
        let query_inks = query_inks.get_or_insert_with(|| InkShares::of(query));
        let inks: HashMap<u64, f32> = run
            .iter()
            .filter_map(|(seq, _)| {
                let (_, reference) = candidates.iter().find(|(s, _)| s == seq)?;
                Some((*seq, query_inks.difference(&InkShares::of(reference))))
            })
            .collect();
        let ink_difference = |seq: &u64| inks.get(seq).copied().unwrap_or(f32::MAX);
        run.sort_by(|a, b| {
            ink_difference(&a.0)
                .total_cmp(&ink_difference(&b.0))
                .then(a.0.cmp(&b.0))
        });
    }
}

/// What a caller of [`rank`] asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Wanted {
    /// The best `k` prints, copies or not: a search.
    Best(usize),
    /// Those of the best `k` that reach the copy bar: a registration's duplicate check.
    Copies(usize),
}

/// In a duplicate check, the local verification is skipped for a candidate whose keypoint
/// vote is below this share of its half weight, unless its whole print comes close enough for
/// such a candidate's evidence to make it a copy (below): local evidence alone must reach
/// 0.82 half weights at the default threshold. Measured on 600 haystack prints registered
/// into 10,000 and on the public set's 1,053 queries registered after its references: where
/// the verifier's evidence reached half a half weight it was at most 5 times the vote (at most
/// 2 times for the 640 local copies, whose votes were all above 0.4 half weights), while 71%
/// and 85% of the candidates it verified voted below this share. The keypoint candidates are
/// verified whatever their vote, since their evidence weighs the query's keypoints
/// ([`verify_to_weigh`]).
const COPY_VOTE_SHARE: f32 = 0.1;

/// The local score that a candidate whose vote is below [`COPY_VOTE_SHARE`] stays under: its
/// evidence below half a half weight (measured with the share, above), w / (w + h) < 1/3.
const LOW_VOTE_MOST_PARTS: f32 = 1.0 / 3.0;

/// The best registered prints for a query among those `eligible` admits, best first, as
/// (sequence number, comparison): the `k` best, or those of them that are copies (then a
/// candidate whose keypoint vote is too low for a copy is scored without its local evidence).
/// `itself` is the query's own sequence number when it is a registered print.
///
/// `registered` is locked only for short reads, never while rayon runs: a rayon thread waiting
/// on nested work may pick up another job that needs the write lock.
pub fn rank(
    features: &FeatureSet,
    indexes: &Indexes,
    registered: &RegisteredFeatures,
    eligible: impl Fn(u64) -> bool,
    itself: Option<u64>,
    asked: Wanted,
    copy_threshold: f32,
) -> Vec<(u64, Comparison)> {
    let k = match asked {
        Wanted::Best(k) | Wanted::Copies(k) => k,
    };
    let wanted = k.max(CANDIDATES_PER_SIGNAL);
    let query = Query::in_registry(features, indexes, registered, itself, wanted);
    let mut candidates = BTreeSet::new();
    candidates.extend(
        indexes
            .vectors
            .nearest(&features.global_vector, wanted)
            .into_iter()
            .map(|hit| hit.id),
    );
    candidates.extend(query.candidates.iter().copied());
    let candidates: Vec<(u64, Arc<FeatureSet>)> = {
        let registered = registered.read().expect("registered features lock");
        if features.structure_hash.is_none() && features.lightness_hash.is_none() {
            candidates.extend(nearest_in_colour(features, &registered, wanted));
        }
        candidates
            .into_iter()
            .filter(|seq| eligible(*seq) && Some(*seq) != itself)
            .filter_map(|seq| Some((seq, registered.get(&seq)?.clone())))
            .collect()
    };
    let mut ranked: Vec<(u64, Comparison)> = candidates
        .par_iter()
        .map(|(seq, reference)| {
            // No query keypoint landing near a print in the index means the verifier would
            // find (almost) no local evidence there: skip the costly check. A duplicate check
            // also skips it where the vote is too low for a copy. The keypoint candidates were
            // verified already.
            let vote = query.landings.as_ref().map(|l| l.get(seq).copied());
            let units = unit_correlation(&query, reference, Some(*seq));
            let whole = WholeView::of(&query, reference, units, copy_threshold);
            let verify = match (vote, asked) {
                (None, _) => true,
                (Some(vote), Wanted::Best(_)) => vote.is_some(),
                (Some(vote), Wanted::Copies(_)) => vote.is_some_and(|vote| {
                    let half = half_weight(
                        query.descriptors.kind_count(),
                        reference.local.registered_descriptors().len(),
                    );
                    vote >= COPY_VOTE_SHARE * half
                        || combine(whole.score, LOW_VOTE_MOST_PARTS) >= copy_threshold
                }),
            };
            let evidence = match query.verified.get(seq) {
                Some(evidence) => evidence.clone(),
                None if verify => local::verify(&query.descriptors, &reference.local, Some(*seq)),
                None => LocalEvidence::default(),
            };
            (
                *seq,
                score_pair(&query, reference, units, whole, evidence, copy_threshold),
            )
        })
        .collect();
    ranked.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then(a.0.cmp(&b.0)));
    if let Wanted::Copies(_) = asked {
        ranked.retain(|(_, comparison)| comparison.copy);
    }
    order_ties_by_inks(&mut ranked, k, features, &candidates);
    ranked.truncate(k);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::global_vector::DIMENSIONS;
    use crate::features::keypoints::{DESCRIPTOR_LEN, Keypoint, LocalFeatures, PackedDescriptor};
    use crate::features::{DihedralHashes, Hash256};
    use crate::index::{KeypointIndex, VECTOR_SHAPE, VectorIndex};

    /// A descriptor of its own kind (fewer than 64): two full bins of its own, 256 from every
    /// other kind's.
    fn descriptor_of_kind(kind: usize) -> PackedDescriptor {
        let mut descriptor = [0u8; DESCRIPTOR_LEN];
        descriptor[2 * kind] = 128;
        descriptor[2 * kind + 1] = 128;
        PackedDescriptor::pack(&descriptor)
    }

    fn print_of_kinds(kinds: &[usize]) -> Arc<FeatureSet> {
        print_of_turned_kinds(&kinds.iter().map(|&k| (k, 0.0)).collect::<Vec<_>>())
    }

    /// A print with a keypoint of each kind, turned by the angle given (radians).
    fn print_of_turned_kinds(kinds: &[(usize, f32)]) -> Arc<FeatureSet> {
        let mut features = FeatureSet::default();
        features.local.keypoints = kinds
            .iter()
            .map(|&(_, angle)| Keypoint::new(0, 0, 0, 1, angle))
            .collect();
        features.local.descriptors = kinds.iter().map(|&(k, _)| descriptor_of_kind(k)).collect();
        Arc::new(features)
    }

    /// The indexes and features of a registry holding `registered`.
    fn registry_of(registered: Vec<(u64, Arc<FeatureSet>)>) -> (Indexes, RegisteredFeatures) {
        let keypoints = KeypointIndex::default();
        keypoints.insert_many(&registered);
        let indexes = Indexes::new(
            VectorIndex::new(DIMENSIONS, registered.len(), VECTOR_SHAPE),
            keypoints,
            registered.par_iter().map(|(seq, f)| (seq, f)),
        );
        (indexes, RwLock::new(registered.into_iter().collect()))
    }

    /// The candidates the keypoint index proposes for `query` among `registered`.
    fn keypoint_candidates(
        registered: Vec<(u64, Arc<FeatureSet>)>,
        query: &FeatureSet,
    ) -> Vec<u64> {
        let (indexes, registered) = registry_of(registered);
        Query::in_registry(query, &indexes, &registered, None, CANDIDATES_PER_SIGNAL).candidates
    }

    #[test]
    fn repeats_of_one_motif_vote_once_for_candidates() {
        // 24 registered prints each share one kind of keypoint with the query, which repeats
        // it five times (one motif printed five times); print 100 shares three kinds, once
        // each. Counted per keypoint, each of the 24 would outvote print 100 and push it out
        // of the candidates.
        let registered: Vec<(u64, Arc<FeatureSet>)> = (0..24)
            .map(|p| (p as u64, print_of_kinds(&[p])))
            .chain([(100, print_of_kinds(&[30, 31, 32]))])
            .collect();
        let query_kinds: Vec<usize> = (0..24).flat_map(|k| [k; 5]).chain([30, 31, 32]).collect();
        let candidates = keypoint_candidates(registered, &print_of_kinds(&query_kinds));
        assert_eq!(candidates.len(), KEYPOINT_CANDIDATES);
        assert_eq!(candidates[0], 100);
    }

    #[test]
    fn keypoints_that_agree_on_a_turn_outvote_more_that_scatter() {
        // Print 100 holds three of the query's kinds of keypoint, all turned alike: a copy.
        // Print 200 holds those three and two more, each turned its own way (75° apart), as
        // chance landings are. Counted alone, 200 would have the more votes.
        let registered = vec![
            (100, print_of_turned_kinds(&[(0, 1.0), (1, 1.0), (2, 1.0)])),
            (
                200,
                print_of_turned_kinds(&[(0, 0.0), (1, 1.3), (2, 2.6), (3, 3.9), (4, 5.2)]),
            ),
        ];
        let candidates = keypoint_candidates(registered, &print_of_kinds(&[0, 1, 2, 3, 4]));
        assert_eq!(candidates, [100, 200]);
    }

    #[test]
    fn keypoints_count_every_print_the_verifier_matches_them_to() {
        // The index found the query's first keypoint near print 1 only and the others near
        // no print, as if rare; the verifier matches the first three in prints 1 and 2, and
        // the fourth in print 1 alone.
        let query = print_of_kinds(&[0, 1, 2, 3]);
        let mut descriptors = QueryDescriptors::new(&query.local);
        let found_by_index = |kind: usize| -> BTreeSet<u64> {
            if kind == 0 {
                [1].into()
            } else {
                BTreeSet::new()
            }
        };
        let mirrored = vec![BTreeSet::new(); 4];
        descriptors.weigh([(0..4).map(found_by_index).collect(), mirrored]);
        let verified: Vec<(u64, LocalEvidence)> = [
            (1, print_of_kinds(&[0, 1, 2, 3])),
            (2, print_of_kinds(&[0, 1, 2])),
        ]
        .into_iter()
        .map(|(seq, reference)| {
            (
                seq,
                local::verify(&descriptors, &reference.local, Some(seq)),
            )
        })
        .collect();
        assert_eq!(verified[0].1.weight, 4.0);
        assert_eq!(verified[1].1.weight, 3.0);
        descriptors.add_verified(&verified);
        let weights: Vec<f32> = verified
            .iter()
            .map(|(seq, evidence)| descriptors.evidence_weight(&evidence.matched, Some(*seq)))
            .collect();
        assert_eq!(weights, [0.5 * 3.0 + 1.0, 0.5 * 3.0]);
    }

    /// Local features with a keypoint of its own kind at each place and angle given.
    fn placed_kinds(points: &[(u16, u16, f32)]) -> LocalFeatures {
        let mut local = print_of_kinds(&(0..points.len()).collect::<Vec<_>>())
            .local
            .clone();
        local.keypoints = points
            .iter()
            .map(|&(x, y, angle)| Keypoint::new(x, y, 0, 1, angle))
            .collect();
        (local.width, local.height) = (384, 384);
        local
    }

    #[test]
    fn two_matches_of_a_motif_moved_as_a_whole_make_a_group_and_two_scattered_do_not() {
        let turn = std::f32::consts::FRAC_PI_2;
        let query = placed_kinds(&[(100, 100, 0.0), (140, 100, 0.0)]);
        let query = QueryDescriptors::new(&query);
        // Turned a quarter clockwise (y points down) and moved: the second keypoint now lies
        // below the first.
        let moved = placed_kinds(&[(200, 50, turn), (200, 90, turn)]);
        let evidence = local::verify(&query, &moved, None);
        assert_eq!(evidence.groups.len(), 1);
        assert_eq!(evidence.groups[0].matches, 2);
        assert_eq!(evidence.groups[0].rotation_degrees, 90.0);
        assert_eq!(evidence.weight, 2.0);

        let scattered = placed_kinds(&[(200, 50, turn), (260, 50, turn)]);
        let evidence = local::verify(&query, &scattered, None);
        assert_eq!(evidence.descriptor_matches, 2);
        assert!(evidence.groups.is_empty());
        assert_eq!(evidence.weight, 0.0);
    }

    #[test]
    fn a_keypoint_common_to_several_prints_weighs_more_for_the_one_it_matches_best() {
        // Four prints hold the query's four kinds: print 1 as they are, prints 2-4 a little
        // changed, 146 away (within the match distance). Each keypoint lands near all four;
        // print 1 is the nearest by Lowe's ratio.
        let changed = |kind: usize| {
            let mut descriptor = descriptor_of_kind(kind).unpack();
            descriptor[120..122].copy_from_slice(&[103, 103]);
            PackedDescriptor::pack(&descriptor)
        };
        let mut near_miss = (*print_of_kinds(&[0; 4])).clone();
        near_miss.local.descriptors = (0..4).map(changed).collect();
        let near_miss = Arc::new(near_miss);
        let query = print_of_kinds(&[0, 1, 2, 3]);
        let (indexes, registered) = registry_of(vec![
            (1, print_of_kinds(&[0, 1, 2, 3])),
            (2, near_miss.clone()),
            (3, near_miss.clone()),
            (4, near_miss),
        ]);
        let query = Query::in_registry(&query, &indexes, &registered, None, 16);
        assert_eq!(query.verified[&1].weight, 4.0 / 4f32.sqrt());
        assert_eq!(query.verified[&2].weight, 4.0 / 4.0);
    }

    #[test]
    fn a_match_beyond_the_match_distance_counts_where_no_other_print_comes_near() {
        // Print 1 holds the query's kinds 20-22 as they are and kinds 0-9 blurred, 221 away
        // (beyond the match distance, within the band). Print 2 holds kinds 0-4 as they are:
        // there the blurred matches are not distinctive. Kinds 5-9 are.
        let blurred = |kind: usize| {
            let mut descriptor = descriptor_of_kind(kind).unpack();
            descriptor[120..124].copy_from_slice(&[128, 115, 103, 92]);
            PackedDescriptor::pack(&descriptor)
        };
        let mut print_1 = (*print_of_kinds(&[0; 13])).clone();
        print_1.local.descriptors = (0..10)
            .map(blurred)
            .chain((20..23).map(descriptor_of_kind))
            .collect();
        let print_1 = Arc::new(print_1);
        let query = print_of_kinds(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 20, 21, 22]);
        let (indexes, registered) = registry_of(vec![
            (1, print_1.clone()),
            (2, print_of_kinds(&[0, 1, 2, 3, 4, 40, 41, 42, 43, 44])),
        ]);
        let query_in_registry = Query::in_registry(&query, &indexes, &registered, None, 16);
        assert_eq!(query_in_registry.verified[&1].weight, 3.0 + 5.0);
        let alone = compare(&Query::alone(&query), &print_1, None, 0.45);
        assert_eq!(alone.explanation.local.weight, 3.0);
    }

    #[test]
    fn a_duplicate_check_finds_the_copies_a_search_finds() {
        // Print 100 holds 40 of the query's kinds of keypoint, all turned alike: a copy by its
        // parts alone. Prints 0 to 19 share one kind each with the query, too little for a copy:
        // a duplicate check passes over them unverified.
        let registered: Vec<(u64, Arc<FeatureSet>)> = (0..20)
            .map(|p| (p as u64, print_of_kinds(&[p])))
            .chain([(100, print_of_kinds(&(0..40).collect::<Vec<_>>()))])
            .collect();
        let (indexes, registered) = registry_of(registered);
        let query = print_of_kinds(&(0..40).collect::<Vec<_>>());
        let ranked = |asked| rank(&query, &indexes, &registered, |_| true, None, asked, 0.45);
        let found: Vec<(u64, f32)> = ranked(Wanted::Best(10))
            .into_iter()
            .filter(|(_, comparison)| comparison.copy)
            .map(|(seq, comparison)| (seq, comparison.score))
            .collect();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 100);
        let copies: Vec<(u64, f32)> = ranked(Wanted::Copies(10))
            .into_iter()
            .map(|(seq, comparison)| (seq, comparison.score))
            .collect();
        assert_eq!(copies, found);
    }

    #[test]
    fn the_same_repeat_at_another_size_and_in_new_inks_is_found_by_its_unit() {
        use crate::features::{extract, repeat_unit::tests::tiled};
        use crate::normalize::normalize;
        let features = |image: &image::RgbImage| extract(&normalize(image));
        let registered_features = |image: &image::RgbImage| {
            let mut features = features(image);
            features.local.keep_registered();
            Arc::new(features)
        };
        let registered: Vec<(u64, Arc<FeatureSet>)> = (10..30)
            .chain([3])
            .map(|seed| {
                let print = tiled(seed, 128.0, (0.0, 0.0), 512, false);
                (seed, registered_features(&print))
            })
            .collect();
        let (indexes, registered) = registry_of(registered);
        // Printed at two thirds of the repeat, in other inks (the channels exchanged).
        let mut copy = tiled(3, 85.0, (0.3, 0.7), 512, false);
        copy.pixels_mut()
            .for_each(|p| p.0 = [p.0[2], p.0[0], p.0[1]]);
        let ranked = rank(
            &features(&copy),
            &indexes,
            &registered,
            |_| true,
            None,
            Wanted::Best(5),
            DEFAULT_COPY_THRESHOLD,
        );
        let (seq, best) = &ranked[0];
        assert_eq!(*seq, 3);
        let repeat = best
            .explanation
            .signals
            .iter()
            .find(|s| s.name == "repeat_unit")
            .expect("a repeat signal");
        assert!(repeat.fired, "{}", repeat.detail);
        assert!(best.copy, "{}", best.explanation.summary);
        assert!(ranked[1..].iter().all(|(_, c)| !c.copy));
    }

    #[test]
    fn other_fine_repeats_of_one_lattice_are_not_copies_but_another_window_is() {
        use crate::features::{extract, repeat_unit::tests::tiled};
        use crate::normalize::normalize;
        // Six designs repeated every 96 of 768 pixels, eight repeats each way.
        let print = |seed, phase| extract(&normalize(&tiled(seed, 96.0, phase, 768, false)));
        let prints: Vec<FeatureSet> = (40..46).map(|seed| print(seed, (0.0, 0.0))).collect();
        let hash_findings = |comparison: &Comparison| -> Vec<(u32, bool)> {
            (comparison.explanation.signals.iter())
                .filter_map(|signal| match signal.finding {
                    Finding::HashBits {
                        differing,
                        lattice_only,
                        ..
                    } => Some((differing, lattice_only)),
                    _ => None,
                })
                .collect()
        };
        let mut nearest_bits = u32::MAX;
        for (i, a) in prints.iter().enumerate() {
            for b in &prints[i + 1..] {
                let comparison = compare(&Query::alone(a), b, None, DEFAULT_COPY_THRESHOLD);
                assert!(!comparison.copy, "{}", comparison.explanation.summary);
                for (differing, lattice_only) in hash_findings(&comparison) {
                    assert!(lattice_only, "{differing} bits counted");
                    nearest_bits = nearest_bits.min(differing);
                }
            }
        }
        // What the hashes alone would say: some unrelated pairs agree in nearly every bit.
        assert!(nearest_bits < 32, "{nearest_bits}");
        // The same repeat through another window folds into the same unit: its hashes count.
        let window = print(40, (0.4, 0.7));
        let comparison = compare(
            &Query::alone(&window),
            &prints[0],
            None,
            DEFAULT_COPY_THRESHOLD,
        );
        assert!(comparison.copy, "{}", comparison.explanation.summary);
        assert!(
            hash_findings(&comparison)
                .iter()
                .all(|(_, lattice_only)| !lattice_only)
        );
    }

    #[test]
    fn fine_repeats_are_not_copies_of_stripes_of_their_period() {
        use crate::features::{extract, repeat_unit::tests::tiled};
        use crate::normalize::normalize;
        // Six designs repeated every 96 of 768 pixels, and six kinds of stripes in the same
        // inks every 96 rows, which show no repeat unit. With their hashes counted, 27 of these
        // 72 pairs scored 0.2 to 0.38 (and, of twelve designs, one pair 0.47, a copy); now 0.
        let repeats: Vec<FeatureSet> = (40..46)
            .map(|seed| extract(&normalize(&tiled(seed, 96.0, (0.0, 0.0), 768, false))))
            .collect();
        let inks = [
            [200, 40, 60],
            [30, 90, 160],
            [240, 200, 40],
            [235, 230, 215],
        ];
        let stripes: Vec<FeatureSet> = (0..6)
            .map(|kind: u32| {
                let print = image::RgbImage::from_fn(768, 768, |_, y| {
                    image::Rgb(inks[(((y % 96) * (3 + kind) / 96 + kind) % 4) as usize])
                });
                extract(&normalize(&print))
            })
            .collect();
        assert!(stripes.iter().all(|s| s.repeat_unit.is_none()));
        for repeat in &repeats {
            for striped in &stripes {
                for (query, reference) in [(repeat, striped), (striped, repeat)] {
                    let comparison = compare(
                        &Query::alone(query),
                        reference,
                        None,
                        DEFAULT_COPY_THRESHOLD,
                    );
                    assert!(
                        comparison.score < 0.2,
                        "{}: {}",
                        comparison.score,
                        comparison.explanation.summary
                    );
                }
            }
        }
    }

    /// A print of one CIELAB colour, `ground`, with a band of `motif` across its first
    /// `motif_rows` of 96 rows; no hashes, no keypoints.
    fn print_in_inks(ground: [f32; 3], motif: [f32; 3], motif_rows: usize) -> Arc<FeatureSet> {
        let side = 96;
        let lab: Vec<[f32; 3]> = (0..side * side)
            .map(|i| if i / side < motif_rows { motif } else { ground })
            .collect();
        let mut features = FeatureSet::default();
        features.inks = crate::features::inks::ink_map(&lab, side, side);
        let mean = |c: usize| lab.iter().map(|pixel| pixel[c]).sum::<f32>() / lab.len() as f32;
        features.mean_colour = [mean(0), mean(1), mean(2)];
        Arc::new(features)
    }

    #[test]
    fn equal_scores_put_the_print_in_the_same_inks_first() {
        // A plain query (a fine texture that averaged out). Print 1 is plain, 5 ΔE lighter;
        // print 2 a darker ground with pale motifs over a fifth of it, whose mean colour is the
        // query's own. Nothing else tells them apart: the plain print is the likelier original.
        let query = print_in_inks([40.0, 30.0, -20.0], [40.0, 30.0, -20.0], 0);
        let (indexes, registered) = registry_of(vec![
            (
                1,
                print_in_inks([45.0, 30.0, -20.0], [45.0, 30.0, -20.0], 0),
            ),
            (
                2,
                print_in_inks([30.0, 30.0, -20.0], [78.0, 30.0, -20.0], 20),
            ),
        ]);
        let ranked = rank(
            &query,
            &indexes,
            &registered,
            |_| true,
            None,
            Wanted::Best(2),
            0.45,
        );
        assert!(ranked.iter().all(|(_, comparison)| comparison.score == 0.0));
        let order: Vec<u64> = ranked.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(order, [1, 2]);
    }

    #[test]
    fn a_negative_colourway_is_the_same_whole_print_by_its_ink_edges() {
        use crate::features::extract;
        use crate::normalize::normalize;
        // The print in its negative colours: its light ground dark, its dark inks light. The
        // lightness hash sees another layout; every ink meets the others where it did.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/print_a.png");
        let print = image::open(path).expect("fixture").to_rgb8();
        let mut negative = print.clone();
        negative
            .pixels_mut()
            .for_each(|pixel| pixel.0 = pixel.0.map(|c| 255 - c));
        let (print, negative) = (extract(&normalize(&print)), extract(&normalize(&negative)));
        let comparison = compare(
            &Query::alone(&negative),
            &print,
            None,
            DEFAULT_COPY_THRESHOLD,
        );
        let signal = |name| {
            comparison
                .explanation
                .signals
                .iter()
                .find(|s| s.name == name)
                .expect("every signal is reported")
        };
        let (whole, lightness) = (signal("whole_print"), signal("lightness_hash"));
        assert!(lightness.similarity < 0.3, "{}", lightness.detail);
        // The mean of the two hashes read 0.51: the same print, but barely.
        assert!(whole.similarity > 0.9, "{}", whole.detail);
        assert!(
            matches!(whole.finding, Finding::StructureAboveBackground { .. }),
            "{}",
            whole.detail
        );
    }

    /// A print with a keypoint of each kind and both hashes `flipped` bits away from all-zero
    /// hashes, in every orientation.
    fn print_with_hashes(kinds: &[usize], flipped: u32) -> FeatureSet {
        let mut features = (*print_of_kinds(kinds)).clone();
        let mut hash = Hash256::default();
        for bit in 0..flipped as usize {
            hash.0[bit / 64] |= 1 << (bit % 64);
        }
        let hashes = DihedralHashes::new([hash; 8]);
        features.lightness_hash = Some(hashes.clone());
        features.structure_hash = Some(hashes);
        features
    }

    #[test]
    fn a_print_close_as_a_whole_and_in_parts_is_a_copy_though_neither_is_enough_alone() {
        // The query's hashes differ from the reference's in 80 of 256 bits and it shares 6
        // kinds of keypoint with it: each view short of the bar, both together over it.
        let reference = print_with_hashes(&[0, 1, 2, 3, 4, 5], 0);
        let score = |query: &FeatureSet| compare(&Query::alone(query), &reference, None, 0.45);
        let both = score(&print_with_hashes(&[0, 1, 2, 3, 4, 5], 80));
        let whole_only = score(&print_with_hashes(&[10, 11, 12, 13, 14, 15], 80));
        let parts_only = score(&print_with_hashes(&[0, 1, 2, 3, 4, 5], 128));
        assert!(!whole_only.copy && !parts_only.copy);
        assert!(both.copy, "{both:?}");
        assert!(both.explanation.signals.iter().all(|s| !s.fired));
        assert!(both.explanation.summary.contains("both together"));
    }
}
