//! Registered repeat units, found by their harmonics with a flat scan. Only prints that show a
//! repeat are held, each as a short vector, so a scan stays cheap; the full comparison
//! ([`crate::features::repeat_unit::UnitComparison`]) then ranks what the scan found.

use std::sync::RwLock;

use crate::features::repeat_unit::{self, RepeatUnit};

/// Lanes of the dot product: independent sums the compiler keeps in vector registers. A
/// single running sum made the scan wait on each addition: it was a tenth of an import's time
/// at 80,000 prints.
const LANES: usize = 8;

#[derive(Default)]
pub struct UnitIndex {
    entries: RwLock<Entries>,
}

/// Every unit's harmonics one after another, each padded with zeros to a whole number of
/// lanes, so a scan reads one contiguous block.
#[derive(Default)]
struct Entries {
    seqs: Vec<u64>,
    harmonics: Vec<f32>,
}

/// The harmonics' length once padded.
fn padded(len: usize) -> usize {
    len.div_ceil(LANES) * LANES
}

impl Entries {
    fn push(&mut self, seq: u64, harmonics: &[f32]) {
        self.seqs.push(seq);
        self.harmonics.extend(harmonics);
        let padding = padded(harmonics.len()) - harmonics.len();
        self.harmonics.extend(std::iter::repeat_n(0.0, padding));
    }
}

/// Units given by their harmonics ([`repeat_unit::harmonics`]), as start-up fills the index.
impl FromIterator<(u64, Vec<f32>)> for UnitIndex {
    fn from_iter<I: IntoIterator<Item = (u64, Vec<f32>)>>(units: I) -> Self {
        let mut entries = Entries::default();
        for (seq, harmonics) in units {
            entries.push(seq, &harmonics);
        }
        UnitIndex {
            entries: RwLock::new(entries),
        }
    }
}

impl UnitIndex {
    pub fn insert(&self, seq: u64, unit: &RepeatUnit) {
        let harmonics = repeat_unit::harmonics(unit);
        self.entries
            .write()
            .expect("unit index lock")
            .push(seq, &harmonics);
    }

    /// The `k` registered units whose harmonics come closest to any of the query's (one per
    /// relabelling of its lattice), closest first, with that cosine similarity.
    pub fn nearest(&self, query: &[Vec<f32>], k: usize) -> Vec<(u64, f32)> {
        let Some(len) = query.first().map(Vec::len) else {
            return Vec::new();
        };
        let stride = padded(len);
        let query: Vec<Vec<f32>> = query
            .iter()
            .map(|q| {
                let mut q = q.clone();
                q.resize(stride, 0.0);
                q
            })
            .collect();
        let entries = self.entries.read().expect("unit index lock");
        let mut hits: Vec<(u64, f32)> = entries
            .seqs
            .iter()
            .zip(entries.harmonics.chunks_exact(stride))
            .map(|(seq, harmonics)| {
                let best = query
                    .iter()
                    .map(|q| dot(q, harmonics))
                    .fold(f32::MIN, f32::max);
                (*seq, best)
            })
            .collect();
        let k = k.min(hits.len());
        if k == 0 {
            return Vec::new();
        }
        let order = |a: &(u64, f32), b: &(u64, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        hits.select_nth_unstable_by(k - 1, order);
        hits.truncate(k);
        hits.sort_by(order);
        hits
    }
}

/// The dot product of two vectors whose length is a whole number of [`LANES`].
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0.0f32; LANES];
    for (a, b) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for ((sum, a), b) in sums.iter_mut().zip(a).zip(b) {
            *sum += a * b;
        }
    }
    sums.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::repeat_unit::UnitComparison;
    use crate::features::repeat_unit::tests::{tiled, unit_of};

    /// The unit of a generated repeat, a different design for every seed.
    fn unit(seed: u64) -> RepeatUnit {
        unit_of(&tiled(seed, 96.0, (0.0, 0.0), 384, false)).expect("a repeat")
    }

    #[test]
    fn a_registered_unit_comes_first_for_itself_with_its_cosine() {
        let index = UnitIndex::default();
        for seq in 1..=12 {
            index.insert(seq, &unit(seq));
        }
        let query = UnitComparison::new(&unit(7));
        let nearest = index.nearest(query.harmonics(), 5);
        assert_eq!(nearest.len(), 5);
        assert_eq!(nearest[0].0, 7);
        assert!((nearest[0].1 - 1.0).abs() < 1e-4, "{nearest:?}");
        // The others in order, each with the cosine a plain sum gives.
        let plain = |seq: u64| {
            let registered = repeat_unit::harmonics(&unit(seq));
            query
                .harmonics()
                .iter()
                .map(|q| q.iter().zip(&registered).map(|(a, b)| a * b).sum::<f32>())
                .fold(f32::MIN, f32::max)
        };
        for pair in nearest.windows(2) {
            assert!(pair[0].1 >= pair[1].1);
        }
        for (seq, cosine) in &nearest {
            assert!((cosine - plain(*seq)).abs() < 1e-4);
        }
        assert!(index.nearest(query.harmonics(), 0).is_empty());
        // Filled at once, as start-up fills it: the same answers.
        let filled: UnitIndex = (1..=12)
            .map(|seq| (seq, repeat_unit::harmonics(&unit(seq))))
            .collect();
        assert_eq!(filled.nearest(query.harmonics(), 5), nearest);
        assert!(
            UnitIndex::default()
                .nearest(query.harmonics(), 5)
                .is_empty()
        );
    }
}
