//! Which ink of the query became which ink of the reference: the palette mapping of an
//! explanation. Where local features match, the neighbourhood of the query keypoint, carried by
//! the match's own turn, scale and mirror, lies on the same part of the design in the
//! reference; the inks found at both ends of many such samples pair up.

use serde::Serialize;

use super::local::{LocalEvidence, transform_between};
use crate::features::FeatureSet;
use crate::features::inks::hex;
use crate::features::keypoints::mirror_keypoint;

/// Samples around each matched keypoint: a square grid this many steps from the centre.
const REACH: i32 = 1;
/// Least share of all samples a query ink needs to be paired: fewer say little.
const MIN_SAMPLES_SHARE: f32 = 0.02;

/// One query ink and the reference ink that lies where it lies.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InkPair {
    pub query: String,
    pub reference: String,
    /// The share of this query ink's samples that found this reference ink.
    pub agreement: f32,
}

/// The inks of the query paired with the reference's, largest query ink first; empty when no
/// local features matched.
pub fn ink_pairs(
    query: &FeatureSet,
    reference: &FeatureSet,
    evidence: &LocalEvidence,
) -> Vec<InkPair> {
    let (query_map, reference_map) = (&query.inks, &reference.inks);
    let mut votes = vec![vec![0u32; reference_map.inks.len()]; query_map.inks.len()];
    let (q, r) = (&query.local, &reference.local);
    let (query_cell, _) = query_map.cell_size(q.width, q.height);
    for (matched, &ri) in evidence.matched.iter().zip(&evidence.matched_reference) {
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

fn grid() -> impl Iterator<Item = (i32, i32)> {
    (-REACH..=REACH).flat_map(|j| (-REACH..=REACH).map(move |i| (i, j)))
}

#[cfg(test)]
mod tests {
    use image::{Rgb, RgbImage, imageops};

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
}
