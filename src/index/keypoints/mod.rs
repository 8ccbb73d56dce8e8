//! The keypoint index: for a query keypoint, which registered prints hold one like it. A
//! general graph index spent about 2.5 KB per registered keypoint (docs/scale.md); this one
//! spends 20 bytes, with nothing to link or reload point by point.
//!
//! - Each descriptor becomes a 128-bit [`Code`]: the signs of fixed random projections of the
//!   descriptor less its mean, so the Hamming distance between two codes follows the angle
//!   between the descriptors (Charikar's random-hyperplane hashing).
//! - Codes are filed in posting lists by a two-level [`Vocabulary`] of binary centres,
//!   trained on the registered codes by k-majority (k-means for bit strings, as the binary
//!   vocabulary trees of image retrieval do) and trained again each time the index grows
//!   fourfold, up to 16,384 leaves. A [`Leaf`] where codes crowd splits them into lists of
//!   its own, and again at each fourfold growth, so lists stay short once the vocabulary
//!   stops growing. A lookup scans the lists whose centres are nearest the query's code,
//!   under the leaves nearest it.
//! - A code that comes close is checked against the descriptor itself (held once, shared with
//!   the print's features and so with the verifier), so "lands near" means what the verifier's
//!   match distance means.

mod code;
mod dump;
mod leaf;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use code::{
    Code, LIST_TARGET, MAX_BRANCHING, SAMPLE_PER_CENTRE, Vocabulary, close_codes, code_of,
    keep_smallest,
};
pub use code::{nearest_below, squared_bound, squared_distance_below};
pub use dump::KeypointDump;
use leaf::{Leaf, PostingList};

use crate::features::FeatureSet;
use crate::features::keypoints::{Descriptor, PackedDescriptor, REGISTERED_KEYPOINTS};

/// Codes further apart than this are not checked against the descriptor. Among the
/// fixtures' descriptors, all but one of the 14,580 pairs within the verifier's match distance
/// differ in at most 28 of 128 bits (the worst in 37), and 0.9% of the other pairs come this
/// close: each check is a cache miss. (`close_descriptors_have_close_codes`.)
const SHORTLIST_BITS: u32 = 28;
/// Of those, only the closest in bits are checked, this many per neighbour asked for. A common
/// keypoint (a stripe end, a plain edge) has hundreds of codes within the bound in a large
/// registry (375 on average per lookup at 10,000 prints, 70 of them within the match
/// distance), and checking them all was most of an import's time; codes closer in bits hold
/// closer descriptors, so the nearest few are among the first checked.
const SHORTLIST_PER_NEIGHBOUR: usize = 4;
/// Of the lists of split leaves under the leaves a lookup follows, it scans the nearest this
/// many (leaves that have not split are short, and scanned whole).
const PROBE_LISTS: usize = 32;
/// An index smaller than this is scanned whole: training would cost more than it saves.
const TRAIN_AT: usize = 8192;
/// Trained again once it holds this many times the keypoints it was trained on, until a
/// training has had the most leaves and a full sample: another would only move the centres, and
/// would hold registrations for longer each time (3.6 s at 2.1M keypoints). Past that, leaves
/// split where codes crowd.
const RETRAIN_GROWTH: usize = 4;
/// Bits of a posting entry that number the keypoint within its print.
const KEYPOINT_BITS: u32 = 8;
const _: () = assert!(REGISTERED_KEYPOINTS <= 1 << KEYPOINT_BITS);

#[derive(Default)]
struct Contents {
    /// `None` while the index is too small to train: one leaf holds every code, unsplit.
    vocabulary: Option<Vocabulary>,
    /// By leaf of the vocabulary. Entries are `slot << KEYPOINT_BITS | keypoint`.
    leaves: Vec<Leaf>,
    /// Prints by slot with their descriptors (shared with their features), and the slot of
    /// each print.
    prints: Vec<(u64, Arc<[PackedDescriptor]>)>,
    slots: HashMap<u64, u32>,
    keypoints: usize,
}

