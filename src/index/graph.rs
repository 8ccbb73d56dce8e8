//! Our wrapper around `hnsw_rs`, the approximate nearest-neighbour graph over the global
//! vectors (one per print; keypoints have their own, leaner index in `keypoints.rs`). Its quirks
//! stay here: bare `usize` parameters, a reloaded graph that borrows its loader,
//! asserts (panics) on corrupt dumps, and no deletion (prints are never deleted, so none is
//! needed). A dump is written to a fresh folder and swapped in whole, with a small JSON file of
//! what it holds, so a crash mid-dump leaves the old dump or none, never half of one.

use std::collections::HashSet;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anndists::dist::Distance;
use hnsw_rs::hnswio::HnswIo;
use hnsw_rs::prelude::{AnnT, Hnsw};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const MAX_LAYERS: usize = 16;
const BASENAME: &str = "graph";
/// Bumped when the dump's layout or meaning changes.
const DUMP_FORMAT: u32 = 2;

/// What a dump holds, saved beside it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct DumpMeta {
    format: u32,
    feature_version: u32,
    dimensions: usize,
    count: usize,
}

/// How a graph is built and searched.
#[derive(Clone, Copy, Debug)]
pub struct GraphShape {
    /// Links per node and layer.
    pub max_connections: usize,
    pub ef_construction: usize,
    /// Breadth of the search; at least the number of results asked for.
    pub ef_search: usize,
}

/// A point found near a query.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    pub id: u64,
    pub distance: f32,
}

/// Element types a graph can hold.
pub trait Element:
    'static + Clone + Copy + Send + Sync + Serialize + DeserializeOwned + std::fmt::Debug
{
}
impl<T: 'static + Clone + Copy + Send + Sync + Serialize + DeserializeOwned + std::fmt::Debug>
    Element for T
{
}

/// An HNSW graph of fixed-length vectors keyed by `u64` ids.
pub struct Graph<T: Element, D: Distance<T> + Default + Send + Sync> {
    graph: Hnsw<'static, T, D>,
    members: Mutex<HashSet<u64>>,
    dimensions: usize,
    shape: GraphShape,
}

/// Global vectors: bytes, Euclidean distance.
pub type VectorIndex = Graph<u8, DistL2>;

/// Euclidean distance between byte vectors, its squares summed as integers: the compiler
/// vectorises that, where anndists' `DistL2` converts each byte to a float and sums one term
/// at a time (4.5 times slower on 270 bytes). The sums agree exactly below 2^24, a distance of
/// 4,096. Named as anndists' type because `hnsw_rs` accepts a dump only for a distance of the
/// same short type name, so the graphs it dumped still load.
#[derive(Clone, Copy, Debug, Default)]
pub struct DistL2;

impl Distance<u8> for DistL2 {
    fn eval(&self, a: &[u8], b: &[u8]) -> f32 {
        let squares: u32 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| u32::from(x.abs_diff(y)).pow(2))
            .sum();
        (squares as f32).sqrt()
    }
}

impl<T: Element, D: Distance<T> + Default + Send + Sync> Graph<T, D> {
    pub fn new(dimensions: usize, expected_len: usize, shape: GraphShape) -> Self {
        Graph {
            graph: Hnsw::new(
                shape.max_connections,
                expected_len.max(1024),
                MAX_LAYERS,
                shape.ef_construction,
                D::default(),
            ),
            members: Mutex::default(),
            dimensions,
            shape,
        }
    }

