//! The engine ties the stages together: it opens a data directory (registry, blobs, index
//! dump), brings the in-memory indexes in line with the registry, and offers register, search
//! and compare to the API and the CLI. Everything here is blocking; async callers use
//! `spawn_blocking`.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::decode::decode;
use crate::error::{Error, Result};
use crate::features::{self, FEATURE_VERSION, FeatureSet, global_vector};
use crate::index::{Indexes, KeypointDump, KeypointIndex, VECTOR_SHAPE, VectorIndex};
use crate::ledger::LogEntry;
use crate::normalize::normalize;
use crate::registry::audit::AuditLog;
use crate::registry::{
    BlobStore, NewPattern, PatternRecord, Registry, Status, StoredFeatures, sha256_hex,
};
use crate::search::{self, Comparison, DEFAULT_COPY_THRESHOLD, Query, RegisteredFeatures, Wanted};

/// The global-vector graph's folder in the index folder.
const VECTORS_DIR: &str = "vectors";

/// The keypoint index's file in the index folder.
const KEYPOINTS_FILE: &str = "keypoints.bin";

/// Settings that change answers.
#[derive(Clone, Debug)]
pub struct Config {
    /// Score at and above which the verdict is `copy`.
    pub copy_threshold: f32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            copy_threshold: DEFAULT_COPY_THRESHOLD,
        }
    }
}

/// An upload, decoded and described, not yet stored.
pub struct Analysis {
    /// Derived from the decoded pixels, so a lossless re-encode has the same id.
    pub id: String,
    pub sha256: String,
    pub media_type: String,
    pub width: u32,
    pub height: u32,
    pub features: FeatureSet,
}

/// Decodes and describes an upload. Pure: touches no data directory.
pub fn analyze(bytes: &[u8]) -> Result<Analysis> {
    let decoded = decode(bytes)?;
    let (width, height) = decoded.pixels.dimensions();
    let mut pixel_hash = Sha256::new();
    pixel_hash.update(b"huaxing-pixels-v1\0");
    pixel_hash.update(width.to_le_bytes());
    pixel_hash.update(height.to_le_bytes());
    pixel_hash.update(decoded.pixels.as_raw());
    Ok(Analysis {
        id: hex::encode(&pixel_hash.finalize()[..16]),
        sha256: sha256_hex(bytes),
        media_type: decoded.media_type().to_string(),
        width,
        height,
        features: features::extract(&normalize(&decoded.pixels)),
    })
}

/// Who registers a pattern and under what name.
#[derive(Clone, Debug, Default)]
pub struct PatternMeta {
    pub title: String,
    pub owner: String,
    pub reference: String,
    /// `registered` (the default), `pre_registered` or `public_domain`.
    pub status: Option<Status>,
    /// The token name of whoever submits it.
    pub submitted_by: String,
}

/// A registered pattern found for a query.
#[derive(Clone, Debug, Serialize)]
pub struct Match {
    #[serde(flatten)]
    pub pattern: PatternRecord,
    #[serde(flatten)]
    pub comparison: Comparison,
    /// Said of matches with a public-domain pattern, which nobody may claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<&'static str>,
}

/// What a court needs to trust a registration: the record, every log entry about it, and a
/// proof that its registration entry is in the signed log.
#[derive(Debug, Serialize)]
pub struct Certificate {
    pub pattern: PatternRecord,
    /// The pattern id, derived from the decoded pixels (SHA-256, first 16 bytes, hex).
    pub pixel_hash: String,
    pub entries: Vec<LogEntry>,
    pub proof: crate::ledger::InclusionProof,
    /// Base64 Ed25519 key the service signs tree heads with.
    pub public_key: String,
    pub issued_at: String,
}

/// The outcome of a registration.
#[derive(Debug, Serialize)]
pub struct Registration {
    #[serde(flatten)]
    pub pattern: PatternRecord,
    /// False when the same picture was already registered; `pattern` is then that record.
    #[serde(skip)]
    pub created: bool,
    /// Published patterns this one is judged a copy of, found before it was stored. When
    /// there are any, the pattern is held as `pending_review` until a clerk decides.
    pub duplicates: Vec<Match>,
}

