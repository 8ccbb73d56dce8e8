//! The keypoint index: for a query keypoint, which registered prints hold one like it. A
//! general graph index spent about 2.5 KB per registered keypoint (docs/scale.md); this one
//! spends 36 bytes, with nothing to link or reload point by point.
//!
//! - Each descriptor becomes a 256-bit [`Code`]: the signs of fixed random projections of the
//!   descriptor less its mean, so the Hamming distance between two codes follows the angle
//!   between the descriptors (Charikar's random-hyperplane hashing).
//! - Codes are filed in posting lists by a two-level [`Vocabulary`] of binary centres,
//!   trained on the registered codes by k-majority (k-means for bit strings, as the binary
//!   vocabulary trees of image retrieval do) and trained again each time the index grows
//!   fourfold, up to 16,384 lists. A lookup scans the lists whose centres are nearest the query's code.
//! - A code that comes close is checked against the exact descriptor, read from the print's
//!   features (held once, shared with the verifier), so "lands near" means what the
//!   verifier's match distance means.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::features::FeatureSet;
use crate::features::keypoints::{DESCRIPTOR_LEN, Descriptor, MAX_KEYPOINTS};

/// A descriptor as 256 bits.
pub type Code = [u64; 4];
const CODE_BITS: usize = 256;

/// Codes further apart than this are not checked against the exact descriptor. Among the
/// fixtures' descriptors, pairs within the verifier's match distance differ in at most 59 bits
/// and 2.5% of the other pairs come this close (`close_descriptors_have_close_codes`).
const SHORTLIST_BITS: u32 = 64;
/// An index smaller than this is scanned whole: training would cost more than it saves.
const TRAIN_AT: usize = 8192;
/// Trained again once it holds this many times the keypoints it was trained on, until a
/// training has had the most lists and a full sample: another would only move the centres, and
/// would hold registrations for longer each time (3.6 s at 2.1M keypoints).
const RETRAIN_GROWTH: usize = 4;
/// Keypoints per posting list just after training.
const LIST_TARGET: usize = 32;
const MAX_BRANCHING: usize = 128;
/// Codes a vocabulary level is trained on, per centre.
const SAMPLE_PER_CENTRE: usize = 32;
const TRAINING_ROUNDS: usize = 6;
/// A lookup follows this many top-level centres and scans this many lists below them.
const PROBE_TOP: usize = 3;
const PROBE_LISTS: usize = 8;
/// Bits of a posting entry that number the keypoint within its print.
const KEYPOINT_BITS: u32 = 7;
const _: () = assert!(MAX_KEYPOINTS <= 1 << KEYPOINT_BITS);

/// Fixed random directions (Gaussian, from a seeded generator), one per code bit.
static PROJECTIONS: LazyLock<Vec<[f32; DESCRIPTOR_LEN]>> = LazyLock::new(|| {
    let mut state: u64 = 0x6875_6178_696e_6721; // "huaxing!"
    let mut uniform = move || {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..CODE_BITS)
        .map(|_| {
            std::array::from_fn(|_| {
                // Box–Muller
                let (u, v) = (uniform().max(f64::MIN_POSITIVE), uniform());
                ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
            })
        })
        .collect()
});

/// A descriptor's code.
pub fn code_of(descriptor: &Descriptor) -> Code {
    let mean = descriptor.iter().map(|&v| f32::from(v)).sum::<f32>() / DESCRIPTOR_LEN as f32;
    let centred: [f32; DESCRIPTOR_LEN] = std::array::from_fn(|i| f32::from(descriptor[i]) - mean);
    let mut code = [0u64; 4];
    for (bit, direction) in PROJECTIONS.iter().enumerate() {
        let dot: f32 = direction.iter().zip(&centred).map(|(a, b)| a * b).sum();
        if dot > 0.0 {
            code[bit / 64] |= 1 << (bit % 64);
        }
    }
    code
}

pub fn hamming(a: &Code, b: &Code) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// Euclidean distance between byte descriptors, summed in integers (exact, and vectorised by
/// the compiler).
pub fn descriptor_distance(a: &[u8], b: &[u8]) -> f32 {
    let sum: u32 = a
        .iter()
        .zip(b)
        .map(|(x, y)| {
            let d = u32::from(x.abs_diff(*y));
            d * d
        })
        .sum();
    (sum as f32).sqrt()
}

