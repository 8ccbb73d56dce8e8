//! The codes under one leaf of the vocabulary, in posting lists that split as the leaf grows:
//! how the index keeps its lists short past the vocabulary's 16,384 leaves. Training a larger
//! vocabulary would hold registrations for longer at each step: 3.6 s for 16,384 leaves, and
//! its cost grows with the cube of the branching (a sample of 32 codes a centre, each compared
//! with every centre of its level), so ≈ 30 s for 65,536. Splitting one leaf costs about ten
//! milliseconds at most (8,192 codes into 128 lists), and happens only where codes crowd.

use super::code::{CODE_BITS, Code, LIST_TARGET, MAX_BRANCHING, SAMPLE_PER_CENTRE, k_majority};
use super::code::{close_codes, nearest};

/// A leaf splits again each time it holds this many times the codes it last split.
const SPLIT_GROWTH: usize = 4;

/// Codes and whose keypoints they are (the index's posting entries), in step.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct PostingList {
    pub(super) codes: Vec<Code>,
    pub(super) entries: Vec<u32>,
}

impl PostingList {
    pub(super) fn len(&self) -> usize {
        self.codes.len()
    }

    fn push(&mut self, code: Code, entry: u32) {
        push_sparingly(&mut self.codes, code);
        push_sparingly(&mut self.entries, entry);
    }
}

/// Pushes onto a posting list, growing it by an eighth when full rather than doubling it: the
/// lists are many (tens of thousands) and each gains a few codes now and then, so doubling
/// would leave up to half of the index's memory allocated and unused.
fn push_sparingly<T>(list: &mut Vec<T>, item: T) {
    if list.len() == list.capacity() {
        list.reserve_exact(list.capacity() / 8 + 4);
    }
    list.push(item);
}

/// One posting list until the leaf holds `SPLIT_GROWTH × LIST_TARGET` codes; then a list per
/// centre, the centres trained on the leaf's own codes (k-majority, as the vocabulary), about
/// `LIST_TARGET` codes a list, up to `MAX_BRANCHING` lists.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Leaf {
    /// One per list; empty while the leaf has one list.
    pub(super) centres: Vec<Code>,
    /// Never empty.
    pub(super) lists: Vec<PostingList>,
    /// Codes it holds.
    pub(super) len: usize,
    /// Codes it held when it last split; 0 if it never has.
    pub(super) split_at: usize,
}

impl Default for Leaf {
    fn default() -> Self {
        Leaf {
            centres: Vec::new(),
            lists: vec![PostingList::default()],
            len: 0,
            split_at: 0,
        }
    }
}

impl Leaf {
    /// Files a code; splits the leaf when `may_split` and it has grown enough.
    pub(super) fn file(&mut self, code: Code, entry: u32, may_split: bool) {
        let list = if self.centres.is_empty() {
            0
        } else {
            nearest(&self.centres, &code)
        };
        self.lists[list].push(code, entry);
        self.len += 1;
        if may_split && self.needs_split() {
            self.split();
        }
    }

    fn needs_split(&self) -> bool {
        self.centres.len() < MAX_BRANCHING
            && self.len >= SPLIT_GROWTH * self.split_at.max(LIST_TARGET)
    }

    /// Trains centres on the leaf's codes and refiles them, a list per centre.
    fn split(&mut self) {
        let len = self.len;
        let wanted = (len / LIST_TARGET).clamp(1, MAX_BRANCHING);
        let stride = len.div_ceil(SAMPLE_PER_CENTRE * wanted).max(1);
        let sample: Vec<Code> = self
            .lists
            .iter()
            .flat_map(|l| &l.codes)
            .step_by(stride)
            .copied()
            .collect();
        let centres = k_majority(&sample, wanted);
        let mut lists = vec![PostingList::default(); centres.len()];
        for list in &self.lists {
            for (code, entry) in list.codes.iter().zip(&list.entries) {
                lists[nearest(&centres, code)].push(*code, *entry);
            }
        }
        self.centres = centres;
        self.lists = lists;
        self.split_at = len;
    }

    /// Adds to `found` how far each list's centre lies from `code`, as (bits, list); nothing
    /// while the leaf has one list.
    pub(super) fn lists_by_distance(&self, code: &Code, found: &mut Vec<(u32, usize)>) {
        close_codes(code, &self.centres, CODE_BITS as u32, found);
    }
}

#[cfg(test)]
mod tests {
    use super::super::code::{hamming, test_words};
    use super::*;

    #[test]
    fn a_growing_leaf_splits_into_short_lists_and_keeps_every_code() {
        let mut word = test_words(11);
        // Codes around 20 random centres, a few bits off each.
        let seeds: Vec<Code> = (0..20).map(|_| [word(), word()]).collect();
        let codes: Vec<Code> = (0..3000)
            .map(|i| {
                let mut code = seeds[i % seeds.len()];
                code[0] ^= 1 << (word() % 64);
                code[1] ^= 1 << (word() % 64);
                code
            })
            .collect();
        let mut leaf = Leaf::default();
        for (i, code) in codes.iter().enumerate().take(127) {
            leaf.file(*code, i as u32, true);
        }
        assert_eq!(leaf.lists.len(), 1, "127 codes: not yet");
        let mut unsplit = leaf.clone();
        for (i, code) in codes.iter().enumerate().skip(127) {
            leaf.file(*code, i as u32, true);
            unsplit.file(*code, i as u32, false);
        }
        assert_eq!(unsplit.lists.len(), 1, "not allowed to split");
        assert_eq!(leaf.split_at, 2048, "split at 128, 512 and 2,048 codes");
        assert_eq!(leaf.lists.len(), leaf.centres.len());
        assert!(leaf.lists.len() >= 16, "{} lists", leaf.lists.len());
        let longest = leaf.lists.iter().map(PostingList::len).max().unwrap();
        assert!(longest <= 400, "longest list {longest} of 3,000 codes");

        let mut entries: Vec<u32> = leaf.lists.iter().flat_map(|l| l.entries.clone()).collect();
        entries.sort_unstable();
        assert_eq!(entries, (0..3000).collect::<Vec<u32>>());
        for (l, list) in leaf.lists.iter().enumerate() {
            for (code, entry) in list.codes.iter().zip(&list.entries) {
                assert_eq!(*code, codes[*entry as usize], "code and entry in step");
                let here = hamming(&leaf.centres[l], code);
                assert!(leaf.centres.iter().all(|c| hamming(c, code) >= here));
            }
        }
        let mut ranked = Vec::new();
        leaf.lists_by_distance(&codes[5], &mut ranked);
        let nearest_list = ranked.iter().min().unwrap().1;
        assert!(leaf.lists[nearest_list].entries.contains(&5));
    }
}