impl Contents {
    fn file(&mut self, slot: u32, codes: &[Code]) {
        // Before the first training the one leaf is the whole index, scanned whole: no splits.
        let may_split = self.vocabulary.is_some();
        for (k, code) in codes.iter().enumerate() {
            let leaf = match &self.vocabulary {
                Some(vocabulary) => vocabulary.leaf_of(code),
                None => 0,
            };
            self.leaves[leaf].file(*code, slot << KEYPOINT_BITS | k as u32, may_split);
        }
        self.keypoints += codes.len();
    }

    fn needs_training(&self) -> bool {
        match &self.vocabulary {
            None => self.keypoints >= TRAIN_AT,
            Some(v) => {
                let complete = SAMPLE_PER_CENTRE * MAX_BRANCHING.pow(2);
                v.trained_on < complete && self.keypoints >= RETRAIN_GROWTH * v.trained_on
            }
        }
    }

    /// A vocabulary trained on the present codes, and the codes refiled under it.
    fn retrained(&self) -> (Vocabulary, Vec<Leaf>) {
        let lists = || self.leaves.iter().flat_map(|leaf| &leaf.lists);
        let all = || lists().flat_map(|l| l.codes.iter());
        let branching = ((self.keypoints / LIST_TARGET) as f64).sqrt().ceil() as usize;
        let wanted = SAMPLE_PER_CENTRE * branching.clamp(2, MAX_BRANCHING).pow(2);
        let stride = self.keypoints.div_ceil(wanted).max(1);
        let sample: Vec<Code> = all().step_by(stride).copied().collect();
        let vocabulary = Vocabulary::train(&sample, self.keypoints);
        let mut leaves = vec![Leaf::default(); vocabulary.leaves.len()];
        for list in lists() {
            for (code, entry) in list.codes.iter().zip(&list.entries) {
                leaves[vocabulary.leaf_of(code)].file(*code, *entry, true);
            }
        }
        (vocabulary, leaves)
    }
}

/// The index. Lookups share it; one insertion at a time changes it.
pub struct KeypointIndex {
    contents: RwLock<Contents>,
    /// Held by an insertion from start to end, so a retraining (which reads the lists for
    /// seconds, then swaps them) sees no insertion in between, while lookups go on.
    inserting: Mutex<()>,
}

impl Default for KeypointIndex {
    fn default() -> Self {
        KeypointIndex {
            contents: RwLock::new(Contents {
                leaves: vec![Leaf::default()],
                ..Contents::default()
            }),
            inserting: Mutex::new(()),
        }
    }
}

