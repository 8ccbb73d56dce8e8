//! The `huaxing` binary: logging set-up and the CLI; the work is in the library.

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() {
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
