//! Which ink of the query became which ink of the reference: the palette mapping of an
//! explanation. Where local features match, the neighbourhood of the query keypoint, carried by
//! the match's own turn, scale and mirror, lies on the same part of the design in the
//! reference; the inks found at both ends of many such samples pair up. Where they are the same
//! colours more often than chance gives, the match is stronger evidence ([`same_colours`]).

use serde::Serialize;

use super::local::{QueryKeypoint, transform_between};
use crate::features::FeatureSet;
use crate::features::colour::delta_e;
use crate::features::inks::hex;
use crate::features::keypoints::mirror_keypoint;
use crate::normalize::srgb_to_lab;

/// Samples around each matched keypoint: a square grid this many steps from the centre.
const REACH: i32 = 1;
/// Least share of all samples a query ink needs to be paired: fewer say little.
const MIN_SAMPLES_SHARE: f32 = 0.02;
/// Two inks closer than this (CIE76 ΔE) count as the same colour: wide enough for a JPEG, a
/// print posterised anew and the shift of an ink's mean by its blended edges.
const SAME_COLOUR: f32 = 20.0;

/// One query ink and the reference ink that lies where it lies.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InkPair {
    pub query: String,
    pub reference: String,
    /// The share of this query ink's samples that found this reference ink.
    pub agreement: f32,
}

/// The inks of the query paired with the reference's, largest query ink first, from the
/// samples around the matched keypoints ([`sample_counts`]); empty when no local features
/// matched.
pub fn ink_pairs(query: &FeatureSet, reference: &FeatureSet, votes: &[Vec<u32>]) -> Vec<InkPair> {
    let (query_map, reference_map) = (&query.inks, &reference.inks);
    let total: u32 = votes.iter().flatten().sum();
    votes
        .iter()
        .enumerate()
        .filter_map(|(qi, row)| {
            let samples: u32 = row.iter().sum();
            if samples == 0 || (samples as f32) < MIN_SAMPLES_SHARE * total as f32 {
                return None;
            }
            let (ri, &found) = row.iter().enumerate().max_by_key(|(_, n)| **n)?;
            Some(InkPair {
                query: hex(query_map.inks[qi]),
                reference: hex(reference_map.inks[ri]),
                agreement: found as f32 / samples as f32,
            })
        })
        .collect()
}

/// How far the samples around matched keypoints ([`sample_counts`]) show the same colours at
/// both ends, above chance: (observed − expected) / (1 − expected), where
/// expected is the share that pairing the sampled inks at random gives (two prints on white
/// with black outlines agree in colour by chance), 0 at or below chance and where nothing
/// matched. A rearranged or partial copy keeps its motifs' inks; an unrelated print that
/// shares shapes seldom shares their colours.
pub fn same_colours(query: &FeatureSet, reference: &FeatureSet, votes: &[Vec<u32>]) -> f32 {
    let (query_inks, reference_inks) = (
        inks_in_lab(&query.inks.inks),
        inks_in_lab(&reference.inks.inks),
    );
    let total = votes.iter().flatten().sum::<u32>() as f32;
    if total == 0.0 {
        return 0.0;
    }
    let column_shares: Vec<f32> = (0..reference_inks.len())
        .map(|ri| votes.iter().map(|row| row[ri]).sum::<u32>() as f32 / total)
        .collect();
    let (mut observed, mut expected) = (0.0, 0.0);
    for (qi, row) in votes.iter().enumerate() {
        let row_share = row.iter().sum::<u32>() as f32 / total;
        for (ri, &found) in row.iter().enumerate() {
            if delta_e(query_inks[qi], reference_inks[ri]) < SAME_COLOUR {
                observed += found as f32 / total;
                expected += row_share * column_shares[ri];
            }
        }
    }
    ((observed - expected) / (1.0 - expected).max(f32::EPSILON)).max(0.0)
}

/// A print's inks as a distribution of colour: each ink in CIELAB with the share of the print
/// it covers. Read once for a query and compared with many prints ([`InkShares::difference`]).
pub struct InkShares {
    lab: Vec<[f32; 3]>,
    shares: Vec<f32>,
    mean: [f32; 3],
}

impl InkShares {
    pub fn of(print: &FeatureSet) -> Self {
        InkShares {
            lab: inks_in_lab(&print.inks.inks),
            shares: print.inks.shares(),
            mean: print.mean_colour,
        }
    }

    /// How far apart two prints' colours lie as distributions of ink (CIE76 ΔE): each ink's
    /// share times its ΔE to the nearest ink of the other print, summed both ways and halved.
    /// It orders prints that no evidence tells apart: a plain query lies nearer a plain print
    /// of its colour than a ground strewn with pale motifs whose mean colour is the same. The
    /// mean colours' ΔE where either print has no ink map.
    pub fn difference(&self, other: &InkShares) -> f32 {
        if self.lab.is_empty() || other.lab.is_empty() {
            return delta_e(self.mean, other.mean);
        }
        let one_way = |from: &InkShares, to: &InkShares| -> f32 {
            from.lab
                .iter()
                .zip(&from.shares)
                .map(|(ink, share)| {
                    let nearest = to.lab.iter().map(|other| delta_e(*ink, *other));
                    share * nearest.fold(f32::MAX, f32::min)
                })
                .sum()
        };
        (one_way(self, other) + one_way(other, self)) / 2.0
    }
}

/// Inks given in sRGB, in CIELAB.
fn inks_in_lab(inks: &[[u8; 3]]) -> Vec<[f32; 3]> {
    inks.iter().map(|ink| srgb_to_lab(*ink)).collect()
}

