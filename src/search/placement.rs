//! Whether the local matches are the whole design moved as one (a crop, a turn, a photo) or
//! motifs cut out and placed anew. The transform groups alone cannot tell: a symmetric motif
//! matches itself turned and mirrored too, so a plain crop also gives several groups. What
//! tells is the ink map: carried onto the reference by the largest group's turn, scale and
//! mirror, at the best offset, the query of a whole-design copy shows each of its inks where
//! one reference ink lies throughout the overlap, up to a change of palette; rearranged motifs
//! line up one at a time, and the rest of the print does not.

use super::local::{LocalEvidence, MatchGroup};
use crate::features::FeatureSet;
use crate::features::inks::InkMap;

/// Agreement (see [`agreement`]) at and above which the whole design lines up. Of the public
/// set's copies judged copies at rank 1, 14 of the 728 that keep the design whole (crop, scale,
/// turns, mirror, recolour, photo, repeat shift) are called rearranged with it, and 15 of the
/// 18 rearranged ones (docs/matching.md §4).
const LINES_UP: f32 = 0.4;
/// The agreement of the reference's map with itself moved one cell, below which the map
/// cannot tell a placement: a dense texture's cells change ink from one to the next (its inks
/// are shades of its grain), so even an exact copy agrees little at the scale of a cell.
const MIN_SELF_AGREEMENT: f32 = 0.2;
/// Without a map that can tell, the design counts as moved as one when no other group holds
/// more than this share of the largest group's matches: the matches of a symmetric motif
/// matched turned or mirrored are a minority, rearranged motifs share them out.
const MINOR_GROUP: f32 = 0.5;
/// Least share of the query's map that must land on the reference for a placement to count:
/// less is a corner, too little to speak for the whole design.
const MIN_OVERLAP: f32 = 0.2;
/// Transform groups whose turn and scale are tried, largest first.
const GROUPS_TRIED: usize = 2;
/// Query cells sampled while the offset is searched, one in this many each way; the best
/// offset is then refined on every cell.
const COARSE_STRIDE: usize = 3;
/// Scales tried around a group's own while the offset is refined (a group's scale is the mean
/// of its keypoints', each found at one of three blurs an octave), and offsets around the
/// best one, in cells (the cells' centres need not meet).
const SCALE_STEPS: [f32; 5] = [0.94, 0.97, 1.0, 1.03, 1.06];
const OFFSET_STEPS: [f32; 5] = [-0.5, -0.25, 0.0, 0.25, 0.5];

/// The group whose transform carries the whole design when the matches of several groups are
/// the design moved as one; `None` when they are motifs placed anew.
pub fn carrying_group(
    query: &FeatureSet,
    reference: &FeatureSet,
    evidence: &LocalEvidence,
) -> Option<usize> {
    match whole_design_agreement(query, reference, evidence) {
        Some((group, agreement)) => (agreement >= LINES_UP).then_some(group),
        None => match largest_first(evidence).as_slice() {
            [largest, next, ..] => {
                let size = |i: usize| evidence.groups[i].matches as f32;
                (size(*next) <= MINOR_GROUP * size(*largest)).then_some(*largest)
            }
            [only] => Some(*only),
            [] => None,
        },
    }
}

/// The groups' indices, most matches first.
fn largest_first(evidence: &LocalEvidence) -> Vec<usize> {
    let mut order: Vec<usize> = (0..evidence.groups.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(evidence.groups[i].matches));
    order
}

/// How well a placement of the whole query on the reference explains the inks of the overlap
/// (see [`agreement`]), under the turn, scale and mirror of one of the largest groups, and
/// that group; the offset is searched over the reference's cells, since the matches may sit on
/// any repeat of a motif. The first placement found that lines up the whole design ends the
/// search (only that is asked); otherwise the best. `None` without groups, or where the
/// reference's map cannot tell.
pub fn whole_design_agreement(
    query: &FeatureSet,
    reference: &FeatureSet,
    evidence: &LocalEvidence,
) -> Option<(usize, f32)> {
    let size = (reference.local.width, reference.local.height);
    let (cell_width, _) = reference.inks.cell_size(size.0, size.1);
    let next_cell = |x: f32, y: f32| (x + cell_width, y);
    let own = agreement(&reference.inks, &reference.inks, size, size, 1, next_cell);
    if own.is_none_or(|a| a < MIN_SELF_AGREEMENT) {
        return None;
    }
    let mut best: Option<(usize, f32)> = None;
    for group in largest_first(evidence).into_iter().take(GROUPS_TRIED) {
        let Some(found) = at_best_offset(query, reference, &evidence.groups[group]) else {
            continue;
        };
        if best.is_none_or(|(_, b)| found > b) {
            best = Some((group, found));
        }
        if found >= LINES_UP {
            break;
        }
    }
    best
}