fn nearest(centres: &[Code], code: &Code) -> usize {
    (0..centres.len())
        .min_by_key(|&i| hamming(&centres[i], code))
        .expect("at least one centre")
}

/// `k` centres for `codes` by k-majority: assign each code to its nearest centre, set each
/// bit of a centre to the majority of its codes' bits, repeat. Deterministic: the first
/// centres are codes spread evenly through the input.
fn k_majority(codes: &[Code], k: usize) -> Vec<Code> {
    let k = k.min(codes.len()).max(1);
    let mut centres: Vec<Code> = (0..k).map(|i| codes[i * codes.len() / k]).collect();
    for _ in 0..TRAINING_ROUNDS {
        let mut ones = vec![[0u32; CODE_BITS]; k];
        let mut sizes = vec![0u32; k];
        for code in codes {
            let c = nearest(&centres, code);
            sizes[c] += 1;
            for (word, &bits) in code.iter().enumerate() {
                let mut bits = bits;
                while bits != 0 {
                    ones[c][word * 64 + bits.trailing_zeros() as usize] += 1;
                    bits &= bits - 1;
                }
            }
        }
        for c in (0..k).filter(|&c| sizes[c] > 0) {
            let mut centre = [0u64; 4];
            for (bit, &count) in ones[c].iter().enumerate() {
                if 2 * count > sizes[c] {
                    centre[bit / 64] |= 1 << (bit % 64);
                }
            }
            centres[c] = centre;
        }
    }
    centres
}

/// Two levels of binary centres; each leaf owns one posting list.
#[derive(Clone, Debug, PartialEq)]
struct Vocabulary {
    top: Vec<Code>,
    /// The leaves below top centre `t` are `leaves[leaf_start[t]..leaf_start[t + 1]]`.
    leaf_start: Vec<u32>,
    leaves: Vec<Code>,
    /// Keypoints it was trained on.
    trained_on: usize,
}

impl Vocabulary {
    /// Trains on `codes` (a sample of the index, in registration order) for about
    /// `keypoints / LIST_TARGET` lists.
    fn train(codes: &[Code], keypoints: usize) -> Vocabulary {
        let branching = ((keypoints / LIST_TARGET) as f64)
            .sqrt()
            .ceil()
            .clamp(2.0, MAX_BRANCHING as f64) as usize;
        let top = k_majority(codes, branching);
        let mut below: Vec<Vec<Code>> = vec![Vec::new(); top.len()];
        for code in codes {
            below[nearest(&top, code)].push(*code);
        }
        let mut leaf_start = vec![0u32];
        let mut leaves = Vec::new();
        for (t, members) in below.iter().enumerate() {
            if members.is_empty() {
                leaves.push(top[t]);
            } else {
                leaves.extend(k_majority(members, branching));
            }
            leaf_start.push(leaves.len() as u32);
        }
        Vocabulary {
            top,
            leaf_start,
            leaves,
            trained_on: keypoints,
        }
    }

    fn leaves_below(&self, t: usize) -> std::ops::Range<usize> {
        self.leaf_start[t] as usize..self.leaf_start[t + 1] as usize
    }

    /// The list a code is filed in.
    fn list_of(&self, code: &Code) -> usize {
        let below = self.leaves_below(nearest(&self.top, code));
        below.start + nearest(&self.leaves[below], code)
    }

    /// The lists a lookup scans: the nearest leaves below the nearest top centres.
    fn lists_near(&self, code: &Code) -> Vec<usize> {
        let mut tops: Vec<(u32, usize)> = self
            .top
            .iter()
            .enumerate()
            .map(|(t, centre)| (hamming(centre, code), t))
            .collect();
        tops.sort_unstable();
        let mut leaves: Vec<(u32, usize)> = tops
            .iter()
            .take(PROBE_TOP)
            .flat_map(|&(_, t)| self.leaves_below(t))
            .map(|leaf| (hamming(&self.leaves[leaf], code), leaf))
            .collect();
        leaves.sort_unstable();
        leaves
            .into_iter()
            .take(PROBE_LISTS)
            .map(|(_, l)| l)
            .collect()
    }
}

/// The codes filed under one leaf, and whose keypoints they are: `slot << KEYPOINT_BITS |
/// keypoint`.
#[derive(Clone, Debug, Default, PartialEq)]
struct PostingList {
    codes: Vec<Code>,
    entries: Vec<u32>,
}

