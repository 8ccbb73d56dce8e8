//! Registered repeat units, found by their harmonics with a flat scan. Only prints that show a
//! repeat are held, each as a short vector, so a scan stays cheap; the full comparison
//! ([`crate::features::repeat_unit::UnitComparison`]) then ranks what the scan found.

use std::sync::RwLock;

use crate::features::repeat_unit::{self, RepeatUnit};

#[derive(Default)]
pub struct UnitIndex {
    entries: RwLock<Vec<(u64, Vec<f32>)>>,
}

impl UnitIndex {
    pub fn insert(&self, seq: u64, unit: &RepeatUnit) {
        self.entries
            .write()
            .expect("unit index lock")
            .push((seq, repeat_unit::harmonics(unit)));
    }

    /// The `k` registered units whose harmonics come closest to any of the query's (one per
    /// relabelling of its lattice), closest first, with that cosine similarity.
    pub fn nearest(&self, query: &[Vec<f32>], k: usize) -> Vec<(u64, f32)> {
        let entries = self.entries.read().expect("unit index lock");
        let mut hits: Vec<(u64, f32)> = entries
            .iter()
            .map(|(seq, harmonics)| {
                let best = query
                    .iter()
                    .map(|q| q.iter().zip(harmonics).map(|(a, b)| a * b).sum::<f32>())
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
