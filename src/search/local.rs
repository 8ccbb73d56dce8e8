//! Pairwise verification of local features. Query keypoints (and their mirror images) are
//! matched to a reference print's keypoints by descriptor distance, then grouped by the
//! transform each match implies (turn, scale, mirror). A copy concentrates its matches in a few
//! groups: one for a crop or a photo, one per motif when motifs were cut out and rearranged,
//! each motif moving on its own. Chance matches between unrelated prints scatter instead.
//! Translation is left out on purpose: in a repeating print the same motif appears many times,
//! and any of its copies is a fair match.
//!
//! Evidence is weighed, not counted: query keypoints that look alike (the dots of a dot grid,
//! the repeats of one motif) count once together, and a keypoint that also lands near many
//! other registered prints (a stripe end, a plain leaf) counts for little. A match a little
//! beyond the match distance counts too where the keypoint is distinctive: nearer this print
//! than any other by Lowe's ratio.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::f32::consts::TAU;

use serde::Serialize;

use crate::features::keypoints::{
    Descriptor, Keypoint, LocalFeatures, MATCH_DISTANCE, PackedDescriptor, mirror_descriptor,
    mirror_keypoint,
};
use crate::index::{nearest_below, squared_bound, squared_distance_below};

/// Turn bins of 30°, and scale bins of a factor √2.
const ROTATION_BIN: f32 = TAU / 12.0;
const LOG2_SCALE_BIN: f32 = 0.5;
/// Fewest matches that make a group by transform alone: two chance matches can agree, three
/// rarely do. Two make a group when they agree in place too ([`placed_alike`]).
const MIN_GROUP: usize = 3;
/// How far a pair's second keypoint may lie from where the first one's transform puts it, as
/// a share of their distance (plus the keypoints' blur).
const PLACE_TOLERANCE: f32 = 0.25;
/// Farthest a match may be when its query keypoint is distinctive: no other print comes within
/// [`MATCH_DISTANCE`] of it, and the reference is nearer than every other verified print by
/// [`RIVAL_RATIO`] (Lowe's ratio test, across prints, as the OpenCV baseline does; a rival
/// further than this distance is not looked for). A motif cut out, turned and scaled anew
/// drifts past the match distance, but it stays nearer its original than any other print;
/// counting such matches without the test raised chance agreement as much as copies'
/// (docs/matching.md, known limits).
const BAND_DISTANCE: f32 = 250.0;
const RIVAL_RATIO: f32 = 0.8;

/// One group of matches that share a transform.
#[derive(Clone, Debug, Serialize)]
pub struct MatchGroup {
    /// The query was mirrored (left-right) to match.
    pub mirrored: bool,
    /// How far the reference is turned from the query, in degrees clockwise.
    pub rotation_degrees: f32,
    /// Reference size / query size.
    pub scale: f32,
    pub matches: usize,
    /// Where the matched keypoints lie in the query and in the reference.
    pub query_region: Region,
    pub reference_region: Region,
}

/// A rectangle as fractions of an image's width and height, so it applies to the upload at
/// any size.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Region {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
}

impl Region {
    /// The box around keypoints, each padded by its own scale, clipped to the image.
    fn around(points: impl Iterator<Item = Keypoint>, width: u32, height: u32) -> Region {
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for p in points {
            let pad = 2.0 * p.scale();
            x0 = x0.min(p.x() - pad);
            y0 = y0.min(p.y() - pad);
            x1 = x1.max(p.x() + pad);
            y1 = y1.max(p.y() + pad);
        }
        let (w, h) = (width.max(1) as f32, height.max(1) as f32);
        let (x0, y0) = ((x0 / w).clamp(0.0, 1.0), (y0 / h).clamp(0.0, 1.0));
        let (x1, y1) = ((x1 / w).clamp(0.0, 1.0), (y1 / h).clamp(0.0, 1.0));
        Region {
            x: x0,
            y: y0,
            width: (x1 - x0).max(0.0),
            height: (y1 - y0).max(0.0),
        }
    }
}

