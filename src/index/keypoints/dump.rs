//! The keypoint index on disk: one file with a magic, its format and feature version, every
//! print's sequence number, the vocabulary, and each leaf's centres and posting lists as
//! little-endian words, and a CRC-32 of all of it. Written to a fresh file and renamed over
//! the old one.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use super::code::{CODE_WORDS, Code, Vocabulary};
use super::{Contents, KEYPOINT_BITS, KeypointIndex, Leaf, PostingList};
use crate::error::{Error, Result};
use crate::features::FeatureSet;

/// Bumped when the dump's layout changes.
/// 2: codes summed in eight lanes (a rare last bit may differ from format 1's).
/// 3: codes of 128 bits.
/// 4: leaves split into lists of their own.
const DUMP_FORMAT: u32 = 4;
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
    if !words.len().is_multiple_of(CODE_WORDS) {
        return Err(std::io::Error::other("codes of the wrong length"));
    }
    Ok(words
        .chunks_exact(CODE_WORDS)
        .map(|w| w.try_into().expect("chunk of code length"))
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
            out.write_all(&(contents.leaves.len() as u64).to_le_bytes())?;
            for leaf in &contents.leaves {
                write_words(&mut out, [leaf.split_at as u64].into_iter())?;
                write_words(&mut out, codes_to_words(&leaf.centres))?;
                for list in &leaf.lists {
                    write_words(&mut out, codes_to_words(&list.codes))?;
                    write_words(&mut out, list.entries.iter().map(|&e| u64::from(e)))?;
                }
            }
            let crc = out.crc.clone().finalize();
            let mut inner = out.inner;
            inner.write_all(&crc.to_le_bytes())?;
            inner.into_inner().map_err(|e| e.into_error())?.sync_all()
        };
        write().map_err(|e| Error::io(&staging, e))?;
        fs::rename(&staging, path).map_err(|e| Error::io(path, e))
    }
}

/// A keypoint index as read from its dump, before its prints are joined to their features:
/// start-up reads it while it reads the registry.
pub struct KeypointDump {
    path: PathBuf,
    seqs: Vec<u64>,
    /// By print: one past its highest keypoint in the lists.
    keypoints_needed: Vec<u16>,
    vocabulary: Option<Vocabulary>,
    leaves: Vec<Leaf>,
    keypoints: usize,
}

impl KeypointDump {
    /// Reads a dump written by [`KeypointIndex::save`]. `Ok(None)` when there is none or it was
    /// made for other features; an error when it is there but damaged.
    pub fn read(path: &Path, feature_version: u32) -> Result<Option<KeypointDump>> {
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
        let leaf_count = read_u64(&mut input).map_err(|e| Error::io(path, e))? as usize;
        let expected_leaves = vocabulary.as_ref().map_or(1, |v| v.leaves.len());
        if leaf_count != expected_leaves {
            return Err(damaged("wrong number of leaves"));
        }
        let mut leaves = Vec::with_capacity(leaf_count);
        let mut keypoints = 0;
        for _ in 0..leaf_count {
            let [split_at] = read(&mut input)?[..] else {
                return Err(damaged("a leaf without its size"));
            };
            let centres = words_to_codes(read(&mut input)?).map_err(|e| Error::io(path, e))?;
            let mut lists = Vec::with_capacity(centres.len().max(1));
            for _ in 0..centres.len().max(1) {
                let codes = words_to_codes(read(&mut input)?).map_err(|e| Error::io(path, e))?;
                let entries: Vec<u32> = read(&mut input)?.into_iter().map(|e| e as u32).collect();
                if codes.len() != entries.len() {
                    return Err(damaged("a list's codes and entries differ in number"));
                }
                keypoints += codes.len();
                lists.push(PostingList { codes, entries });
            }
            leaves.push(Leaf {
                len: lists.iter().map(PostingList::len).sum(),
                centres,
                lists,
                split_at: split_at as usize,
            });
        }
        let crc = input.crc.clone().finalize();
        let stored = read_u32(&mut input.inner).map_err(|e| Error::io(path, e))?;
        if crc != stored {
            return Err(damaged("checksum mismatch"));
        }
        // Each print's highest indexed keypoint, so that `attach` checks prints, not entries.
        let mut keypoints_needed = vec![0u16; seqs.len()];
        for &entry in leaves
            .iter()
            .flat_map(|l| &l.lists)
            .flat_map(|l| &l.entries)
        {
            let needed = keypoints_needed
                .get_mut((entry >> KEYPOINT_BITS) as usize)
                .ok_or_else(|| damaged("an entry of a print not listed"))?;
            *needed = (*needed).max((entry & ((1 << KEYPOINT_BITS) - 1)) as u16 + 1);
        }
        Ok(Some(KeypointDump {
            path: path.into(),
            seqs,
            keypoints_needed,
            vocabulary,
            leaves,
            keypoints,
        }))
    }

    /// The index, each print joined to its features (`features_of`). `Ok(None)` when the dump
    /// holds a print `features_of` does not know; an error when its entries do not match the
    /// prints' keypoints.
    pub fn attach(
        self,
        features_of: impl Fn(u64) -> Option<Arc<FeatureSet>>,
    ) -> Result<Option<KeypointIndex>> {
        let KeypointDump {
            path,
            seqs,
            keypoints_needed,
            vocabulary,
            leaves,
            keypoints,
        } = self;
        let damaged = |what: &str| Error::Index(format!("{}: {what}", path.display()));
        let mut prints = Vec::with_capacity(seqs.len());
        for seq in seqs {
            match features_of(seq) {
                Some(features) => prints.push((seq, features.local.descriptors.clone())),
                None => return Ok(None),
            }
        }
        let in_range = prints
            .iter()
            .zip(&keypoints_needed)
            .all(|((_, descriptors), &needed)| usize::from(needed) <= descriptors.len());
        let expected: usize = prints.iter().map(|(_, d)| d.len()).sum();
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
                leaves,
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