/// The agreement at the best offset for one group's turn, scale and mirror: the query's
/// centre tried on each reference cell, a sample of its cells measured, then the best offset
/// refined in scale and within a cell, measured on every cell, until the whole design lines
/// up.
fn at_best_offset(query: &FeatureSet, reference: &FeatureSet, group: &MatchGroup) -> Option<f32> {
    let (q, r) = (&query.local, &reference.local);
    let (query_size, reference_size) = ((q.width, q.height), (r.width, r.height));
    let map = &reference.inks;
    let (cell_width, cell_height) = map.cell_size(r.width, r.height);
    let centre = (q.width as f32 / 2.0, q.height as f32 / 2.0);
    let measure = |(x, y): (f32, f32), scale: f32, stride: usize| {
        let placement = Placement::new(group, q.width, centre, (x, y), scale);
        agreement(
            &query.inks,
            map,
            query_size,
            reference_size,
            stride,
            |x, y| placement.apply(x, y),
        )
    };
    let mut best: Option<(f32, (f32, f32))> = None;
    for row in 0..map.height {
        for column in 0..map.width {
            let target = (
                (f32::from(column) + 0.5) * cell_width,
                (f32::from(row) + 0.5) * cell_height,
            );
            if let Some(found) = measure(target, 1.0, COARSE_STRIDE)
                && best.is_none_or(|(b, _)| found > b)
            {
                best = Some((found, target));
            }
        }
    }
    let (_, (x, y)) = best?;
    let mut refined = None;
    for scale in SCALE_STEPS {
        for i in OFFSET_STEPS {
            for j in OFFSET_STEPS {
                let found = measure((x + i * cell_width, y + j * cell_height), scale, 1);
                if found > refined {
                    refined = found;
                }
                if refined.is_some_and(|r| r >= LINES_UP) {
                    return refined;
                }
            }
        }
    }
    refined
}

/// A similarity transform from the query, mirrored first where the group was, onto the
/// reference: reference = c · query + t, in complex numbers.
struct Placement {
    mirrored: bool,
    width: f32,
    c: (f32, f32),
    t: (f32, f32),
}

impl Placement {
    /// The group's transform, its scale times `scale`, that carries the query's `centre` to
    /// `target`.
    fn new(
        group: &MatchGroup,
        width: u32,
        centre: (f32, f32),
        target: (f32, f32),
        scale: f32,
    ) -> Placement {
        let (sin, cos) = group.rotation_degrees.to_radians().sin_cos();
        let c = (group.scale * scale * cos, group.scale * scale * sin);
        let mut placement = Placement {
            mirrored: group.mirrored,
            width: width as f32,
            c,
            t: (0.0, 0.0),
        };
        let moved = placement.apply(centre.0, centre.1);
        placement.t = (target.0 - moved.0, target.1 - moved.1);
        placement
    }

    fn apply(&self, x: f32, y: f32) -> (f32, f32) {
        let x = if self.mirrored {
            self.width - 1.0 - x
        } else {
            x
        };
        let (c, t) = (self.c, self.t);
        (c.0 * x - c.1 * y + t.0, c.1 * x + c.0 * y + t.1)
    }
}

