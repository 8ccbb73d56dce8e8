//! The `huaxing` binary: logging set-up and the CLI; the work is in the library.

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() {
    tune_malloc();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,hnsw_rs=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(error) = huaxing::cli::run(huaxing::cli::Cli::parse()) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

/// glibc gives each thread that meets contention its own heap, up to eight per core, and each
/// keeps what its thread freed: after a thousand searches the service held a quarter more
/// memory than just after start-up (261 vs 206 MiB at 11k prints). One heap per core: 227 MiB,
/// at the same search speed.
///
/// Every print allocates and frees buffers of one to a few MiB (the decoded upload, the Lab and
/// structure images, the scale space). With its default thresholds glibc gave such buffers
/// back to the kernel when they were freed and faulted them in again, zeroed, for the next
/// print: a fifth of an import's CPU time went to the kernel, mostly flushing the other core's
/// TLB. Keeping up to 64 MiB free at the top of a heap, and mapping apart only buffers
/// over 32 MiB, takes that share to 3%. Setting one threshold fixes the other at its default,
/// which alone was worse than neither: both are set (docs/scale.md, step 29).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, cores.try_into().unwrap_or(i32::MAX));
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}
