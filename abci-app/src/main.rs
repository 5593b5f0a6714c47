//! `dome-abci`: serves the dome ABCI application on a TCP socket for one CometBFT node.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

#[derive(Parser)]
#[command(
    version,
    about = "The dome ABCI application (run one beside each CometBFT v0.38 node)"
)]
struct Args {
    /// Address to listen on for CometBFT's ABCI connections (keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:26658")]
    addr: String,
    /// Directory of the app's embedded store.
    #[arg(long)]
    db: PathBuf,
    /// Log as JSON lines.
    #[arg(long)]
    json_logs: bool,
}

/// mimalloc instead of glibc malloc: every ABCI call decodes and allocates (requests, decoded
/// transactions, change sets); glibc's malloc and free showed in the profile of a loaded node.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tendermint_abci=warn"));
    if args.json_logs {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    std::fs::create_dir_all(&args.db)
        .with_context(|| format!("creating the store directory {}", args.db.display()))?;
    let app = dome_abci::DomeApp::open(&args.db.join("bus.redb"))
        .with_context(|| format!("opening the store in {}", args.db.display()))?;
    let server = dome_abci::server::SocketServer::bind(&args.addr, app)
        .with_context(|| format!("binding the ABCI socket {}", args.addr))?;
    tracing::info!(addr = %args.addr, "dome-abci listening");
    server.listen().context("ABCI server stopped")?;
    Ok(())
}