/// What local features say about a pair of prints.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LocalEvidence {
    /// Distinct, distinctive evidence: over the kinds of query keypoint that matched
    /// consistently, the sum of each kind's weight.
    pub weight: f32,
    /// Matches that fell into a group.
    pub consistent_matches: usize,
    /// Matches by descriptor alone, before grouping.
    pub descriptor_matches: usize,
    pub groups: Vec<MatchGroup>,
    /// The query keypoints of the grouped matches.
    #[serde(skip)]
    pub matched: Vec<QueryKeypoint>,
    /// The reference keypoint of each grouped match, in the order of `matched`.
    #[serde(skip)]
    pub matched_reference: Vec<usize>,
}

impl LocalEvidence {
    /// Each grouped match as (query keypoint, reference keypoint).
    pub fn matched_pairs(&self) -> impl Iterator<Item = (QueryKeypoint, usize)> + '_ {
        self.matched
            .iter()
            .copied()
            .zip(self.matched_reference.iter().copied())
    }
}

/// One query keypoint, as given or mirrored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QueryKeypoint {
    pub index: usize,
    pub mirrored: bool,
}

/// The two prints nearest a query keypoint, as (sequence number, squared distance), nearest
/// first; `u32::MAX` for none.
type NearestPrints = [(u64, u32); 2];

/// A query's descriptors as given and mirrored, with what each is worth as evidence; computed
/// once per query.
pub struct QueryDescriptors<'a> {
    pub features: &'a LocalFeatures,
    pub given: Vec<Descriptor>,
    pub mirrored: Vec<Descriptor>,
    /// Per keypoint: the kind it belongs to (keypoints with near-equal descriptors share one).
    kinds: Vec<usize>,
    /// Per keypoint, as given and mirrored: the registered prints it lands near (empty when
    /// unknown). A keypoint weighs 1 / their number (1 when none).
    landed: [Vec<BTreeSet<u64>>; 2],
    /// Per keypoint, as given and mirrored: the two verified prints nearest it; `None` until
    /// prints are verified in a registry.
    rivals: Option<[Vec<NearestPrints>; 2]>,
}

impl<'a> QueryDescriptors<'a> {
    /// Every keypoint at full weight, as when there is no registry to compare with.
    pub fn new(features: &'a LocalFeatures) -> Self {
        let given = features.unpacked_descriptors();
        let n = given.len();
        QueryDescriptors {
            features,
            mirrored: given.iter().map(mirror_descriptor).collect(),
            kinds: kinds_of(&given),
            given,
            landed: [vec![BTreeSet::new(); n], vec![BTreeSet::new(); n]],
            rivals: None,
        }
    }