/// How many samples around the matched keypoints (query keypoint, reference keypoint) found
/// each pair of inks: `[query ink][reference ink]`. Counted once for a pair of prints, read by
/// both [`ink_pairs`] and [`same_colours`].
pub fn sample_counts(
    query: &FeatureSet,
    reference: &FeatureSet,
    pairs: impl Iterator<Item = (QueryKeypoint, usize)>,
) -> Vec<Vec<u32>> {
    let (query_map, reference_map) = (&query.inks, &reference.inks);
    let mut votes = vec![vec![0u32; reference_map.inks.len()]; query_map.inks.len()];
    let (q, r) = (&query.local, &reference.local);
    let (query_cell, _) = query_map.cell_size(q.width, q.height);
    for (matched, ri) in pairs {
        let (Some(&given), Some(&target)) = (q.keypoints.get(matched.index), r.keypoints.get(ri))
        else {
            continue;
        };
        let source = if matched.mirrored {
            mirror_keypoint(&given, q.width)
        } else {
            given
        };
        // `source` is already mirrored where the match was.
        let (turn, log2_scale) = transform_between(&source, false, q.width, &target);
        let (sin, cos) = turn.sin_cos();
        let scale = log2_scale.exp2();
        let step = source.scale().max(query_cell);
        for (i, j) in grid() {
            let (dx, dy) = (i as f32 * step, j as f32 * step);
            let (x, y) = (source.x() + dx, source.y() + dy);
            // Back to the query as given, to read its map.
            let x = if matched.mirrored {
                q.width as f32 - 1.0 - x
            } else {
                x
            };
            let reference_point = (
                target.x() + scale * (cos * dx - sin * dy),
                target.y() + scale * (sin * dx + cos * dy),
            );
            let query_ink = query_map.ink_under((x, y), q.width, q.height);
            let reference_ink = reference_map.ink_under(reference_point, r.width, r.height);
            if let (Some(qi), Some(ri)) = (query_ink, reference_ink) {
                votes[qi][ri] += 1;
            }
        }
    }
    votes
}

fn grid() -> impl Iterator<Item = (i32, i32)> {
    (-REACH..=REACH).flat_map(|j| (-REACH..=REACH).map(move |i| (i, j)))
}

#[cfg(test)]
mod tests {
    use image::{Rgb, RgbImage, imageops};

    use super::{same_colours, sample_counts};
    use crate::features::extract;
    use crate::normalize::normalize;
    use crate::search::{DEFAULT_COPY_THRESHOLD, Query, compare};

    fn rgb(hex: &str) -> [i32; 3] {
        let channel = |i: usize| i32::from_str_radix(&hex[1 + 2 * i..3 + 2 * i], 16).unwrap();
        [channel(0), channel(1), channel(2)]
    }

    #[test]
    fn a_new_colourway_maps_each_ink_to_the_one_it_replaced() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/print_a.png");
        let original = image::open(path).unwrap().to_rgb8();
        // Every ink replaced (red takes the blue channel's value, green red's, blue green's),
        // then the print mirrored and quarter-turned.
        let recoloured = RgbImage::from_fn(original.width(), original.height(), |x, y| {
            let [r, g, b] = original.get_pixel(x, y).0;
            Rgb([b, r, g])
        });
        let copy = imageops::rotate90(&imageops::flip_horizontal(&recoloured));
        let (query, reference) = (extract(&normalize(&copy)), extract(&normalize(&original)));
        let comparison = compare(
            &Query::alone(&query),
            &reference,
            None,
            DEFAULT_COPY_THRESHOLD,
        );
        let pairs = &comparison.explanation.palette;
        assert_eq!(pairs.len(), 4, "ground and three inks: {pairs:?}");
        for pair in pairs {
            let [r, g, b] = rgb(&pair.query);
            let expected = [g, b, r];
            let found = rgb(&pair.reference);
            assert!(
                expected.iter().zip(found).all(|(e, f)| (e - f).abs() <= 16),
                "{pair:?}"
            );
            assert!(pair.agreement > 0.6, "{pair:?}");
        }
    }

    #[test]
    fn a_copy_in_its_own_colours_shows_them_and_a_new_colourway_does_not() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/print_a.png");
        let original = image::open(path).unwrap().to_rgb8();
        let (width, height) = (original.width(), original.height());
        let turned = imageops::rotate90(
            &imageops::crop_imm(&original, 0, 0, width * 3 / 4, height * 3 / 4).to_image(),
        );
        let recoloured = RgbImage::from_fn(turned.width(), turned.height(), |x, y| {
            let [r, g, b] = turned.get_pixel(x, y).0;
            Rgb([b, r, g])
        });
        let reference = extract(&normalize(&original));
        let share = |copy: &RgbImage| {
            let query = extract(&normalize(copy));
            let comparison = compare(
                &Query::alone(&query),
                &reference,
                None,
                DEFAULT_COPY_THRESHOLD,
            );
            assert!(comparison.explanation.local.consistent_matches > 10);
            let samples = sample_counts(
                &query,
                &reference,
                comparison.explanation.local.matched_pairs(),
            );
            same_colours(&query, &reference, &samples)
        };
        let (kept, new) = (share(&turned), share(&recoloured));
        assert!(kept > 0.6, "its own colours: {kept}");
        // A grey ink keeps its colour when the channels turn: a new colourway shows some.
        assert!(new < 0.3, "a new colourway: {new}");
    }
}