impl KeypointIndex {
    /// Registered keypoints in the index.
    pub fn len(&self) -> usize {
        self.read().keypoints
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The prints in the index.
    pub fn prints(&self) -> HashSet<u64> {
        self.read().slots.keys().copied().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Contents> {
        self.contents.read().expect("keypoint index lock")
    }

    /// Adds a print's keypoints; a print already present is left as it is. Trains the
    /// vocabulary again when the index has grown enough (at most a few seconds, a few
    /// times in the index's life; lookups go on meanwhile).
    pub fn insert(&self, seq: u64, features: Arc<FeatureSet>) {
        let codes = codes_of(&features.local.descriptors);
        let _inserting = self.inserting.lock().expect("keypoint insertion lock");
        self.insert_codes(seq, features, &codes);
        if self.read().needs_training() {
            self.train();
        }
    }

    /// Adds prints without training; [`KeypointIndex::train_if_needed`] follows.
    fn insert_codes(&self, seq: u64, features: Arc<FeatureSet>, codes: &[Code]) {
        let mut contents = self.contents.write().expect("keypoint index lock");
        if contents.slots.contains_key(&seq) || codes.is_empty() {
            return;
        }
        let slot = contents.prints.len() as u32;
        contents
            .prints
            .push((seq, features.local.descriptors.clone()));
        contents.slots.insert(seq, slot);
        contents.file(slot, codes);
    }

    /// Adds many prints, computing their codes in parallel, and trains once at the end.
    pub fn insert_many(&self, prints: &[(u64, Arc<FeatureSet>)]) {
        use rayon::prelude::*;
        let codes: Vec<Vec<Code>> = prints
            .par_iter()
            .map(|(_, f)| codes_of(&f.local.descriptors))
            .collect();
        let _inserting = self.inserting.lock().expect("keypoint insertion lock");
        for ((seq, features), codes) in prints.iter().zip(&codes) {
            self.insert_codes(*seq, features.clone(), codes);
        }
    }

    /// Trains the vocabulary when the index has grown enough since it was last trained; says
    /// whether it did.
    pub fn train_if_needed(&self) -> bool {
        let _inserting = self.inserting.lock().expect("keypoint insertion lock");
        let needed = self.read().needs_training();
        if needed {
            self.train();
        }
        needed
    }

    /// Called with `inserting` held.
    fn train(&self) {
        let started = Instant::now();
        let (vocabulary, leaves) = self.read().retrained();
        let mut contents = self.contents.write().expect("keypoint index lock");
        tracing::info!(
            keypoints = contents.keypoints,
            leaves = leaves.len(),
            "keypoint vocabulary trained in {:.1} s",
            started.elapsed().as_secs_f32()
        );
        contents.vocabulary = Some(vocabulary);
        contents.leaves = leaves;
    }

    /// The registered keypoints within `max_distance` of `descriptor`, as (print, keypoint's
    /// index in the print), the `k` nearest found (of the 4k whose codes are closest), nearest
    /// first. `buffers` is the caller's working room, reused from its last lookup.
    pub fn keypoints_near(
        &self,
        descriptor: &Descriptor,
        k: usize,
        max_distance: f32,
        buffers: &mut LookupBuffers,
    ) -> Vec<(u64, usize)> {
        let code = code_of(descriptor);
        let contents = self.read();
        lists_to_scan(&contents, &code, buffers);
        let LookupBuffers {
            lists,
            close,
            shortlist,
            found,
            ..
        } = buffers;
        shortlist.clear();
        for &(leaf, list) in lists.iter() {
            let list = &contents.leaves[leaf].lists[list];
            close.clear();
            close_codes(&code, &list.codes, SHORTLIST_BITS, close);
            shortlist.extend(close.iter().map(|&(bits, i)| (bits, list.entries[i])));
        }
        let checked = SHORTLIST_PER_NEIGHBOUR.saturating_mul(k);
        if checked < shortlist.len() {
            shortlist.select_nth_unstable(checked);
            shortlist.truncate(checked);
        }
        let bound = squared_bound(max_distance);
        let held = |entry: u32| {
            let (seq, descriptors) = &contents.prints[(entry >> KEYPOINT_BITS) as usize];
            let keypoint = (entry & ((1 << KEYPOINT_BITS) - 1)) as usize;
            ((*seq, keypoint), &descriptors[keypoint])
        };
        // Each held descriptor lies with its own print, far from the others, and waiting for
        // memory was most of a lookup's time: ask for all of them before reading any, so that
        // the waits overlap.
        for &(_, entry) in shortlist.iter() {
            prefetch(held(entry).1);
        }
        found.clear();
        for &(_, entry) in shortlist.iter() {
            let (keypoint, descriptor_held) = held(entry);
            if let Some(squared) =
                squared_distance_below(descriptor, &descriptor_held.unpack(), bound)
            {
                found.push((squared, keypoint));
            }
        }
        keep_smallest(found, k);
        found.iter().map(|&(_, keypoint)| keypoint).collect()
    }
}

/// Working room for a run of lookups, kept from one to the next: a query's 768 to 1,280
/// lookups each filled a dozen vectors afresh, and the allocator's work and the waits on its
/// lock were a seventh of the CPU of an import into 100,000 prints (docs/scale.md, step 35).
#[derive(Default)]
pub struct LookupBuffers {
    /// The vocabulary's top centres, as (bits, centre).
    tops: Vec<(u32, usize)>,
    /// The leaves followed, as (bits, leaf), nearest first.
    leaves: Vec<(u32, usize)>,
    /// The lists of one split leaf, as (bits, list).
    distances: Vec<(u32, usize)>,
    /// The lists of every split leaf followed, as (bits, position in `leaves`, list).
    ranked_lists: Vec<(u32, usize, usize)>,
    /// The lists to scan, as (leaf, list within it).
    lists: Vec<(usize, usize)>,
    /// Codes close to the query's in one list, as (bits, position in the list).
    close: Vec<(u32, usize)>,
    /// Entries of close codes over every list scanned, as (bits, entry).
    shortlist: Vec<(u32, u32)>,
    /// Keypoints within the match distance, as (squared distance, (print, keypoint)).
    found: Vec<(u32, (u64, usize))>,
}

/// Fills `buffers.lists` with the lists a lookup of `code` scans: under the leaves nearest it,
/// the whole list of each leaf that has not split, and of the split leaves' lists the
/// `PROBE_LISTS` nearest. Only when they are more than that are they ranked: in a registry of
/// 10,000 most split leaves hold a few lists, and ranking them all for nothing made an import
/// 7% slower.
fn lists_to_scan(contents: &Contents, code: &Code, buffers: &mut LookupBuffers) {
    let LookupBuffers {
        tops,
        leaves,
        distances,
        ranked_lists,
        lists,
        ..
    } = buffers;
    match &contents.vocabulary {
        Some(vocabulary) => vocabulary.leaves_near(code, tops, leaves),
        None => {
            leaves.clear();
            leaves.push((0, 0));
        }
    }
    let is_split = |leaf: usize| !contents.leaves[leaf].centres.is_empty();
    let split_lists: usize = leaves
        .iter()
        .filter(|&&(_, leaf)| is_split(leaf))
        .map(|&(_, leaf)| contents.leaves[leaf].lists.len())
        .sum();
    lists.clear();
    for &(_, leaf) in leaves.iter() {
        if !is_split(leaf) {
            lists.push((leaf, 0));
        } else if split_lists <= PROBE_LISTS {
            lists.extend((0..contents.leaves[leaf].lists.len()).map(|list| (leaf, list)));
        }
    }
    if split_lists <= PROBE_LISTS {
        return;
    }
    // Ties keep the order of the leaves, nearest first, then of the lists within each.
    ranked_lists.clear();
    for (position, &(_, leaf)) in leaves.iter().enumerate() {
        if is_split(leaf) {
            distances.clear();
            contents.leaves[leaf].lists_by_distance(code, distances);
            ranked_lists.extend(distances.iter().map(|&(bits, list)| (bits, position, list)));
        }
    }
    keep_smallest(ranked_lists, PROBE_LISTS);
    lists.extend(
        ranked_lists
            .iter()
            .map(|&(_, position, list)| (leaves[position].1, list)),
    );
}

/// The codes of a print's descriptors, in keypoint order.
fn codes_of(descriptors: &[PackedDescriptor]) -> Vec<Code> {
    descriptors.iter().map(|d| code_of(&d.unpack())).collect()
}

/// Starts loading `descriptor` into the cache, where the CPU has a way to.
fn prefetch(descriptor: &PackedDescriptor) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = std::ptr::from_ref(descriptor).cast::<i8>();
        // SAFETY: SSE is part of x86-64, and a prefetch reads nothing: any address is sound.
        // 64 bytes: two cache lines unless aligned.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(start);
            _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(63));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = descriptor;
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::code::hamming;
    use super::*;
    use crate::error::Result;
    use crate::features::keypoints::MATCH_DISTANCE;