#[derive(Default)]
struct Contents {
    /// `None` while the index is too small to train: one list holds every code.
    vocabulary: Option<Vocabulary>,
    lists: Vec<PostingList>,
    /// Prints by slot, and the slot of each print.
    prints: Vec<(u64, Arc<FeatureSet>)>,
    slots: HashMap<u64, u32>,
    keypoints: usize,
}

impl Contents {
    fn file(&mut self, slot: u32, codes: &[Code]) {
        for (k, code) in codes.iter().enumerate() {
            let list = match &self.vocabulary {
                Some(vocabulary) => vocabulary.list_of(code),
                None => 0,
            };
            self.lists[list].codes.push(*code);
            self.lists[list]
                .entries
                .push(slot << KEYPOINT_BITS | k as u32);
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

    /// A vocabulary trained on the present codes, and the lists refiled under it.
    fn retrained(&self) -> (Vocabulary, Vec<PostingList>) {
        let all = || self.lists.iter().flat_map(|l| l.codes.iter());
        let branching = ((self.keypoints / LIST_TARGET) as f64).sqrt().ceil() as usize;
        let wanted = SAMPLE_PER_CENTRE * branching.clamp(2, MAX_BRANCHING).pow(2);
        let stride = self.keypoints.div_ceil(wanted).max(1);
        let sample: Vec<Code> = all().step_by(stride).copied().collect();
        let vocabulary = Vocabulary::train(&sample, self.keypoints);
        let mut lists = vec![PostingList::default(); vocabulary.leaves.len()];
        for list in &self.lists {
            for (code, entry) in list.codes.iter().zip(&list.entries) {
                let to = &mut lists[vocabulary.list_of(code)];
                to.codes.push(*code);
                to.entries.push(*entry);
            }
        }
        (vocabulary, lists)
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
                lists: vec![PostingList::default()],
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
        let codes: Vec<Code> = features.local.descriptors.iter().map(code_of).collect();
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
        contents.prints.push((seq, features));
        contents.slots.insert(seq, slot);
        contents.file(slot, codes);
    }

    /// Adds many prints, computing their codes in parallel, and trains once at the end.
    pub fn insert_many(&self, prints: &[(u64, Arc<FeatureSet>)]) {
        use rayon::prelude::*;
        let codes: Vec<Vec<Code>> = prints
            .par_iter()
            .map(|(_, f)| f.local.descriptors.iter().map(code_of).collect())
            .collect();
        let _inserting = self.inserting.lock().expect("keypoint insertion lock");
        for ((seq, features), codes) in prints.iter().zip(&codes) {
            self.insert_codes(*seq, features.clone(), codes);
        }
    }

    /// Trains the vocabulary when the index has grown enough since it was last trained.
    pub fn train_if_needed(&self) {
        let _inserting = self.inserting.lock().expect("keypoint insertion lock");
        if self.read().needs_training() {
            self.train();
        }
    }

    /// Called with `inserting` held.
    fn train(&self) {
        let started = Instant::now();
        let (vocabulary, lists) = self.read().retrained();
        let mut contents = self.contents.write().expect("keypoint index lock");
        tracing::info!(
            keypoints = contents.keypoints,
            lists = lists.len(),
            "keypoint vocabulary trained in {:.1} s",
            started.elapsed().as_secs_f32()
        );
        contents.vocabulary = Some(vocabulary);
        contents.lists = lists;
    }

    /// The registered prints with a keypoint within `max_distance` of `descriptor`, among the
    /// `k` nearest such keypoints found; a print once for each of its keypoints there.
    pub fn prints_near(&self, descriptor: &Descriptor, k: usize, max_distance: f32) -> Vec<u64> {
        let code = code_of(descriptor);
        let contents = self.read();
        let lists = match &contents.vocabulary {
            Some(vocabulary) => vocabulary.lists_near(&code),
            None => vec![0],
        };
        let mut found: Vec<(f32, u64)> = Vec::new();
        for list in lists.iter().map(|&l| &contents.lists[l]) {
            for (candidate, &entry) in list.codes.iter().zip(&list.entries) {
                if hamming(&code, candidate) > SHORTLIST_BITS {
                    continue;
                }
                let (seq, features) = &contents.prints[(entry >> KEYPOINT_BITS) as usize];
                let keypoint = (entry & ((1 << KEYPOINT_BITS) - 1)) as usize;
                let distance =
                    descriptor_distance(descriptor, &features.local.descriptors[keypoint]);
                if distance < max_distance {
                    found.push((distance, *seq));
                }
            }
        }
        found.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        found.into_iter().take(k).map(|(_, seq)| seq).collect()
    }
}

/// Bumped when the dump's layout changes.
const DUMP_FORMAT: u32 = 1;
const MAGIC: &[u8; 8] = b"HXKPIDX\0";

/// Writes `len` then the words, little-endian.
fn write_words(
    out: &mut impl Write,
    words: impl ExactSizeIterator<Item = u64>,
) -> std::io::Result<()> {
    out.write_all(&(words.len() as u64).to_le_bytes())?;
    for word in words {
        out.write_all(&word.to_le_bytes())?;
    }
    Ok(())
}

/// Reads what [`write_words`] wrote, refusing a length beyond `limit`.
fn read_words(input: &mut impl Read, limit: usize) -> std::io::Result<Vec<u64>> {
    let len = read_u64(input)? as usize;
    if len > limit {
        return Err(std::io::Error::other("a length beyond the file"));
    }
    let mut bytes = vec![0u8; len * 8];
    input.read_exact(&mut bytes)?;
    Ok(bytes
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect())
}

fn read_u64(input: &mut impl Read) -> std::io::Result<u64> {
    let mut bytes = [0u8; 8];
    input.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

fn codes_to_words(codes: &[Code]) -> impl ExactSizeIterator<Item = u64> + '_ {
    codes.as_flattened().iter().copied()
}

fn words_to_codes(words: Vec<u64>) -> std::io::Result<Vec<Code>> {
    if !words.len().is_multiple_of(4) {
        return Err(std::io::Error::other("codes of the wrong length"));
    }
    Ok(words
        .chunks_exact(4)
        .map(|w| [w[0], w[1], w[2], w[3]])
        .collect())
}

/// Counts what passes through it into a CRC-32, so the dump's last four bytes check the rest.
struct Checked<T> {
    inner: T,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for Checked<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
}

impl KeypointIndex {
    /// Writes the index to `path` atomically (a fresh file, synced, renamed over the old).
    pub fn save(&self, path: &Path, feature_version: u32) -> Result<()> {
        let staging = path.with_extension("new");
        let contents = self.read();
        let write = || -> std::io::Result<()> {
            let file = File::create(&staging)?;
            let mut out = Checked {
                inner: BufWriter::new(file),
                crc: crc32fast::Hasher::new(),
            };
            out.write_all(MAGIC)?;
            out.write_all(&DUMP_FORMAT.to_le_bytes())?;
            out.write_all(&feature_version.to_le_bytes())?;
            write_words(&mut out, contents.prints.iter().map(|(seq, _)| *seq))?;
            match &contents.vocabulary {
                None => write_words(&mut out, std::iter::empty())?,
                Some(v) => {
                    write_words(&mut out, [v.trained_on as u64].into_iter())?;
                    write_words(&mut out, codes_to_words(&v.top))?;
                    write_words(&mut out, v.leaf_start.iter().map(|&s| u64::from(s)))?;
                    write_words(&mut out, codes_to_words(&v.leaves))?;
                }
            }
            out.write_all(&(contents.lists.len() as u64).to_le_bytes())?;
            for list in &contents.lists {
                write_words(&mut out, codes_to_words(&list.codes))?;
                write_words(&mut out, list.entries.iter().map(|&e| u64::from(e)))?;
            }
            let crc = out.crc.clone().finalize();
            let mut inner = out.inner;
            inner.write_all(&crc.to_le_bytes())?;
            inner.into_inner().map_err(|e| e.into_error())?.sync_all()
        };
        write().map_err(|e| Error::io(&staging, e))?;
        fs::rename(&staging, path).map_err(|e| Error::io(path, e))
    }

    /// Reads a dump written by [`KeypointIndex::save`], attaching each print's features
    /// (`features_of`). `Ok(None)` when there is none, it was made for other features, or it
    /// holds a print `features_of` does not know; an error when it is there but damaged.
    pub fn load(
        path: &Path,
        feature_version: u32,
        features_of: impl Fn(u64) -> Option<Arc<FeatureSet>>,
    ) -> Result<Option<KeypointIndex>> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        let size = file.metadata().map_err(|e| Error::io(path, e))?.len() as usize;
        let mut input = Checked {
            inner: BufReader::with_capacity(1 << 20, file),
            crc: crc32fast::Hasher::new(),
        };
        let damaged = |what: &str| Error::Index(format!("{}: {what}", path.display()));
        let mut header = [0u8; 16];
        input
            .read_exact(&mut header)
            .map_err(|e| Error::io(path, e))?;
        if &header[..8] != MAGIC {
            return Err(damaged("not a keypoint index"));
        }
        let format = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        let version = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes"));
        if format != DUMP_FORMAT || version != feature_version {
            return Ok(None);
        }
        let limit = size / 8;
        let read = |input: &mut Checked<BufReader<File>>| {
            read_words(input, limit).map_err(|e| Error::io(path, e))
        };
        let seqs = read(&mut input)?;
        let trained_on = read(&mut input)?;
        let vocabulary = match trained_on.as_slice() {
            [] => None,
            [trained_on] => {
                let top = words_to_codes(read(&mut input)?).map_err(|e| Error::io(path, e))?;
                let leaf_start: Vec<u32> =
                    read(&mut input)?.into_iter().map(|s| s as u32).collect();
                let leaves = words_to_codes(read(&mut input)?).map_err(|e| Error::io(path, e))?;
                let consistent = leaf_start.len() == top.len() + 1
                    && leaf_start.windows(2).all(|w| w[0] <= w[1])
                    && leaf_start.last().map(|&l| l as usize) == Some(leaves.len());
                if top.is_empty() || !consistent {
                    return Err(damaged("inconsistent vocabulary"));
                }
                Some(Vocabulary {
                    top,
                    leaf_start,
                    leaves,
                    trained_on: *trained_on as usize,
                })
            }
            _ => return Err(damaged("inconsistent vocabulary")),
        };
        let list_count = read_u64(&mut input).map_err(|e| Error::io(path, e))? as usize;
        let expected_lists = vocabulary.as_ref().map_or(1, |v| v.leaves.len());
        if list_count != expected_lists {
            return Err(damaged("wrong number of lists"));
        }
        let mut lists = Vec::with_capacity(list_count);
        let mut keypoints = 0;
        for _ in 0..list_count {
            let codes = words_to_codes(read(&mut input)?).map_err(|e| Error::io(path, e))?;
            let entries: Vec<u32> = read(&mut input)?.into_iter().map(|e| e as u32).collect();
            if codes.len() != entries.len() {
                return Err(damaged("a list's codes and entries differ in number"));
            }
            keypoints += codes.len();
            lists.push(PostingList { codes, entries });
        }
        let crc = input.crc.clone().finalize();
        let stored = read_u32(&mut input.inner).map_err(|e| Error::io(path, e))?;
        if crc != stored {
            return Err(damaged("checksum mismatch"));
        }
        let mut prints = Vec::with_capacity(seqs.len());
        for seq in seqs {
            match features_of(seq) {
                Some(features) => prints.push((seq, features)),
                None => return Ok(None),
            }
        }
        let in_range = lists.iter().flat_map(|l| &l.entries).all(|&entry| {
            prints
                .get((entry >> KEYPOINT_BITS) as usize)
                .is_some_and(|(_, f)| {
                    ((entry & ((1 << KEYPOINT_BITS) - 1)) as usize) < f.local.descriptors.len()
                })
        });
        let expected: usize = prints.iter().map(|(_, f)| f.local.descriptors.len()).sum();
        if !in_range || keypoints != expected {
            return Err(damaged("entries do not match the prints' keypoints"));
        }
        let slots: HashMap<u64, u32> = prints
            .iter()
            .enumerate()
            .map(|(slot, (seq, _))| (*seq, slot as u32))
            .collect();
        if slots.len() != prints.len() {
            return Err(damaged("a print listed twice"));
        }
        Ok(Some(KeypointIndex {
            contents: RwLock::new(Contents {
                vocabulary,
                lists,
                prints,
                slots,
                keypoints,
            }),
            inserting: Mutex::new(()),
        }))
    }
}

fn read_u32(input: &mut impl Read) -> std::io::Result<u32> {
    let mut bytes = [0u8; 4];
    input.read_exact(&mut bytes)?;
    Ok(u32::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::local::MATCH_DISTANCE;

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
                .descriptors
        })
        .collect()
    }

    #[test]
    fn close_descriptors_have_close_codes() {
        let descriptors = fixture_descriptors();
        let codes: Vec<Code> = descriptors.iter().map(code_of).collect();
        let (mut close, mut close_kept, mut far, mut far_kept, mut worst) = (0, 0, 0, 0, 0);
        for i in 0..descriptors.len() {
            for j in i + 1..descriptors.len() {
                let bits = hamming(&codes[i], &codes[j]);
                if descriptor_distance(&descriptors[i], &descriptors[j]) < MATCH_DISTANCE {
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
        let mut state = 7u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize
        };
        (0..prints)
            .map(|p| {
                let descriptors: Vec<Descriptor> = (0..per_print)
                    .map(|_| {
                        let mut d = base[next() % base.len()];
                        for v in d.iter_mut() {
                            *v = v.saturating_add((next() % 9) as u8).saturating_sub(4);
                        }
                        d
                    })
                    .collect();
                let mut features = FeatureSet::default();
                features.local.keypoints = vec![
                    crate::features::keypoints::Keypoint {
                        x: 0.0,
                        y: 0.0,
                        scale: 1.0,
                        angle: 0.0
                    };
                    per_print
                ];
                features.local.descriptors = descriptors;
                (1000 + p, Arc::new(features))
            })
            .collect()
    }

    /// Every print with a keypoint within the match distance, by exhaustive search.
    fn exact(prints: &[(u64, Arc<FeatureSet>)], query: &Descriptor) -> HashSet<u64> {
        prints
            .iter()
            .filter(|(_, f)| {
                f.local
                    .descriptors
                    .iter()
                    .any(|d| descriptor_distance(d, query) < MATCH_DISTANCE)
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
        for query in queries {
            let truth = exact(prints, query);
            let got: HashSet<u64> = index
                .prints_near(query, usize::MAX, MATCH_DISTANCE)
                .into_iter()
                .collect();
            assert!(got.is_subset(&truth), "a print beyond the match distance");
            wanted += truth.len();
            found += got.len();
        }
        found as f32 / wanted.max(1) as f32
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
        assert_eq!(
            recall(&index, &prints[..60], &queries),
            1.0,
            "an untrained index scans all"
        );
        for (seq, features) in &prints[60..] {
            index.insert(*seq, features.clone());
        }
        assert_eq!(index.len(), 12_000);
        let lists = index.read().lists.len();
        assert!(
            lists >= 100,
            "trained at 8,192 keypoints into {lists} lists"
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
            KeypointIndex::load(&path, 4, features_of)
                .unwrap()
                .is_none(),
            "other feature version"
        );
        assert!(
            KeypointIndex::load(&path, 3, |seq| (seq != 1010)
                .then(|| features_of(seq))
                .flatten())
            .unwrap()
            .is_none(),
            "a print the registry lacks"
        );
        let reloaded = KeypointIndex::load(&path, 3, features_of).unwrap().unwrap();
        assert_eq!(reloaded.prints(), index.prints());
        assert_eq!(reloaded.read().vocabulary, index.read().vocabulary);
        assert_eq!(recall(&reloaded, &prints, &queries), trained);
        let more = noisy_prints(&base, 1, 50);
        reloaded.insert(5, more[0].1.clone());
        assert!(
            reloaded
                .prints_near(&more[0].1.local.descriptors[0], 100, 1.0)
                .contains(&5)
        );

        let mut bytes = fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(
            KeypointIndex::load(&path, 3, features_of).is_err(),
            "one changed byte"
        );
        fs::write(&path, &bytes[..middle]).unwrap();
        assert!(
            KeypointIndex::load(&path, 3, features_of).is_err(),
            "a cut file"
        );
        assert!(
            KeypointIndex::load(&dir.path().join("none"), 3, features_of)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn training_stops_once_the_vocabulary_is_complete() {
        let at = |trained_on: usize, keypoints: usize| Contents {
            vocabulary: Some(Vocabulary {
                top: vec![[0; 4]],
                leaf_start: vec![0, 1],
                leaves: vec![[0; 4]],
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