pub struct Engine {
    data_dir: PathBuf,
    registry: Registry,
    audit: AuditLog,
    blobs: BlobStore,
    indexes: Indexes,
    features: RegisteredFeatures,
    /// Every pattern's status, so searches return only published patterns.
    statuses: RwLock<HashMap<u64, Status>>,
    /// Whether the index dumps on disk hold all the indexes in memory do: a stop with nothing
    /// registered since the start or the last save then need not rewrite them (at 200,000
    /// prints a gigabyte and seconds).
    index_saved: AtomicBool,
    config: Config,
    /// Held for the engine's life: one process per data directory.
    _lock: File,
}

impl Engine {
    /// Opens (creating if needed) a data directory and makes the indexes agree with the registry.
    pub fn open(data_dir: &Path, config: Config) -> Result<Engine> {
        fs::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
        let lock_path = data_dir.join("huaxing.lock");
        let lock = File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(Error::Locked {
                    path: data_dir.into(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
        let registry =
            Registry::open(&data_dir.join("registry.sqlite"), &data_dir.join("log-key"))?;
        let audit = AuditLog::open(&data_dir.join("audit.sqlite"))?;
        let blobs = BlobStore::open(data_dir.join("blobs"))?;
        let index_dir = data_dir.join("index");
        // The index dumps need nothing from the registry: they are read on a thread of their
        // own while the features are.
        let (registered, (vectors, keypoints)) = std::thread::scope(|scope| {
            let dumps = scope.spawn(|| (load_vectors(&index_dir), read_keypoints(&index_dir)));
            let registered = read_registered(&registry, &blobs);
            let dumps = dumps
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (registered, dumps)
        });
        let Registered { features, statuses } = registered?;
        let (vectors, vectors_as_saved) = top_up_vectors(vectors, &features)?;
        let (keypoints, keypoints_as_saved) = top_up_keypoints(keypoints, &features);
        let features: HashMap<u64, Arc<FeatureSet>> = features.into_iter().collect();
        let indexes = Indexes::new(vectors, keypoints, &features);
        release_free_memory();
        tracing::info!(
            patterns = features.len(),
            "registry open in {}",
            data_dir.display()
        );
        Ok(Engine {
            data_dir: data_dir.into(),
            registry,
            audit,
            blobs,
            indexes,
            statuses: RwLock::new(statuses),
            features: RwLock::new(features),
            index_saved: AtomicBool::new(vectors_as_saved && keypoints_as_saved),
            config,
            _lock: lock,
        })
    }

    /// Registered patterns, as the registry counts them.
    pub fn count(&self) -> Result<u64> {
        self.registry.count()
    }

    /// Registers an upload. The same picture registered before answers with its existing
    /// record; otherwise the new pattern is durably committed, with its log entry, before this
    /// returns. A pattern judged a copy of a published one is held as `pending_review`.
    pub fn register(&self, bytes: &[u8], meta: PatternMeta) -> Result<Registration> {
        let mut analysis = analyze(bytes)?;
        if let Some(existing) = self.registry.find_by_id(&analysis.id)? {
            return Ok(Registration {
                pattern: existing,
                created: false,
                duplicates: Vec::new(),
            });
        }
        // The duplicate check compares the print as it will be stored, its kept keypoints
        // alone: a query's extra keypoints (repeats, weaker extrema) give rearranged copies
        // more chances to rank first, but change hardly any copy verdict (public set: the same
        // copy TPR and false positives), and an import into 20,000 prints then takes a quarter
        // less CPU (docs/scale.md, step 37).
        analysis.features.local.keep_registered();
        let duplicates = self.rank(&analysis.features, None, Wanted::Copies(10))?;
        let requested = meta.status.unwrap_or(Status::Registered);
        if !matches!(
            requested,
            Status::Registered | Status::PreRegistered | Status::PublicDomain
        ) {
            return Err(Error::bad_input(
                "invalid_status",
                "a new pattern is registered, pre_registered or public_domain",
            ));
        }
        let (status, review_matches) = if duplicates.is_empty() {
            (requested, None)
        } else {
            let held_for: Vec<serde_json::Value> = duplicates
                .iter()
                .map(|m| {
                    serde_json::json!({
                        "id": m.pattern.id,
                        "registration_number": m.pattern.registration_number,
                        "title": m.pattern.title,
                        "status": m.pattern.status,
                        "score": m.comparison.score,
                        "summary": m.comparison.explanation.summary,
                    })
                })
                .collect();
            let held_for = serde_json::Value::from(held_for).to_string();
            (Status::PendingReview, Some(held_for))
        };
        self.blobs.put(bytes)?;
        let new = NewPattern {
            id: analysis.id,
            title: meta.title,
            owner: meta.owner,
            reference: meta.reference,
            status,
            sha256: analysis.sha256,
            media_type: analysis.media_type,
            width: analysis.width,
            height: analysis.height,
            feature_version: FEATURE_VERSION,
            features: analysis.features,
            submitted_by: meta.submitted_by,
            review_matches,
        };
        // The status map is written under its lock together with the commit, so a decision
        // made meanwhile cannot be overwritten by an older status.
        let mut statuses = self.statuses.write().expect("statuses lock");
        let (pattern, created) = self.registry.insert(&new)?;
        if created {
            statuses.insert(pattern.seq, pattern.status);
        }
        drop(statuses);
        if created {
            self.index(pattern.seq, new.features);
        }
        Ok(Registration {
            pattern,
            created,
            duplicates: if created { duplicates } else { Vec::new() },
        })
    }

    /// A clerk's decision on a pattern: accept or reject a held registration, publish or
    /// withdraw a pre-registration, file a pattern as public domain. Logged with its reason.
    pub fn set_status(
        &self,
        id: &str,
        status: Status,
        reason: &str,
        actor: &str,
    ) -> Result<PatternRecord> {
        let mut statuses = self.statuses.write().expect("statuses lock");
        let record = self.registry.set_status(id, status, reason, actor)?;
        statuses.insert(record.seq, record.status);
        Ok(record)
    }

    /// Adds a committed registration to the in-memory indexes. It is stored already, so a
    /// failure here is logged, not answered: the next start catches the indexes up.
    fn index(&self, seq: u64, mut features: FeatureSet) {
        features.keep_reference();
        let features = Arc::new(features);
        if let Err(e) = self.indexes.insert(seq, &features) {
            tracing::error!("pattern {seq} is registered but not fully indexed until restart: {e}");
        }
        // After the insertion: a save that began before it ends marks the dumps saved, and this
        // marks them stale again.
        self.index_saved.store(false, Ordering::SeqCst);
        self.features
            .write()
            .expect("features lock")
            .insert(seq, features);
    }

    /// Whether an upload with exactly these bytes is registered (bulk import skips those).
    pub fn has_upload(&self, sha256: &str) -> Result<bool> {
        Ok(self.registry.find_by_upload(sha256)?.is_some())
    }

    /// The `k` published patterns most similar to `query`, best first.
    pub fn search(&self, query: &FeatureSet, k: usize) -> Result<Vec<Match>> {
        self.rank(query, None, Wanted::Best(k))
    }

    /// The `k` published patterns most similar to a registered one, itself left out.
    pub fn similar_to(&self, id: &str, k: usize) -> Result<Vec<Match>> {
        let seq = self.get(id)?.seq;
        self.rank(&self.features_of(id)?, Some(seq), Wanted::Best(k))
    }

    fn rank(&self, query: &FeatureSet, itself: Option<u64>, asked: Wanted) -> Result<Vec<Match>> {
        // Read per candidate, only in the sequential filtering before the scoring runs on
        // rayon (a guard held across rayon work could deadlock with a registration).
        let published = |seq| {
            self.statuses
                .read()
                .expect("statuses lock")
                .get(&seq)
                .is_some_and(|status| status.is_published())
        };
        let ranked = search::rank(
            query,
            &self.indexes,
            &self.features,
            published,
            itself,
            asked,
            self.config.copy_threshold,
        );
        ranked
            .into_iter()
            .map(|(seq, comparison)| {
                let pattern = self.registry.find_by_seq(seq)?.ok_or_else(|| {
                    Error::Integrity(format!("indexed pattern {seq} is not in the registry"))
                })?;
                let note = (pattern.status == Status::PublicDomain)
                    .then_some("public domain: not protectable");
                Ok(Match {
                    pattern,
                    comparison,
                    note,
                })
            })
            .collect()
    }

    /// Searches for each upload, in parallel, answers in the order given.
    pub fn search_batch(&self, uploads: &[Vec<u8>], k: usize) -> Vec<Result<Vec<Match>>> {
        uploads
            .par_iter()
            .map(|bytes| self.search(&analyze(bytes)?.features, k))
            .collect()
    }

    /// Scores two prints against each other, `a` as the query and `b` as the reference;
    /// `a_id` and `b_id` for registered patterns.
    pub fn compare(
        &self,
        a: &FeatureSet,
        a_id: Option<&str>,
        b: &FeatureSet,
        b_id: Option<&str>,
    ) -> Result<Comparison> {
        let seq_of = |id: Option<&str>| -> Result<Option<u64>> {
            id.map(|id| Ok(self.get(id)?.seq)).transpose()
        };
        Ok(search::compare(
            &Query::in_registry(a, &self.indexes, &self.features, seq_of(a_id)?, 0),
            b,
            seq_of(b_id)?,
            self.config.copy_threshold,
        ))
    }

    pub fn get(&self, id: &str) -> Result<PatternRecord> {
        self.registry
            .find_by_id(id)?
            .ok_or_else(|| Error::NotFound {
                what: format!("pattern {id}"),
            })
    }

    /// The registry itself: records, the evidence log, tokens.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The registered pattern's upload as a PNG no larger than `max_side` on either side.
    pub fn thumbnail(&self, id: &str, max_side: u32) -> Result<Vec<u8>> {
        let (bytes, _) = self.image(id)?;
        let decoded = decode(&bytes)?;
        let small = image::DynamicImage::ImageRgb8(decoded.pixels).thumbnail(max_side, max_side);
        let mut png = std::io::Cursor::new(Vec::new());
        small
            .write_to(&mut png, image::ImageFormat::Png)
            .map_err(|e| Error::Integrity(format!("cannot encode a thumbnail: {e}")))?;
        Ok(png.into_inner())
    }

    pub fn certificate(&self, id: &str) -> Result<Certificate> {
        let pattern = self.get(id)?;
        Ok(Certificate {
            entries: self.registry.entries_of(pattern.seq)?,
            proof: self.registry.proof(id)?,
            public_key: self.registry.public_key(),
            pixel_hash: pattern.id.clone(),
            issued_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            pattern,
        })
    }

    /// The stored features of a registered pattern, whole (memory holds a reference's part,
    /// [`FeatureSet::keep_reference`]), to search or compare it as a query.
    pub fn features_of(&self, id: &str) -> Result<FeatureSet> {
        let seq = self.get(id)?.seq;
        let stored = self
            .registry
            .features_of(seq)?
            .ok_or_else(|| Error::Integrity(format!("pattern {id} has no stored features")))?;
        FeatureSet::from_bytes(&stored.bytes)
            .map_err(|e| Error::Integrity(format!("features of pattern {id} unreadable: {e}")))
    }

    /// The original upload of a registered pattern and its media type.
    pub fn image(&self, id: &str) -> Result<(Vec<u8>, String)> {
        let record = self.get(id)?;
        Ok((self.blobs.get(&record.sha256)?, record.media_type))
    }

    /// Writes the global-vector graph and the keypoint index to the data directory, so the
    /// next start need not rebuild them; unless the dumps there already hold them.
    pub fn save_index(&self) -> Result<()> {
        // Marked saved before writing: a registration indexed meanwhile marks it unsaved again.
        if self.index_saved.swap(true, Ordering::SeqCst) {
            tracing::info!("index unchanged since it was read or saved; not rewritten");
            return Ok(());
        }
        let saved = self.write_index();
        if saved.is_err() {
            self.index_saved.store(false, Ordering::SeqCst);
        }
        saved
    }

    fn write_index(&self) -> Result<()> {
        let started = Instant::now();
        let dir = self.data_dir.join("index");
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        self.indexes
            .vectors
            .save(&dir.join(VECTORS_DIR), FEATURE_VERSION)?;
        self.indexes
            .keypoints
            .save(&dir.join(KEYPOINTS_FILE), FEATURE_VERSION)?;
        tracing::info!(
            patterns = self.indexes.vectors.len(),
            keypoints = self.indexes.keypoints.len(),
            "index saved in {:.1} s",
            started.elapsed().as_secs_f32()
        );
        Ok(())
    }
}

/// Hands back to the kernel the free pages inside the allocator's heaps: start-up's transient
/// buffers (pages of stored features, dump reads, harmonics) leave holes among what it keeps,
/// and glibc, tuned to keep freed buffers (`main.rs`), would hold them for the process's life.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

/// What start-up reads from the registry in one pass over its patterns.
struct Registered {
    /// Every pattern's features at the current version, in registration order.
    features: Vec<(u64, Arc<FeatureSet>)>,
    /// Every pattern's status, so searches return only published patterns.
    statuses: HashMap<u64, Status>,
}

/// Patterns read from the registry a page at a time.
const READ_PAGE: usize = 1024;

/// Reads every pattern's status and its features at the current version. Features of an older
/// version, or that cannot be read, are re-extracted from the stored upload and written back.
/// The next page is read while this one is parsed.
fn read_registered(registry: &Registry, blobs: &BlobStore) -> Result<Registered> {
    let started = Instant::now();
    let redone = AtomicUsize::new(0);
    let parse = |page: &[StoredFeatures]| {
        page.par_iter()
            .map(|stored| {
                let mut features = match current_features(stored) {
                    Some(features) => features,
                    None => {
                        let mut fresh = analyze(&blobs.get(&stored.sha256)?)?.features;
                        fresh.local.keep_registered();
                        registry.update_features(stored.seq, FEATURE_VERSION, &fresh)?;
                        redone.fetch_add(1, Ordering::Relaxed);
                        fresh
                    }
                };
                features.keep_reference();
                Ok((stored.seq, Arc::new(features)))
            })
            .collect::<Result<Vec<_>>>()
    };
    let mut registered = Registered {
        features: Vec::new(),
        statuses: HashMap::new(),
    };
    let mut page = registry.features_after(0, READ_PAGE)?;
    while let Some(last) = page.last() {
        let after = last.seq;
        let (next, parsed) = rayon::join(
            || registry.features_after(after, READ_PAGE),
            || parse(&page),
        );
        registered
            .statuses
            .extend(page.iter().map(|stored| (stored.seq, stored.status)));
        registered.features.extend(parsed?);
        page = next?;
        let redone = redone.load(Ordering::Relaxed);
        if redone > 0 {
            tracing::info!(
                "features of {} patterns read, {redone} of them re-extracted ({:.0}/s)",
                registered.features.len(),
                redone as f32 / started.elapsed().as_secs_f32().max(1e-3)
            );
        }
    }
    let seconds = started.elapsed().as_secs_f32();
    tracing::info!(
        patterns = registered.features.len(),
        "features read in {seconds:.1} s"
    );
    let redone = redone.into_inner();
    if redone > 0 {
        tracing::info!(
            "re-extracted the features of {redone} patterns from their uploads in {seconds:.1} s ({:.0}/s)",
            redone as f32 / seconds.max(1e-3)
        );
    }
    Ok(registered)
}

/// The stored features when they are of the current version and readable.
fn current_features(stored: &StoredFeatures) -> Option<FeatureSet> {
    if stored.feature_version != FEATURE_VERSION {
        return None;
    }
    FeatureSet::from_bytes(&stored.bytes)
        .inspect_err(|e| {
            tracing::warn!(
                "features of pattern {} unreadable ({e}); re-extracting",
                stored.seq
            )
        })
        .ok()
}

/// Loads the persisted global-vector graph (its ids are sequence numbers), or says in the log
/// why there is none to load.
fn load_vectors(dir: &Path) -> Option<VectorIndex> {
    let name = VECTORS_DIR;
    let started = Instant::now();
    match VectorIndex::load(
        &dir.join(name),
        FEATURE_VERSION,
        global_vector::DIMENSIONS,
        VECTOR_SHAPE,
    ) {
        Ok(Some(graph)) => {
            tracing::info!(
                points = graph.len(),
                "{name} index loaded in {:.1} s",
                started.elapsed().as_secs_f32()
            );
            Some(graph)
        }
        Ok(None) => {
            tracing::info!(
                "no {name} index dump for the current features; building it from the registry"
            );
            None
        }
        Err(e) => {
            tracing::warn!("{name} index dump unusable ({e}); rebuilding it from the registry");
            None
        }
    }
}

/// Adds to the loaded global-vector graph what the registry has beyond it; builds it from the
/// registry when there is none, or when it holds prints the registry lacks. Says which in the
/// log, with the rate of any rebuild. True with it when it is the loaded graph unchanged.
fn top_up_vectors(
    loaded: Option<VectorIndex>,
    features: &[(u64, Arc<FeatureSet>)],
) -> Result<(VectorIndex, bool)> {
    let name = VECTORS_DIR;
    let loaded = loaded.filter(|graph| {
        let known: HashSet<u64> = features.iter().map(|(s, _)| *s).collect();
        let foreign = graph
            .members()
            .iter()
            .filter(|id| !known.contains(id))
            .count();
        if foreign > 0 {
            tracing::warn!(
                foreign,
                "{name} index dump holds prints the registry lacks; rebuilding it"
            );
        }
        foreign == 0
    });
    let was_loaded = loaded.is_some();
    let graph = loaded.unwrap_or_else(|| {
        VectorIndex::new(global_vector::DIMENSIONS, features.len(), VECTOR_SHAPE)
    });
    let present = graph.members();
    let missing: Vec<&(u64, Arc<FeatureSet>)> = features
        .iter()
        .filter(|(seq, _)| !present.contains(seq))
        .collect();
    if !missing.is_empty() {
        let started = Instant::now();
        let mut done = 0;
        for chunk in missing.chunks(1000) {
            let items: Vec<(u64, Vec<u8>)> = chunk
                .iter()
                .map(|(seq, f)| (*seq, f.global_vector.clone()))
                .collect();
            graph.insert_many(&items)?;
            done += chunk.len();
            tracing::info!(
                "{name} index: added {done} of {} prints ({:.0}/s)",
                missing.len(),
                done as f32 / started.elapsed().as_secs_f32().max(1e-3)
            );
        }
    }
    Ok((graph, was_loaded && missing.is_empty()))
}

/// Reads the persisted keypoint index, or says in the log why there is none to read.
fn read_keypoints(dir: &Path) -> Option<KeypointDump> {
    let retired = dir.join("keypoints");
    if retired.is_dir() {
        // The graph dump of earlier versions: replaced by KEYPOINTS_FILE.
        tracing::info!("removing the old keypoint graph dump {}", retired.display());
        if let Err(e) = fs::remove_dir_all(&retired) {
            tracing::warn!("could not remove {}: {e}", retired.display());
        }
    }
    let started = Instant::now();
    match KeypointDump::read(&dir.join(KEYPOINTS_FILE), FEATURE_VERSION) {
        Ok(Some(dump)) => {
            tracing::info!(
                "keypoint index read in {:.1} s",
                started.elapsed().as_secs_f32()
            );
            Some(dump)
        }
        Ok(None) => {
            tracing::info!(
                "no keypoint index for the current features; building it from the registry"
            );
            None
        }
        Err(e) => {
            tracing::warn!("keypoint index unusable ({e}); rebuilding it from the registry");
            None
        }
    }
}

/// Joins the keypoint index read from its dump to the prints' features and adds what the
/// registry has beyond it; builds it from the registry when there is none, when it holds
/// prints the registry lacks, or when it does not match their keypoints. Says which in the
/// log, with the rate of any rebuild. True with it when it is the dump's index unchanged.
fn top_up_keypoints(
    dump: Option<KeypointDump>,
    features: &[(u64, Arc<FeatureSet>)],
) -> (KeypointIndex, bool) {
    let by_seq: HashMap<u64, &Arc<FeatureSet>> = features.iter().map(|(s, f)| (*s, f)).collect();
    let attached = dump.map(|dump| dump.attach(|seq| by_seq.get(&seq).map(|f| Arc::clone(f))));
    let (index, was_loaded) = match attached {
        None => (KeypointIndex::default(), false),
        Some(Ok(Some(index))) => {
            tracing::info!(keypoints = index.len(), "keypoint index loaded");
            (index, true)
        }
        Some(Ok(None)) => {
            tracing::info!(
                "the keypoint index holds prints the registry lacks; building it from the registry"
            );
            (KeypointIndex::default(), false)
        }
        Some(Err(e)) => {
            tracing::warn!("keypoint index unusable ({e}); rebuilding it from the registry");
            (KeypointIndex::default(), false)
        }
    };
    let present = index.prints();
    // Prints without keypoints are never present; not missing either.
    let missing: Vec<(u64, Arc<FeatureSet>)> = features
        .iter()
        .filter(|(seq, f)| !present.contains(seq) && !f.local.descriptors.is_empty())
        .cloned()
        .collect();
    if !missing.is_empty() {
        let started = Instant::now();
        let mut done = 0;
        for chunk in missing.chunks(5000) {
            index.insert_many(chunk);
            done += chunk.len();
            tracing::info!(
                "keypoint index: added {done} of {} prints ({:.0}/s)",
                missing.len(),
                done as f32 / started.elapsed().as_secs_f32().max(1e-3)
            );
        }
    }
    let trained = index.train_if_needed();
    let as_loaded = was_loaded && missing.is_empty() && !trained;
    (index, as_loaded)
}