/// How well each query ink lies where one reference ink lies, where `place` carries the
/// centres of the query's cells (one in `stride` each way; in pixels of the keypoint images,
/// whose sizes are given) onto the reference: the share of samples that find their query
/// ink's commonest partner, corrected for chance, the reference's commonest ink in the overlap
/// (0 no better than chance, 1 every sample). `None` when less than [`MIN_OVERLAP`] of the
/// samples land, or every landing sample finds one ink.
fn agreement(
    query_map: &InkMap,
    reference_map: &InkMap,
    (query_width, query_height): (u32, u32),
    (reference_width, reference_height): (u32, u32),
    stride: usize,
    place: impl Fn(f32, f32) -> (f32, f32),
) -> Option<f32> {
    let (inks, reference_inks) = (query_map.inks.len(), reference_map.inks.len());
    if query_map.width == 0 || query_map.height == 0 || inks == 0 || reference_inks == 0 {
        return None;
    }
    let (cell_width, cell_height) = query_map.cell_size(query_width, query_height);
    let mut votes = vec![0u32; inks * reference_inks];
    let (mut sampled, mut landed) = (0u32, 0u32);
    for row in (0..query_map.height).step_by(stride) {
        for column in (0..query_map.width).step_by(stride) {
            sampled += 1;
            let (x, y) = place(
                (f32::from(column) + 0.5) * cell_width,
                (f32::from(row) + 0.5) * cell_height,
            );
            let reference_ink = reference_map.ink_under((x, y), reference_width, reference_height);
            let query_ink = query_map.ink_at(i32::from(column), i32::from(row));
            if let (Some(qi), Some(ri)) = (query_ink, reference_ink) {
                votes[qi * reference_inks + ri] += 1;
                landed += 1;
            }
        }
    }
    if landed == 0 || (landed as f32) < MIN_OVERLAP * sampled as f32 {
        return None;
    }
    let agreeing: u32 = votes
        .chunks_exact(reference_inks)
        .map(|partners| partners.iter().copied().max().unwrap_or(0))
        .sum();
    let commonest = (0..reference_inks)
        .map(|ri| votes.iter().skip(ri).step_by(reference_inks).sum::<u32>())
        .max()
        .unwrap_or(0);
    let (agreeing, chance) = (
        agreeing as f32 / landed as f32,
        commonest as f32 / landed as f32,
    );
    (chance < 1.0).then(|| ((agreeing - chance) / (1.0 - chance)).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::extract;
    use crate::normalize::normalize;
    use crate::search::local::{QueryDescriptors, Region, verify};
    use image::RgbImage;

    fn features(image: &RgbImage) -> FeatureSet {
        extract(&normalize(image))
    }

    fn fixture(name: &str) -> RgbImage {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        image::open(path).unwrap().to_rgb8()
    }

    fn evidence(query: &FeatureSet, reference: &FeatureSet) -> LocalEvidence {
        verify(&QueryDescriptors::new(&query.local), &reference.local, None)
    }

    #[test]
    fn a_crop_or_a_turn_lines_up_as_a_whole_and_motifs_placed_anew_do_not() {
        let original = features(&fixture("print_a.png"));
        for name in ["print_a_recoloured_crop.png", "print_a_rot90.png"] {
            let copy = features(&fixture(name));
            let found = evidence(&copy, &original);
            assert!(found.groups.len() > 1, "{name}: {:?}", found.groups);
            let (_, agreement) = whole_design_agreement(&copy, &original, &found).unwrap();
            assert!(agreement >= LINES_UP, "{name}: {agreement}");
            assert!(carrying_group(&copy, &original, &found).is_some(), "{name}");
        }
        let rearranged = features(&fixture("print_a_rearranged.png"));
        let found = evidence(&rearranged, &original);
        let (_, agreement) = whole_design_agreement(&rearranged, &original, &found).unwrap();
        assert!(agreement < 0.3, "{agreement}");
        assert_eq!(carrying_group(&rearranged, &original, &found), None);
    }

    /// A grain of two close shades, pixel by pixel: its ink map changes from cell to cell.
    fn grain(seed: u32) -> RgbImage {
        let mut state = seed;
        RgbImage::from_fn(256, 256, |_, _| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            if state >> 16 & 1 == 0 {
                image::Rgb([120, 100, 90])
            } else {
                image::Rgb([150, 130, 110])
            }
        })
    }

    fn groups_of(sizes: &[usize]) -> LocalEvidence {
        let region = Region {
            x: 0.0,
            y: 0.0,
            width: 1.0,
            height: 1.0,
        };
        LocalEvidence {
            groups: sizes
                .iter()
                .map(|&matches| MatchGroup {
                    mirrored: false,
                    rotation_degrees: 0.0,
                    scale: 1.0,
                    matches,
                    query_region: region,
                    reference_region: region,
                })
                .collect(),
            ..LocalEvidence::default()
        }
    }

    #[test]
    fn where_the_map_cannot_tell_the_largest_group_decides() {
        let texture = features(&grain(3));
        assert_eq!(texture.inks.inks.len(), 2, "both shades are inks");
        assert_eq!(
            whole_design_agreement(&texture, &texture, &groups_of(&[20, 4])),
            None
        );
        let carrying = |sizes: &[usize]| carrying_group(&texture, &texture, &groups_of(sizes));
        assert_eq!(carrying(&[4, 20, 3]), Some(1));
        assert_eq!(carrying(&[20, 14]), None);
    }
}
