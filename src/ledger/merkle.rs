//! The Merkle tree of RFC 6962 §2.1 (RFC 9162 §2.1): tree hashes, inclusion and consistency
//! proofs, and their verification. Pure functions over leaf hashes: no I/O, so a verifier can
//! use this module alone.

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, a node hash or a root hash.
pub type Hash = [u8; 32];

/// `SHA-256(0x00 ‖ entry)`: the prefix keeps a leaf from passing for an interior node.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0u8]);
    hasher.update(entry);
    hasher.finalize().into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([1u8]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of an empty tree: the hash of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two smaller than `n` (n ≥ 2): where RFC 6962 splits a tree.
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// MTH(D[n]) over the leaf hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// PATH(m, D[n]): the audit path proving leaf `index` is in the tree of `leaves`.
pub fn inclusion_path(index: usize, leaves: &[Hash]) -> Vec<Hash> {
    assert!(index < leaves.len(), "leaf {index} is outside the tree");
    let mut path = Vec::new();
    let (mut index, mut leaves) = (index, leaves);
    // Walk down from the root, collecting the sibling subtree at each level; the RFC lists
    // them leaf-side first, so reverse at the end.
    while leaves.len() > 1 {
        let k = split(leaves.len());
        if index < k {
            path.push(root(&leaves[k..]));
            leaves = &leaves[..k];
        } else {
            path.push(root(&leaves[..k]));
            leaves = &leaves[k..];
            index -= k;
        }
    }
    path.reverse();
    path
}

/// PROOF(m, D[n]): the consistency proof between the tree of the first `first` leaves and the
/// tree of all `leaves`.
pub fn consistency_proof(first: usize, leaves: &[Hash]) -> Vec<Hash> {
    assert!(
        first <= leaves.len(),
        "the first tree is larger than the second"
    );
    if first == 0 || first == leaves.len() {
        return Vec::new();
    }
    let mut proof = Vec::new();
    subproof(first, leaves, true, &mut proof);
    proof
}

/// SUBPROOF(m, D[n], b) of RFC 6962 §2.1.2.
fn subproof(m: usize, leaves: &[Hash], whole_old_tree: bool, proof: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !whole_old_tree {
            proof.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &leaves[..k], whole_old_tree, proof);
        proof.push(root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, proof);
        proof.push(root(&leaves[..k]));
    }
}

/// The root an audit path implies for a leaf (RFC 9162 §2.1.3.2), or `None` when the path
/// cannot belong to a tree of that size.
pub fn root_from_inclusion(leaf: &Hash, index: u64, tree_size: u64, path: &[Hash]) -> Option<Hash> {
    if index >= tree_size {
        return None;
    }
    let (mut node, mut last) = (index, tree_size - 1);
    let mut hash = *leaf;
    for sibling in path {
        if last == 0 {
            return None;
        }
        if node & 1 == 1 || node == last {
            hash = node_hash(sibling, &hash);
            while node & 1 == 0 && node != 0 {
                node >>= 1;
                last >>= 1;
            }
        } else {
            hash = node_hash(&hash, sibling);
        }
        node >>= 1;
        last >>= 1;
    }
    (last == 0).then_some(hash)
}

/// Whether a consistency proof shows the tree (`second_size`, `second_root`) extends the tree
/// (`first_size`, `first_root`) by appending only (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    first_size: u64,
    first_root: &Hash,
    second_size: u64,
    second_root: &Hash,
    proof: &[Hash],
) -> bool {
    if first_size > second_size {
        return false;
    }
    if first_size == second_size {
        return proof.is_empty() && first_root == second_root;
    }
    if first_size == 0 {
        // Every tree extends the empty one.
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first_size.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let Some((start, rest)) = path.split_first() else {
        return false;
    };
    let (mut node, mut last) = (first_size - 1, second_size - 1);
    while node & 1 == 1 {
        node >>= 1;
        last >>= 1;
    }
    let (mut old, mut new) = (*start, *start);
    for sibling in rest {
        if last == 0 {
            return false;
        }
        if node & 1 == 1 || node == last {
            old = node_hash(sibling, &old);
            new = node_hash(sibling, &new);
            while node & 1 == 0 && node != 0 {
                node >>= 1;
                last >>= 1;
            }
        } else {
            new = node_hash(&new, sibling);
        }
        node >>= 1;
        last >>= 1;
    }
    &old == first_root && &new == second_root && last == 0
}

/// The roots of the perfect subtrees a growing tree is made of, largest first: appending a
/// leaf and reading the root cost O(log n), so a whole log is re-verified in one pass.
#[derive(Clone, Debug, Default)]
pub struct Frontier {
    /// (number of leaves, root) of each perfect subtree, left to right.
    subtrees: Vec<(u64, Hash)>,
    size: u64,
}

impl Frontier {
    pub fn push(&mut self, leaf: Hash) {
        let mut carry = (1u64, leaf);
        while let Some(&(size, left)) = self.subtrees.last() {
            if size != carry.0 {
                break;
            }
            self.subtrees.pop();
            carry = (size * 2, node_hash(&left, &carry.1));
        }
        self.subtrees.push(carry);
        self.size += 1;
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// MTH of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        let mut subtrees = self.subtrees.iter().rev();
        let Some(&(_, last)) = subtrees.next() else {
            return empty_root();
        };
        subtrees.fold(last, |right, (_, left)| node_hash(left, &right))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect()
    }

    /// Known answers from RFC 6962's reference test vectors (the certificate-transparency
    /// project's `merkle_tree_test`): the roots over its eight sample leaves.
    #[test]
    fn roots_match_the_reference_test_vectors() {
        let data: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        let hashes: Vec<Hash> = data.iter().map(|d| leaf_hash(d)).collect();
        let expected = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut frontier = Frontier::default();
        for (n, expected) in expected.iter().enumerate() {
            frontier.push(hashes[n]);
            assert_eq!(
                hex::encode(root(&hashes[..=n])),
                *expected,
                "size {}",
                n + 1
            );
            assert_eq!(
                hex::encode(frontier.root()),
                *expected,
                "frontier {}",
                n + 1
            );
        }
    }

    #[test]
    fn every_leaf_of_every_size_proves_its_inclusion() {
        let all = leaves(33);
        for n in 1..=all.len() {
            let tree = &all[..n];
            let root = root(tree);
            for (index, leaf) in tree.iter().enumerate() {
                let path = inclusion_path(index, tree);
                let (index, size) = (index as u64, n as u64);
                assert_eq!(root_from_inclusion(leaf, index, size, &path), Some(root));
                let other = leaf_hash(b"forged");
                assert_ne!(root_from_inclusion(&other, index, size, &path), Some(root));
                assert_eq!(root_from_inclusion(leaf, size, size, &path), None);
            }
        }
    }

    #[test]
    fn every_pair_of_sizes_proves_consistency_and_a_changed_leaf_breaks_it() {
        let all = leaves(21);
        for second in 1..=all.len() {
            let new = &all[..second];
            let new_root = root(new);
            for first in 0..=second {
                let old_root = root(&all[..first]);
                let proof = consistency_proof(first, new);
                let (m, n) = (first as u64, second as u64);
                assert!(
                    verify_consistency(m, &old_root, n, &new_root, &proof),
                    "{m}→{n}"
                );
                if first > 0 && first < second {
                    let mut rewritten = all[..first].to_vec();
                    rewritten[first - 1] = leaf_hash(b"rewritten history");
                    let forged_old = root(&rewritten);
                    assert!(!verify_consistency(m, &forged_old, n, &new_root, &proof));
                }
            }
        }
    }
}
