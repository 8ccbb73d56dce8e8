//! The command line: `serve`, `import`, `search`, `compare`, `token`, `verify-proof`,
//! `verify-log`, `stats`. Flags are parsed and checked here; the work is the engine's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use crate::engine::{Config, Engine, PatternMeta, analyze};
use crate::ledger::{InclusionProof, LogKey};
use crate::registry::{Registry, Role, Status, sha256_hex};
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
        /// Let requests from this machine without a token act as admin (for trying huaxing
        /// out; only with a loopback address).
        #[arg(long)]
        open: bool,
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
    /// Manage API tokens (works while the service runs).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Verify a saved inclusion proof offline: entry, audit path, signed head, signature.
    VerifyProof {
        /// The JSON from `GET /api/v1/patterns/{id}/proof`.
        file: PathBuf,
        /// The log's public key (base64) as published; without it the key in the file is
        /// used, which proves the proof is self-consistent but not whose log it is from.
        #[arg(long)]
        key: Option<String>,
    },
    /// Recompute the whole evidence log and fail on any changed, missing or reordered entry.
    VerifyLog {
        #[arg(long, default_value = "huaxing-data")]
        data: PathBuf,
    },
    /// Bytes per registered print: on disk by part, and stored features by signal.
    Stats {
        #[arg(long, default_value = "huaxing-data")]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (it is shown only this once).
    Create {
        /// admin, clerk, court or merchant.
        #[arg(long)]
        role: String,
        /// Who holds it, unique; recorded in the log and the audit trail. Defaults to the role
        /// (so a second token of a role needs a name).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value = "huaxing-data")]
        data: PathBuf,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long, default_value = "huaxing-data")]
        data: PathBuf,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            data,
            addr,
            copy_threshold,
            open,
        } => serve(&data, &addr, config(copy_threshold)?, open),
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
        Command::Token(TokenCommand::Create { role, name, data }) => {
            let role: Role = role.parse()?;
            let name = name.unwrap_or_else(|| role.as_str().to_string());
            let secret = crate::registry::tokens::new_secret()?;
            let info = open_registry(&data)?.create_token(&secret, &name, role)?;
            eprintln!(
                "created {} token {} named {:?}; it is shown only now:",
                info.role.as_str(),
                info.id,
                info.name
            );
            println!("{secret}");
            Ok(())
        }
        Command::Token(TokenCommand::List { data }) => {
            for token in open_registry(&data)?.tokens()? {
                println!(
                    "{:>4}  {:<8}  {}  {}",
                    token.id,
                    token.role.as_str(),
                    token.created_at,
                    token.name
                );
            }
            Ok(())
        }
        Command::VerifyProof { file, key } => verify_proof(&file, key.as_deref()),
        Command::VerifyLog { data } => verify_log(&data),
        Command::Stats { data } => {
            if !data.join("registry.sqlite").exists() {
                bail!("{} holds no registry", data.display());
            }
            print!("{}", crate::stats::of_data_dir(&data)?);
            Ok(())
        }
    }
}

/// The registry alone, without the engine's lock: token commands work beside a running
/// service (SQLite serialises the writes).
fn open_registry(data: &Path) -> anyhow::Result<Registry> {
    if !data.join("registry.sqlite").exists() {
        bail!(
            "{} holds no registry (start `huaxing serve --data {}` once first)",
            data.display(),
            data.display()
        );
    }
    Ok(Registry::open(
        &data.join("registry.sqlite"),
        &data.join("log-key"),
    )?)
}