    pub fn len(&self) -> usize {
        self.members.lock().expect("index members lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids the graph holds.
    pub fn members(&self) -> HashSet<u64> {
        self.members.lock().expect("index members lock").clone()
    }

    /// Adds one vector; an id already present is left as it is.
    pub fn insert(&self, id: u64, vector: &[T]) -> Result<()> {
        if vector.len() != self.dimensions {
            return Err(Error::Index(format!(
                "vector of {} dimensions for an index of {}",
                vector.len(),
                self.dimensions
            )));
        }
        if !self.members.lock().expect("index members lock").insert(id) {
            return Ok(());
        }
        self.graph.insert_slice((vector, id as usize));
        Ok(())
    }

    /// Adds many vectors at once, in parallel.
    pub fn insert_many(&self, items: &[(u64, Vec<T>)]) -> Result<()> {
        let mut members = self.members.lock().expect("index members lock");
        let mut fresh = Vec::with_capacity(items.len());
        for (id, vector) in items {
            if vector.len() != self.dimensions {
                return Err(Error::Index(format!("vector {id} has the wrong size")));
            }
            if members.insert(*id) {
                fresh.push((vector, *id as usize));
            }
        }
        drop(members);
        self.graph.parallel_insert(&fresh);
        Ok(())
    }

    /// Approximate `k` nearest vectors, nearest first.
    pub fn nearest(&self, vector: &[T], k: usize) -> Vec<Hit> {
        if self.is_empty() || vector.len() != self.dimensions || k == 0 {
            return Vec::new();
        }
        self.graph
            .search(vector, k, self.shape.ef_search.max(k))
            .into_iter()
            .map(|n| Hit {
                id: n.d_id as u64,
                distance: n.distance,
            })
            .collect()
    }

    /// Writes the graph to `dir` (replacing any earlier dump there) atomically.
    pub fn save(&self, dir: &Path, feature_version: u32) -> Result<()> {
        if self.is_empty() {
            // hnsw_rs cannot dump an empty graph; an absent dump is rebuilt, instantly, at start.
            return match fs::remove_dir_all(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(dir, e)),
                _ => Ok(()),
            };
        }
        let staging = sibling(dir, "new");
        let retired = sibling(dir, "old");
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
        let count = self.len();
        let dumped = catch_unwind(AssertUnwindSafe(|| {
            self.graph.file_dump(&staging, BASENAME)
        }));
        match dumped {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(Error::Index(format!("cannot write the index dump: {e}"))),
            Err(_) => return Err(Error::Index("the index dump failed".into())),
        }
        let meta = DumpMeta {
            format: DUMP_FORMAT,
            feature_version,
            dimensions: self.dimensions,
            count,
        };
        let meta_path = staging.join("meta.json");
        fs::write(
            &meta_path,
            serde_json::to_vec(&meta).expect("meta serialises"),
        )
        .map_err(|e| Error::io(&meta_path, e))?;
        for entry in fs::read_dir(&staging).map_err(|e| Error::io(&staging, e))? {
            let path = entry.map_err(|e| Error::io(&staging, e))?.path();
            fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&path, e))?;
        }
        let _ = fs::remove_dir_all(&retired);
        if dir.exists() {
            fs::rename(dir, &retired).map_err(|e| Error::io(dir, e))?;
        }
        fs::rename(&staging, dir).map_err(|e| Error::io(dir, e))?;
        let _ = fs::remove_dir_all(&retired);
        Ok(())
    }

    /// Reads a dump written by [`Graph::save`]. `Ok(None)` when there is none, or it was made
    /// for other features or another layout; an error when it is there but unreadable.
    pub fn load(
        dir: &Path,
        feature_version: u32,
        dimensions: usize,
        shape: GraphShape,
    ) -> Result<Option<Self>> {
        let meta_path = dir.join("meta.json");
        let Ok(meta_bytes) = fs::read(&meta_path) else {
            return Ok(None);
        };
        let meta: DumpMeta = serde_json::from_slice(&meta_bytes)
            .map_err(|e| Error::Index(format!("{}: {e}", meta_path.display())))?;
        if meta.format != DUMP_FORMAT
            || meta.feature_version != feature_version
            || meta.dimensions != dimensions
        {
            return Ok(None);
        }
        // The loaded graph borrows its loader for as long as it lives; the loader is small and
        // loaded once per start, so it is leaked rather than kept in a self-referential struct.
        let loader: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, BASENAME)));
        let graph: Hnsw<'static, T, D> = match catch_unwind(AssertUnwindSafe(move || {
            let loader = loader;
            loader.load_hnsw::<T, D>()
        })) {
            Ok(Ok(graph)) => graph,
            Ok(Err(e)) => return Err(Error::Index(format!("cannot read the index dump: {e}"))),
            Err(_) => return Err(Error::Index("the index dump is corrupt".into())),
        };
        let members: HashSet<u64> = graph
            .get_point_indexation()
            .into_iter()
            .map(|point| point.get_origin_id() as u64)
            .collect();
        if members.len() != meta.count {
            return Err(Error::Index(format!(
                "the index dump holds {} prints, its description says {}",
                members.len(),
                meta.count
            )));
        }
        Ok(Some(Graph {
            graph,
            members: Mutex::new(members),
            dimensions,
            shape,
        }))
    }
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    dir.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The graph over floats: unit vectors are easy to generate.
    type FloatGraph = Graph<f32, anndists::dist::DistL2>;

    const SHAPE: GraphShape = GraphShape {
        max_connections: 24,
        ef_construction: 200,
        ef_search: 96,
    };

    fn unit_vector(seed: u64, dimensions: usize) -> Vec<f32> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut v: Vec<f32> = (0..dimensions)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }

    fn exact_nearest(items: &[(u64, Vec<f32>)], query: &[f32]) -> u64 {
        let dist = |v: &[f32]| {
            v.iter()
                .zip(query)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
        };
        items
            .iter()
            .min_by(|a, b| dist(&a.1).total_cmp(&dist(&b.1)))
            .unwrap()
            .0
    }

    #[test]
    fn agrees_with_exact_search_and_survives_a_reload() {
        let items: Vec<(u64, Vec<f32>)> =
            (0..2000).map(|i| (i * 3 + 1, unit_vector(i, 32))).collect();
        let index = FloatGraph::new(32, items.len(), SHAPE);
        index.insert_many(&items).unwrap();
        let queries: Vec<Vec<f32>> = (5000..5100).map(|i| unit_vector(i, 32)).collect();
        let agree = |index: &FloatGraph| {
            queries
                .iter()
                .filter(|q| index.nearest(q, 1)[0].id == exact_nearest(&items, q))
                .count()
        };
        assert!(
            agree(&index) >= 95,
            "HNSW found the exact nearest for {} of 100",
            agree(&index)
        );

        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("vectors");
        index.save(&dump, 7).unwrap();
        index.save(&dump, 7).unwrap();
        assert!(
            FloatGraph::load(&dump, 8, 32, SHAPE).unwrap().is_none(),
            "other feature version"
        );
        let reloaded = FloatGraph::load(&dump, 7, 32, SHAPE).unwrap().unwrap();
        assert_eq!(reloaded.members(), index.members());
        assert_eq!(agree(&reloaded), agree(&index));
        reloaded.insert(99_999, &unit_vector(1, 32)).unwrap();
        assert_eq!(reloaded.nearest(&unit_vector(1, 32), 2).len(), 2);
    }

    fn byte_vector(seed: u64, dimensions: usize) -> Vec<u8> {
        unit_vector(seed, dimensions)
            .iter()
            .map(|x| (x * 1000.0).min(255.0) as u8)
            .collect()
    }

    #[test]
    fn byte_distance_is_anndists_euclidean() {
        let theirs = anndists::dist::DistL2;
        for seed in 0..200 {
            let (a, b) = (byte_vector(seed, 270), byte_vector(seed + 1000, 270));
            assert_eq!(DistL2.eval(&a, &b), theirs.eval(&a, &b));
        }
        let (black, white) = ([0u8; 270], [255u8; 270]);
        let exact = (270f64 * 255.0 * 255.0).sqrt() as f32;
        assert_eq!(DistL2.eval(&black, &white), exact);
        assert!((theirs.eval(&black, &white) - exact).abs() < 0.01);
    }

    /// Data directories hold graphs dumped with anndists' distance: they must still load.
    #[test]
    fn a_graph_dumped_with_anndists_distance_still_loads() {
        let items: Vec<(u64, Vec<u8>)> = (0..500).map(|i| (i, byte_vector(i, 270))).collect();
        let old = Graph::<u8, anndists::dist::DistL2>::new(270, items.len(), SHAPE);
        old.insert_many(&items).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let dump = dir.path().join("vectors");
        old.save(&dump, 3).unwrap();
        let reloaded = VectorIndex::load(&dump, 3, 270, SHAPE).unwrap().unwrap();
        assert_eq!(reloaded.members(), old.members());
        for (id, vector) in items.iter().step_by(50) {
            assert_eq!(reloaded.nearest(vector, 1)[0].id, *id);
        }
    }

    #[test]
    fn missing_dump_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            FloatGraph::load(&dir.path().join("nothing"), 1, 8, SHAPE)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn an_empty_graph_saves_as_no_dump() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vectors");
        FloatGraph::new(8, 10, SHAPE).save(&path, 1).unwrap();
        assert!(FloatGraph::load(&path, 1, 8, SHAPE).unwrap().is_none());
    }
}
