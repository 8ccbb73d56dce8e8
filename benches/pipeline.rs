//! Benchmarks of the query path: decode + features for one upload, ranking against 10 000
//! indexed prints, and the flat scans every search makes, at the sizes of a large registry.
//! Run with `cargo bench`; quote figures with the machine they ran on.

use std::io::Cursor;
use std::sync::{Arc, LazyLock, RwLock};

use huaxing::engine::analyze;
use huaxing::features::repeat_unit::{RepeatUnit, UNIT_SIDE, UnitComparison};
use huaxing::features::{self, FeatureSet, global_vector};
use huaxing::features::{DihedralHashes, Hash256};
use huaxing::index::{HashIndex, Indexes, KeypointIndex, UnitIndex, VECTOR_SHAPE, VectorIndex};
use huaxing::normalize::normalize;
use huaxing::search::{DEFAULT_COPY_THRESHOLD, RegisteredFeatures, Wanted, rank};
use image::{ImageFormat, Rgb, RgbImage};
use rayon::prelude::*;

fn main() {
    divan::main();
}

/// A stream of pseudo-random words (xorshift), different for every seed.
fn words(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// A generated motif print: discs of a few inks on a ground, different for every seed.
fn print(seed: u64, side: u32) -> RgbImage {
    let mut next = words(seed);
    let mut image = RgbImage::from_pixel(side, side, Rgb([(next() % 256) as u8, 230, 210]));
    for _ in 0..12 {
        let ink = Rgb([
            (next() % 256) as u8,
            (next() % 256) as u8,
            (next() % 256) as u8,
        ]);
        let (cx, cy) = (
            (next() % u64::from(side)) as i64,
            (next() % u64::from(side)) as i64,
        );
        let r = (i64::from(side) / 20 + (next() % u64::from(side / 8)) as i64).pow(2);
        for (x, y, pixel) in image.enumerate_pixels_mut() {
            if (x as i64 - cx).pow(2) + (y as i64 - cy).pow(2) < r {
                *pixel = ink;
            }
        }
    }
    image
}

fn encoded(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).expect("encode");
    bytes.into_inner()
}

#[divan::bench(args = [384, 1024])]
fn decode_and_extract_jpeg(bencher: divan::Bencher, side: u32) {
    let bytes = encoded(&print(1, side), ImageFormat::Jpeg);
    bencher.bench(|| analyze(divan::black_box(&bytes)).expect("analyse"));
}

struct Registry10k {
    indexes: Indexes,
    features: RegisteredFeatures,
    queries: Vec<FeatureSet>,
}

static REGISTRY_10K: LazyLock<Registry10k> = LazyLock::new(|| {
    let sets: Vec<(u64, Arc<FeatureSet>)> = (0..10_000u64)
        .into_par_iter()
        .map(|seed| {
            let features = features::extract(&normalize(&print(seed, 96)));
            (seed, Arc::new(features))
        })
        .collect();
    let vectors = VectorIndex::new(global_vector::DIMENSIONS, sets.len(), VECTOR_SHAPE);
    let items: Vec<(u64, Vec<u8>)> = sets
        .iter()
        .map(|(s, f)| (*s, f.global_vector.clone()))
        .collect();
    vectors.insert_many(&items).expect("index");
    let keypoints = KeypointIndex::default();
    keypoints.insert_many(&sets);
    keypoints.train_if_needed();
    let features: RegisteredFeatures = RwLock::new(sets.into_iter().collect());
    let indexes = Indexes::new(vectors, keypoints, &*features.read().expect("lock"));
    let queries = (0..64u64)
        .map(|seed| features::extract(&normalize(&print(seed * 150, 96))))
        .collect();
    Registry10k {
        indexes,
        features,
        queries,
    }
});

#[divan::bench]
fn rank_against_10k_prints(bencher: divan::Bencher) {
    let registry = &*REGISTRY_10K;
    let mut next = 0;
    bencher.bench_local(|| {
        next = (next + 1) % registry.queries.len();
        rank(
            &registry.queries[next],
            &registry.indexes,
            &registry.features,
            |_| true,
            None,
            Wanted::Best(10),
            DEFAULT_COPY_THRESHOLD,
        )
    });
}

/// A repeat unit of noise, different for every seed.
fn noise_unit(seed: u64) -> RepeatUnit {
    let mut next = words(seed);
    let cells = (0..UNIT_SIDE * UNIT_SIDE)
        .map(|_| (next() % 255) as i8)
        .collect();
    RepeatUnit {
        lattice: [[40.0, 0.0], [0.0, 40.0]],
        cells,
    }
}

/// The repeat-unit shortlist of one query among 50,000 registered repeat units (the scan is
/// linear in them), read by every search and registration that shows a repeat.
#[divan::bench]
fn nearest_of_50k_repeat_units(bencher: divan::Bencher) {
    static UNITS: LazyLock<UnitIndex> = LazyLock::new(|| {
        let index = UnitIndex::default();
        for seed in 0..50_000 {
            index.insert(seed, &noise_unit(seed));
        }
        index
    });
    let query = UnitComparison::new(&noise_unit(1_000_000));
    LazyLock::force(&UNITS);
    bencher.bench(|| UNITS.nearest(divan::black_box(query.harmonics()), 33));
}

/// A 256-bit hash of pseudo-random bits, different for every seed.
fn noise_hash(seed: u64) -> Hash256 {
    let mut next = words(seed);
    Hash256([next(), next(), next(), next()])
}

/// The nearest whole-print hashes of one query (eight orientations) among 100,000 registered:
/// one of the two hash channels every search and registration scans.
#[divan::bench]
fn nearest_of_100k_hashes(bencher: divan::Bencher) {
    static HASHES: LazyLock<HashIndex> = LazyLock::new(|| {
        let index = HashIndex::default();
        for seed in 0..100_000 {
            index.insert(seed, noise_hash(seed));
        }
        index
    });
    let query = DihedralHashes::new(std::array::from_fn(|i| noise_hash(1_000_000 + i as u64)));
    LazyLock::force(&HASHES);
    bencher.bench(|| HASHES.nearest(divan::black_box(&query), 17));
}