    /// Keeps, per keypoint, the two prints of `verified` nearest it.
    pub fn set_rivals<'n>(&mut self, verified: impl Iterator<Item = (u64, &'n NearestKeypoints)>) {
        let n = self.given.len();
        let mut rivals = [vec![[(0, u32::MAX); 2]; n], vec![[(0, u32::MAX); 2]; n]];
        for (seq, nearest) in verified {
            for (mirrored, i, _, squared) in nearest.found() {
                let two = &mut rivals[usize::from(mirrored)][i];
                if squared < two[0].1 {
                    two[1] = two[0];
                    two[0] = (seq, squared);
                } else if squared < two[1].1 {
                    two[1] = (seq, squared);
                }
            }
        }
        self.rivals = Some(rivals);
    }

    /// Whether a match of keypoint `index` at `squared` beyond the match distance counts for
    /// `reference`: no other print within the match distance, no other verified print within
    /// 1/[`RIVAL_RATIO`] of its distance. Never without a registry: with no rivals to measure
    /// against, nothing shows the match is distinctive.
    fn distinctive(
        &self,
        mirrored: bool,
        index: usize,
        squared: u32,
        reference: Option<u64>,
    ) -> bool {
        let Some(rivals) = &self.rivals else {
            return false;
        };
        let m = usize::from(mirrored);
        if self.landed[m][index]
            .iter()
            .any(|seq| Some(*seq) != reference)
        {
            return false;
        }
        let rival = rivals[m][index]
            .iter()
            .find(|(seq, _)| Some(*seq) != reference)
            .map_or(u32::MAX, |(_, squared)| *squared);
        nearer_by_ratio(squared, rival)
    }

    /// How many kinds of keypoint the query has: what its evidence can at most weigh.
    pub fn kind_count(&self) -> usize {
        self.kinds
            .iter()
            .enumerate()
            .filter(|(i, kind)| i == *kind)
            .count()
    }

    /// The kind keypoint `index` belongs to (the same for its mirror image).
    pub fn kind_of(&self, index: usize) -> usize {
        self.kinds[index]
    }

    /// Sets the registered prints each keypoint lands near, which weigh it: `landed[m][i]` for
    /// keypoint `i`, mirrored when `m` is 1.
    pub fn weigh(&mut self, landed: [Vec<BTreeSet<u64>>; 2]) {
        self.landed = landed;
    }

    /// Counts the prints the verifier matched query keypoints to among those they land near:
    /// the index finds only some of them.
    pub fn add_verified(&mut self, verified: &[(u64, LocalEvidence)]) {
        for (seq, evidence) in verified {
            for keypoint in &evidence.matched {
                if let Some(landed) =
                    self.landed[usize::from(keypoint.mirrored)].get_mut(keypoint.index)
                {
                    landed.insert(*seq);
                }
            }
        }
    }

    /// Whether `reference` is the verified print nearest keypoint `index`, nearer than the
    /// next by Lowe's ratio ([`RIVAL_RATIO`]). Never without a registry.
    fn nearest_by_ratio(&self, mirrored: bool, index: usize, reference: u64) -> bool {
        let Some(rivals) = &self.rivals else {
            return false;
        };
        let [(nearest, squared), (_, next)] = rivals[usize::from(mirrored)][index];
        nearest == reference && nearer_by_ratio(squared, next)
    }

    /// The weight of matched query keypoints for `reference`: over the kinds of keypoint among
    /// them, the sum of each kind's best weight. A keypoint that lands near n registered
    /// prints weighs 1/n, or 1/√n where `reference` is the verified print nearest it by Lowe's
    /// ratio: as a registry grows, a copy's keypoints land near more prints (a curve or a leaf
    /// that dozens of prints share), yet where they match best still tells their original
    /// apart. At 1/n alone, copies' evidence fell with every print added.
    pub fn evidence_weight(&self, matched: &[QueryKeypoint], reference: Option<u64>) -> f32 {
        let mut best_by_kind: BTreeMap<usize, f32> = BTreeMap::new();
        for keypoint in matched {
            let prints = self.landed[usize::from(keypoint.mirrored)][keypoint.index]
                .len()
                .max(1) as f32;
            let nearest = reference
                .is_some_and(|seq| self.nearest_by_ratio(keypoint.mirrored, keypoint.index, seq));
            let weight = if nearest {
                1.0 / prints.sqrt()
            } else {
                1.0 / prints
            };
            let best = best_by_kind
                .entry(self.kinds[keypoint.index])
                .or_insert(0.0);
            *best = best.max(weight);
        }
        best_by_kind.values().fold(0.0, |total, w| total + w)
    }
}

/// Lowe's ratio test on squared distances: `squared` nearer than `rival` by [`RIVAL_RATIO`].
fn nearer_by_ratio(squared: u32, rival: u32) -> bool {
    (squared as f64) < f64::from(RIVAL_RATIO * RIVAL_RATIO) * f64::from(rival)
}

