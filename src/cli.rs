//! The command line: `serve`, `import`, `search`, `compare`. Flags are parsed and checked here;
//! the work is the engine's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::engine::{Config, Engine, PatternMeta, analyze};
use crate::registry::{Status, sha256_hex};
use crate::search::DEFAULT_COPY_THRESHOLD;

/// Image file extensions `import` picks up.
const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp", "tif", "tiff", "bmp", "gif"];
/// Imports save the index after this many files, so a restart after a crash has little to redo.
const IMPORT_CHUNK: usize = 5000;

#[derive(Parser)]
#[command(
    name = "huaxing",
    version,
    about = "Tells whether a textile print is a copy of a registered one."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the HTTP API.
    Serve {
        /// Data directory (registry, uploads, index); created if missing.
        #[arg(long, default_value = "huaxing-data")]
        data: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Score at and above which a match is judged a copy.
        #[arg(long, default_value_t = DEFAULT_COPY_THRESHOLD)]
        copy_threshold: f32,
    },
    /// Register every image under a folder (resumable: files already registered are skipped).
    Import {
        /// Folder of images (PNG, JPEG, WebP, TIFF, BMP, GIF), searched recursively.
        dir: PathBuf,
        #[arg(long, default_value = "huaxing-data")]
        data: PathBuf,
        /// Owner recorded for every imported pattern.
        #[arg(long, default_value = "")]
        owner: String,
        /// registered, pre_registered or public_domain.
        #[arg(long, default_value = "registered")]
        status: String,
    },
    /// Search the registry for one image.
    Search {
        image: PathBuf,
        #[arg(long, default_value = "huaxing-data")]
        data: PathBuf,
        /// Number of results.
        #[arg(short, default_value_t = 10)]
        k: usize,
    },
    /// Compare two image files and explain the score.
    Compare {
        a: PathBuf,
        b: PathBuf,
        #[arg(long, default_value_t = DEFAULT_COPY_THRESHOLD)]
        copy_threshold: f32,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            data,
            addr,
            copy_threshold,
        } => serve(&data, &addr, config(copy_threshold)?),
        Command::Import {
            dir,
            data,
            owner,
            status,
        } => import(&dir, &data, owner, status.parse()?),
        Command::Search { image, data, k } => search(&image, &data, k),
        Command::Compare {
            a,
            b,
            copy_threshold,
        } => compare(&a, &b, config(copy_threshold)?),
    }
}

fn config(copy_threshold: f32) -> anyhow::Result<Config> {
    if !(0.0..=1.0).contains(&copy_threshold) {
        bail!("--copy-threshold must lie in [0, 1]");
    }
    Ok(Config { copy_threshold })
}

fn serve(data: &Path, addr: &str, config: Config) -> anyhow::Result<()> {
    let engine = Arc::new(Engine::open(data, config).context("cannot open the data directory")?);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        println!("huaxing listening on http://{local}");
        tracing::info!("listening on http://{local}, data in {}", data.display());
        crate::api::serve(engine.clone(), listener).await?;
        anyhow::Ok(())
    })?;
    engine.save_index().context("cannot save the index")?;
    Ok(())
}

fn image_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir).follow_links(true) {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let is_image = entry
            .path()
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if entry.file_type().is_file() && is_image {
            files.push(entry.into_path());
        }
    }
    files.sort();
    Ok(files)
}

fn import(dir: &Path, data: &Path, owner: String, status: Status) -> anyhow::Result<()> {
    let files = image_files(dir)?;
    let engine = Engine::open(data, Config::default()).context("cannot open the data directory")?;
    let progress = ProgressBar::new(files.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} prints  {per_sec}  eta {eta}  {msg}")
            .expect("static template"),
    );
    let (created, skipped, flagged) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let failed = std::sync::Mutex::new(Vec::new());
    for chunk in files.chunks(IMPORT_CHUNK) {
        chunk.par_iter().for_each(|path| {
            let outcome = (|| -> anyhow::Result<bool> {
                let bytes = std::fs::read(path)?;
                if engine.has_upload(&sha256_hex(&bytes))? {
                    return Ok(false);
                }
                let meta = PatternMeta {
                    title: path
                        .file_stem()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                    owner: owner.clone(),
                    reference: path
                        .strip_prefix(dir)
                        .unwrap_or(path)
                        .to_string_lossy()
                        .into_owned(),
                    status: Some(status),
                };
                let registration = engine.register(&bytes, meta)?;
                if !registration.duplicates.is_empty() {
                    flagged.fetch_add(1, Ordering::Relaxed);
                }
                Ok(registration.created)
            })();
            match outcome {
                Ok(true) => created.fetch_add(1, Ordering::Relaxed),
                Ok(false) => skipped.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    failed
                        .lock()
                        .expect("failures lock")
                        .push(format!("{}: {e:#}", path.display()));
                    0
                }
            };
            progress.inc(1);
        });
        progress.set_message("saving index");
        engine.save_index()?;
        progress.set_message("");
    }
    progress.finish();
    let failed = failed.into_inner().expect("failures lock");
    println!(
        "imported {} new prints, {} already registered, {} failed; {} look like copies of registered prints",
        created.into_inner(),
        skipped.into_inner(),
        failed.len(),
        flagged.into_inner()
    );
    for failure in &failed {
        eprintln!("  {failure}");
    }
    Ok(())
}

fn search(image: &Path, data: &Path, k: usize) -> anyhow::Result<()> {
    let bytes = std::fs::read(image).with_context(|| format!("cannot read {}", image.display()))?;
    let query = analyze(&bytes).with_context(|| format!("cannot use {}", image.display()))?;
    let engine = Engine::open(data, Config::default()).context("cannot open the data directory")?;
    let matches = engine.search(&query.features, k)?;
    if matches.is_empty() {
        println!("no registered patterns");
    }
    for (rank, m) in matches.iter().enumerate() {
        println!(
            "{:>2}. {:.3} {:<6} {}  {}  {}",
            rank + 1,
            m.comparison.score,
            if m.comparison.copy { "COPY" } else { "" },
            m.pattern.registration_number,
            m.pattern.title,
            m.comparison.explanation.summary
        );
    }
    Ok(())
}

fn compare(a: &Path, b: &Path, config: Config) -> anyhow::Result<()> {
    let read = |path: &Path| -> anyhow::Result<_> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        analyze(&bytes).with_context(|| format!("cannot use {}", path.display()))
    };
    let (a, b) = (read(a)?, read(b)?);
    let comparison = crate::search::compare(
        &crate::search::Query::alone(&a.features),
        &b.features,
        config.copy_threshold,
    );
    println!("{}", serde_json::to_string_pretty(&comparison)?);
    Ok(())
}