    /// Descriptors of the fixture prints and their copies.
    fn fixture_descriptors() -> Vec<Descriptor> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        [
            "print_a.png",
            "print_a_rearranged.png",
            "print_a_recoloured_crop.png",
            "print_a_rot90.png",
            "print_b.png",
        ]
        .iter()
        .flat_map(|name| {
            let bytes = fs::read(dir.join(name)).unwrap();
            crate::engine::analyze(&bytes)
                .unwrap()
                .features
                .local
                .unpacked_descriptors()
        })
        .collect()
    }

    #[test]
    fn close_descriptors_have_close_codes() {
        let descriptors = fixture_descriptors();
        let codes: Vec<Code> = descriptors.iter().map(code_of).collect();
        let match_bound = squared_bound(MATCH_DISTANCE);
        let (mut close, mut close_kept, mut far, mut far_kept, mut worst) = (0, 0, 0, 0, 0);
        for i in 0..descriptors.len() {
            for j in i + 1..descriptors.len() {
                let bits = hamming(&codes[i], &codes[j]);
                if squared_distance_below(&descriptors[i], &descriptors[j], match_bound).is_some() {
                    close += 1;
                    close_kept += usize::from(bits <= SHORTLIST_BITS);
                    worst = worst.max(bits);
                } else {
                    far += 1;
                    far_kept += usize::from(bits <= SHORTLIST_BITS);
                }
            }
        }
        eprintln!(
            "{} descriptors: {close_kept}/{close} close pairs kept (worst {worst} bits), {far_kept}/{far} others",
            descriptors.len()
        );
        assert!(close > 100);
        assert!(close_kept as f32 >= 0.99 * close as f32);
        assert!((far_kept as f32) < 0.05 * far as f32);
    }

    /// `prints` synthetic prints of `per_print` keypoints: fixture descriptors with a little
    /// noise, so each fixture descriptor has near copies in several prints.
    fn noisy_prints(
        base: &[Descriptor],
        prints: u64,
        per_print: usize,
    ) -> Vec<(u64, Arc<FeatureSet>)> {
        let mut word = code::test_words(7);
        let mut next = move || (word() >> 33) as usize;
        (0..prints)
            .map(|p| {
                let descriptors: Vec<PackedDescriptor> = (0..per_print)
                    .map(|_| {
                        let mut d = base[next() % base.len()];
                        for v in d.iter_mut() {
                            *v = v.saturating_add((next() % 9) as u8).saturating_sub(4);
                        }
                        PackedDescriptor::pack(&d)
                    })
                    .collect();
                let mut features = FeatureSet::default();
                features.local.keypoints =
                    vec![crate::features::keypoints::Keypoint::new(0, 0, 0, 1, 0.0); per_print];
                features.local.descriptors = descriptors.into();
                (1000 + p, Arc::new(features))
            })
            .collect()
    }

    /// Every print with a keypoint within the match distance, by exhaustive search.
    fn exact(prints: &[(u64, Arc<FeatureSet>)], query: &Descriptor) -> HashSet<u64> {
        prints
            .iter()
            .filter(|(_, f)| {
                f.local.descriptors.iter().any(|d| {
                    squared_distance_below(&d.unpack(), query, squared_bound(MATCH_DISTANCE))
                        .is_some()
                })
            })
            .map(|(seq, _)| *seq)
            .collect()
    }

    /// Share of the exactly found prints the index finds, over the queries.
    fn recall(
        index: &KeypointIndex,
        prints: &[(u64, Arc<FeatureSet>)],
        queries: &[Descriptor],
    ) -> f32 {
        let (mut wanted, mut found) = (0, 0);
        let mut buffers = LookupBuffers::default();
        for query in queries {
            let truth = exact(prints, query);
            let got: HashSet<u64> = index
                .keypoints_near(query, usize::MAX, MATCH_DISTANCE, &mut buffers)
                .into_iter()
                .map(|(seq, _)| seq)
                .collect();
            assert!(got.is_subset(&truth), "a print beyond the match distance");
            wanted += truth.len();
            found += got.len();
        }
        found as f32 / wanted.max(1) as f32
    }

    /// Reads a dump and joins it to the prints' features, as start-up does.
    fn load(
        path: &Path,
        feature_version: u32,
        features_of: impl Fn(u64) -> Option<Arc<FeatureSet>>,
    ) -> Result<Option<KeypointIndex>> {
        match KeypointDump::read(path, feature_version)? {
            Some(dump) => dump.attach(features_of),
            None => Ok(None),
        }
    }

    #[test]
    fn a_trained_index_finds_what_exhaustive_search_finds_and_survives_a_reload() {
        let base = fixture_descriptors();
        let prints = noisy_prints(&base, 120, 100);
        let index = KeypointIndex::default();
        index.insert_many(&prints[..60]);
        assert!(
            index.read().vocabulary.is_none(),
            "6,000 keypoints: not worth training"
        );
        let queries: Vec<Descriptor> = base.iter().step_by(5).copied().collect();
        // An untrained index scans every code: only the shortlist's bit limit loses any.
        let untrained = recall(&index, &prints[..60], &queries);
        assert!(untrained >= 0.99, "untrained recall {untrained}");
        for (seq, features) in &prints[60..] {
            index.insert(*seq, features.clone());
        }
        assert_eq!(index.len(), 12_000);
        let leaves = index.read().leaves.len();
        assert!(
            leaves >= 100,
            "trained at 8,192 keypoints into {leaves} leaves"
        );
        let split = index
            .read()
            .leaves
            .iter()
            .filter(|l| l.lists.len() > 1)
            .count();
        assert!(
            split > 0,
            "some leaves split, so the reload below reads split leaves"
        );
        let trained = recall(&index, &prints, &queries);
        assert!(trained >= 0.95, "recall {trained}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keypoints.bin");
        index.save(&path, 3).unwrap();
        let features_of = |seq| {
            prints
                .iter()
                .find(|(s, _)| *s == seq)
                .map(|(_, f)| f.clone())
        };
        assert!(
            load(&path, 4, features_of).unwrap().is_none(),
            "other feature version"
        );
        assert!(
            load(&path, 3, |seq| (seq != 1010)
                .then(|| features_of(seq))
                .flatten())
            .unwrap()
            .is_none(),
            "a print the registry lacks"
        );
        let reloaded = load(&path, 3, features_of).unwrap().unwrap();
        assert_eq!(reloaded.prints(), index.prints());
        assert_eq!(reloaded.read().vocabulary, index.read().vocabulary);
        assert_eq!(recall(&reloaded, &prints, &queries), trained);
        let more = noisy_prints(&base, 1, 50);
        reloaded.insert(5, more[0].1.clone());
        assert!(
            reloaded
                .keypoints_near(
                    &more[0].1.local.descriptors[0].unpack(),
                    100,
                    1.0,
                    &mut LookupBuffers::default(),
                )
                .contains(&(5, 0))
        );

        let mut bytes = fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(load(&path, 3, features_of).is_err(), "one changed byte");
        fs::write(&path, &bytes[..middle]).unwrap();
        assert!(load(&path, 3, features_of).is_err(), "a cut file");
        assert!(
            load(&dir.path().join("none"), 3, features_of)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn training_stops_once_the_vocabulary_is_complete() {
        let at = |trained_on: usize, keypoints: usize| Contents {
            vocabulary: Some(Vocabulary {
                top: vec![Code::default()],
                leaf_start: vec![0, 1],
                leaves: vec![Code::default()],
                trained_on,
            }),
            keypoints,
            ..Contents::default()
        };
        assert!(!Contents::default().needs_training());
        assert!(!at(100_000, 399_999).needs_training());
        assert!(at(100_000, 400_000).needs_training());
        assert!(
            !at(600_000, 3_000_000).needs_training(),
            "a full sample into the most lists: no more pauses"
        );
    }
}