/// Groups descriptors closer than [`MATCH_DISTANCE`] into kinds (single linkage), returning
/// each descriptor's kind.
fn kinds_of(descriptors: &[Descriptor]) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..descriptors.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let bound = squared_bound(MATCH_DISTANCE);
    for i in 0..descriptors.len() {
        for j in i + 1..descriptors.len() {
            if squared_distance_below(&descriptors[i], &descriptors[j], bound).is_some() {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    (0..descriptors.len())
        .map(|i| root(&mut parent, i))
        .collect()
}

/// A descriptor match and the transform it implies.
struct Match {
    /// Index of the query keypoint.
    index: usize,
    /// Index of the reference keypoint.
    reference_index: usize,
    mirrored: bool,
    rotation: f32,
    log2_scale: f32,
}

/// Matches `query` with `reference` (registered as `reference_seq`, when it is) and groups
/// the matches by transform.
pub fn verify(
    query: &QueryDescriptors,
    reference: &LocalFeatures,
    reference_seq: Option<u64>,
) -> LocalEvidence {
    evidence(
        query,
        reference,
        reference_seq,
        &nearest_keypoints(query, reference),
    )
}

/// Per query keypoint, as given and mirrored: the nearest keypoint of a reference within
/// [`BAND_DISTANCE`], as (reference keypoint, squared distance).
pub struct NearestKeypoints([Vec<Option<(usize, u32)>>; 2]);

impl NearestKeypoints {
    /// Each query keypoint that has a nearest keypoint, as (mirrored, query keypoint,
    /// reference keypoint, squared distance).
    fn found(&self) -> impl Iterator<Item = (bool, usize, usize, u32)> + '_ {
        [false, true]
            .into_iter()
            .zip(&self.0)
            .flat_map(|(mirrored, found)| {
                found.iter().enumerate().filter_map(move |(qi, near)| {
                    near.map(|(ri, squared)| (mirrored, qi, ri, squared))
                })
            })
    }
}

/// The verifier's costly part, kept apart so that the prints a query is verified against can
/// be scored again, once they are its keypoints' rivals, without it.
pub fn nearest_keypoints(query: &QueryDescriptors, reference: &LocalFeatures) -> NearestKeypoints {
    let references: Vec<Descriptor> = reference
        .registered_descriptors()
        .iter()
        .map(PackedDescriptor::unpack)
        .collect();
    let bound = squared_bound(BAND_DISTANCE);
    NearestKeypoints([&query.given, &query.mirrored].map(|descriptors| {
        descriptors
            .iter()
            .map(|descriptor| nearest_below(descriptor, &references, bound))
            .collect()
    }))
}

/// The matches among the nearest keypoints (the best query keypoint for each reference
/// keypoint, per orientation), grouped by transform and weighed.
pub fn evidence(
    query: &QueryDescriptors,
    reference: &LocalFeatures,
    reference_seq: Option<u64>,
    nearest: &NearestKeypoints,
) -> LocalEvidence {
    let bound = squared_bound(MATCH_DISTANCE);
    let band = squared_bound(BAND_DISTANCE);
    let mut best: BTreeMap<(bool, usize), (u32, usize)> = BTreeMap::new();
    for (mirrored, qi, ri, squared) in nearest.found() {
        let counts = squared < bound
            || (squared < band && query.distinctive(mirrored, qi, squared, reference_seq));
        if !counts {
            continue;
        }
        let entry = best.entry((mirrored, ri)).or_insert((squared, qi));
        if squared < entry.0 {
            *entry = (squared, qi);
        }
    }
    let matches: Vec<Match> = best
        .into_iter()
        .map(|((mirrored, ri), (_, qi))| {
            let (rotation, log2_scale) = transform_between(
                &query.features.keypoints[qi],
                mirrored,
                query.features.width,
                &reference.keypoints[ri],
            );
            Match {
                index: qi,
                reference_index: ri,
                mirrored,
                rotation,
                log2_scale,
            }
        })
        .collect();
    let descriptor_matches = matches.len();
    let (groups, members) = group_by_transform(&matches, query.features, reference);
    let matched: Vec<QueryKeypoint> = members
        .iter()
        .map(|&i| QueryKeypoint {
            index: matches[i].index,
            mirrored: matches[i].mirrored,
        })
        .collect();
    LocalEvidence {
        weight: query.evidence_weight(&matched, reference_seq),
        consistent_matches: members.len(),
        descriptor_matches,
        groups,
        matched,
        matched_reference: members
            .iter()
            .map(|&i| matches[i].reference_index)
            .collect(),
    }
}

/// The turn (radians, in [0, 2π)) and log2 scale (reference size / query size) that carry a
/// query keypoint, mirrored first when `mirrored`, onto a reference keypoint.
pub fn transform_between(
    query: &Keypoint,
    mirrored: bool,
    query_width: u32,
    reference: &Keypoint,
) -> (f32, f32) {
    let query = if mirrored {
        mirror_keypoint(query, query_width)
    } else {
        *query
    };
    (
        (reference.angle() - query.angle()).rem_euclid(TAU),
        reference.log2_scale() - query.log2_scale(),
    )
}

/// A bin of transforms: mirrored or not, turn step, scale step.
pub type TransformBin = (bool, i32, i32);

/// The four bins a transform votes in: the turn and scale steps nearest it on either side
/// (soft voting), so that matches near the edge of a step still meet.
pub fn transform_bins(mirrored: bool, rotation: f32, log2_scale: f32) -> [TransformBin; 4] {
    let r = rotation / ROTATION_BIN - 0.5;
    let s = log2_scale / LOG2_SCALE_BIN - 0.5;
    let turns = (TAU / ROTATION_BIN).round() as i32;
    let (r0, s0) = (r.floor() as i32, s.floor() as i32);
    [(r0, s0), (r0 + 1, s0), (r0, s0 + 1), (r0 + 1, s0 + 1)]
        .map(|(rb, sb)| (mirrored, rb.rem_euclid(turns), sb))
}

/// Radius of a region, as a share of the query's longer side: about one motif.
const REGION_RADIUS: f32 = 0.15;

/// The members of a group that lie close together on both sides, around the member with the
/// most such neighbours. A group ignores translation, so in a repeating print it gathers the
/// matches of every repeat of a motif; this picks one repeat to outline.
fn densest_cluster(
    members: &[usize],
    matches: &[Match],
    query: &LocalFeatures,
    reference: &LocalFeatures,
    scale: f32,
) -> Vec<usize> {
    let radius = REGION_RADIUS * query.width.max(query.height) as f32;
    // Squared distances, and one list built: this runs for every pair of a group's members,
    // for every candidate verified.
    let within = |p: Keypoint, q: Keypoint, r: f32| {
        let (dx, dy) = (p.x() - q.x(), p.y() - q.y());
        dx * dx + dy * dy <= r * r
    };
    let near = |a: usize, b: usize| {
        let (ma, mb) = (&matches[a], &matches[b]);
        within(query.keypoints[ma.index], query.keypoints[mb.index], radius)
            && within(
                reference.keypoints[ma.reference_index],
                reference.keypoints[mb.reference_index],
                radius * scale,
            )
    };
    let neighbours = |centre: usize| {
        members
            .iter()
            .copied()
            .filter(move |&other| near(centre, other))
    };
    match members
        .iter()
        .max_by_key(|&&centre| neighbours(centre).count())
    {
        Some(&centre) => neighbours(centre).collect(),
        None => Vec::new(),
    }
}

/// Greedy Hough grouping: each match votes for the two nearest turn bins and the two nearest
/// scale bins; the fullest bin becomes a group and its matches leave the vote; repeat while a
/// bin holds at least [`MIN_GROUP`] matches. Then pairs of the matches left that agree in
/// place as well as in transform become groups of two (see [`placed_alike`]).
/// Returns the groups and the indices of the matches in them.
fn group_by_transform(
    matches: &[Match],
    query: &LocalFeatures,
    reference: &LocalFeatures,
) -> (Vec<MatchGroup>, Vec<usize>) {
    let bins_of = |m: &Match| transform_bins(m.mirrored, m.rotation, m.log2_scale);
    let mut used = vec![false; matches.len()];
    let mut groups = Vec::new();
    let mut grouped = Vec::new();
    loop {
        let mut votes: HashMap<TransformBin, Vec<usize>> = HashMap::new();
        for (i, m) in matches.iter().enumerate().filter(|(i, _)| !used[*i]) {
            for bin in bins_of(m) {
                votes.entry(bin).or_default().push(i);
            }
        }
        let Some((_, members)) = votes
            .into_iter()
            .max_by_key(|(bin, members)| (members.len(), std::cmp::Reverse(*bin)))
        else {
            break;
        };
        if members.len() < MIN_GROUP {
            break;
        }
        for &i in &members {
            used[i] = true;
        }
        groups.push(match_group(&members, matches, query, reference));
        grouped.extend(members);
    }
    for pair in placed_pairs(matches, &used, query, reference) {
        groups.push(match_group(&pair, matches, query, reference));
        grouped.extend(pair);
    }
    (groups, grouped)
}

/// A group of matches: their mean transform, and where the densest cluster of them lies.
fn match_group(
    members: &[usize],
    matches: &[Match],
    query: &LocalFeatures,
    reference: &LocalFeatures,
) -> MatchGroup {
    let n = members.len() as f32;
    let (mut sin, mut cos, mut log_scale) = (0.0, 0.0, 0.0);
    for &i in members {
        sin += matches[i].rotation.sin();
        cos += matches[i].rotation.cos();
        log_scale += matches[i].log2_scale;
    }
    let degrees = sin.atan2(cos).to_degrees().round();
    let scale = 2f32.powf(log_scale / n);
    let core = densest_cluster(members, matches, query, reference, scale);
    MatchGroup {
        mirrored: matches[members[0]].mirrored,
        rotation_degrees: degrees.rem_euclid(360.0),
        scale,
        matches: members.len(),
        query_region: Region::around(
            core.iter().map(|&i| query.keypoints[matches[i].index]),
            query.width,
            query.height,
        ),
        reference_region: Region::around(
            core.iter()
                .map(|&i| reference.keypoints[matches[i].reference_index]),
            reference.width,
            reference.height,
        ),
    }
}

/// Pairs of the matches not yet used that [`placed_alike`] accepts, each match in one pair at
/// most: the pairs nearest to exact first.
fn placed_pairs(
    matches: &[Match],
    used: &[bool],
    query: &LocalFeatures,
    reference: &LocalFeatures,
) -> Vec<[usize; 2]> {
    let free: Vec<usize> = (0..matches.len()).filter(|&i| !used[i]).collect();
    let mut candidates: Vec<(f32, [usize; 2])> = Vec::new();
    for (k, &a) in free.iter().enumerate() {
        for &b in &free[k + 1..] {
            if let Some(error) = placed_alike(&matches[a], &matches[b], query, reference) {
                candidates.push((error, [a, b]));
            }
        }
    }
    candidates.sort_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
    let mut taken = used.to_vec();
    let mut pairs = Vec::new();
    for (_, [a, b]) in candidates {
        if !taken[a] && !taken[b] {
            taken[a] = true;
            taken[b] = true;
            pairs.push([a, b]);
        }
    }
    pairs
}

/// Whether two matches agree as two parts of one motif moved as a whole would: the same
/// mirror, turn and scale within a bin, and the second keypoint where the first one's
/// transform carries it on the reference. Two chance matches seldom agree in transform and
/// place together, so two such matches are a motif found, as three that agree in transform
/// alone are; a small motif cut out and placed anew often keeps no more than two. Returns the
/// misplacement as a share of what is allowed, or `None` when they do not agree.
fn placed_alike(
    a: &Match,
    b: &Match,
    query: &LocalFeatures,
    reference: &LocalFeatures,
) -> Option<f32> {
    if a.mirrored != b.mirrored || a.index == b.index || a.reference_index == b.reference_index {
        return None;
    }
    let turn_apart = (a.rotation - b.rotation).rem_euclid(TAU);
    if turn_apart.min(TAU - turn_apart) > ROTATION_BIN
        || (a.log2_scale - b.log2_scale).abs() > LOG2_SCALE_BIN
    {
        return None;
    }
    let placed = |index: usize| {
        let keypoint = query.keypoints[index];
        if a.mirrored {
            mirror_keypoint(&keypoint, query.width)
        } else {
            keypoint
        }
    };
    let (qa, qb) = (placed(a.index), placed(b.index));
    let (ra, rb) = (
        reference.keypoints[a.reference_index],
        reference.keypoints[b.reference_index],
    );
    let (dx, dy) = (qb.x() - qa.x(), qb.y() - qa.y());
    // Two keypoints of one spot at two blurs are one piece of evidence, not two.
    if dx.hypot(dy) < 2.0 * qa.scale().max(qb.scale()) {
        return None;
    }
    let turn = (a.rotation.sin() + b.rotation.sin()).atan2(a.rotation.cos() + b.rotation.cos());
    let scale = ((a.log2_scale + b.log2_scale) / 2.0).exp2();
    let (sin, cos) = turn.sin_cos();
    let (px, py) = (scale * (cos * dx - sin * dy), scale * (sin * dx + cos * dy));
    let misplaced = (rb.x() - ra.x() - px).hypot(rb.y() - ra.y() - py);
    let allowed = PLACE_TOLERANCE * px.hypot(py) + ra.scale().max(rb.scale());
    (misplaced <= allowed).then_some(misplaced / allowed)
}