fn verify_proof(file: &Path, key: Option<&str>) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let proof: InclusionProof = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an inclusion proof", file.display()))?;
    match proof.verify(key) {
        Ok(verified) => {
            let signed_at = chrono::DateTime::from_timestamp_millis(verified.signed_at as i64)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default();
            println!(
                "OK: entry {} ({:?} of pattern {} {}, {}) is in the log of {} entries signed at {signed_at}",
                verified.entry.index,
                verified.entry.kind,
                verified.entry.pattern.registration_number,
                verified.entry.pattern.id,
                verified.entry.timestamp,
                verified.tree_size,
            );
            if key.is_none() {
                println!(
                    "note: checked against the key in the file ({}); pass --key with the published key to know whose log this is",
                    verified.public_key
                );
            }
            Ok(())
        }
        Err(why) => bail!("the proof does not verify: {why}"),
    }
}

fn verify_log(data: &Path) -> anyhow::Result<()> {
    let path = data.join("registry.sqlite");
    if !path.exists() {
        bail!("{} holds no registry", data.display());
    }
    let connection =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let key_path = data.join("log-key");
    if !key_path.exists() {
        bail!("{} holds no log key", data.display());
    }
    let key = LogKey::load_or_create(&key_path)?;
    let report = crate::registry::log::verify(&connection, &key.public_key())?;
    if report.problems.is_empty() {
        println!(
            "OK: {} entries, {} signed heads, {} patterns; every entry, head and status agrees",
            report.entries, report.heads, report.patterns
        );
        return Ok(());
    }
    for problem in &report.problems {
        eprintln!("FAILED: {problem}");
    }
    bail!(
        "the evidence log does not verify: {} problems in {} entries",
        report.problems.len(),
        report.entries
    )
}

fn config(copy_threshold: f32) -> anyhow::Result<Config> {
    if !(0.0..=1.0).contains(&copy_threshold) {
        bail!("--copy-threshold must lie in [0, 1]");
    }
    Ok(Config { copy_threshold })
}

fn serve(data: &Path, addr: &str, config: Config, open: bool) -> anyhow::Result<()> {
    let engine = Arc::new(Engine::open(data, config).context("cannot open the data directory")?);
    ensure_admin_token(&engine)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr()?;
        if open && !local.ip().is_loopback() {
            bail!("--open is only allowed on a loopback address such as 127.0.0.1");
        }
        if open {
            println!("open access: requests from this machine without a token act as admin");
        }
        println!("huaxing listening on http://{local}");
        tracing::info!("listening on http://{local}, data in {}", data.display());
        crate::api::serve(engine.clone(), listener, open).await?;
        anyhow::Ok(())
    })?;
    engine.save_index().context("cannot save the index")?;
    Ok(())
}

/// `HUAXING_ADMIN_TOKEN` becomes an admin token (for automation); otherwise the first start
/// makes one and prints it, once.
fn ensure_admin_token(engine: &Engine) -> anyhow::Result<()> {
    let registry = engine.registry();
    match std::env::var("HUAXING_ADMIN_TOKEN") {
        Ok(secret) if !secret.is_empty() => {
            // Named by its hash, so a changed variable makes a new token, not a name clash.
            let name = format!(
                "admin (HUAXING_ADMIN_TOKEN {})",
                &sha256_hex(secret.as_bytes())[..8]
            );
            registry
                .create_token(&secret, &name, Role::Admin)
                .context("cannot use HUAXING_ADMIN_TOKEN")?;
        }
        _ if !registry.has_admin_token()? => {
            let secret = crate::registry::tokens::new_secret()?;
            registry.create_token(&secret, "admin", Role::Admin)?;
            println!("admin token (shown only now; keep it): {secret}");
        }
        _ => {}
    }
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
                    submitted_by: "import".into(),
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
        // Rewrites the dumps only when the chunk (or opening, topping them up) added to them:
        // a resumed import walks past the files it registered before.
        progress.set_message("saving index");
        engine.save_index()?;
        progress.set_message("");
    }
    progress.finish();
    let failed = failed.into_inner().expect("failures lock");
    println!(
        "imported {} new prints, {} already registered, {} failed; {} look like copies of registered prints and wait for review",
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
        None,
        config.copy_threshold,
    );
    println!("{}", serde_json::to_string_pretty(&comparison)?);
    Ok(())
}
