//! The `wharf` command: `wharf serve` runs a broker.

mod alloc;
mod broker;
mod config;
mod handlers;
mod registry;
mod server;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config::Config;

#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator::new();

#[derive(Debug, Parser)]
#[command(
    name = "wharf",
    version,
    about = "A broker that speaks the Apache Kafka protocol"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker.
    Serve(Config),
}

fn main() -> ExitCode {
    alloc::tune_for_fetch_buffers();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(config) => {
            if let Err(err) = init_logging(&config.log_level) {
                eprintln!("wharf: {err:#}");
                return ExitCode::FAILURE;
            }
            match serve(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("wharf stopped: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn init_logging(level: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level).with_context(|| format!("bad --log-level {level:?}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    Ok(())
}

fn serve(config: Config) -> anyhow::Result<()> {
    if let Some(spec) = &config.fault_injection {
        let faults = wharf_storage::io::arm_spec(spec)
            .map_err(|e| anyhow::anyhow!("bad --fault-injection {spec:?}: {e}"))?;
        for fault in faults {
            tracing::warn!(
                point = %fault.point,
                error = ?fault.error,
                trigger = ?fault.trigger,
                "fault injection armed: file I/O will fail on purpose"
            );
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(server::serve(config))
}
