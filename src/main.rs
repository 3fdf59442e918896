//! The `wharf` command: `wharf serve` runs a broker.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use wharf::config::{Config, LogFormat};
use wharf::{alloc, server};

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
            if let Err(err) = init_logging(&config.log_level, config.log_format) {
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

fn init_logging(level: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level).with_context(|| format!("bad --log-level {level:?}"))?;
    let ansi = format == LogFormat::Text && std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(wharf::logging::EscapingMakeWriter::new(
            std::io::stderr,
            ansi,
        ))
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
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
    raise_open_files_limit();
    wharf_storage::set_max_open_segment_files(
        usize::try_from(config.max_open_segment_files).unwrap_or(usize::MAX),
    );
    let prepared = server::prepare(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(server::serve(prepared))
}

/// Raises the soft limit on open files to the hard limit: a broker holds a
/// file per partition's active segment and per connection, and the usual
/// soft default (1024) runs out long before the hard one.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some() && limit.current == limit.maximum {
        tracing::debug!(limit = ?limit.current, "open-files limit already at its maximum");
        return;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::debug!(
            from = ?limit.current,
            to = ?limit.maximum,
            "raised the open-files soft limit to the hard limit"
        ),
        Err(e) => tracing::debug!(
            soft = ?limit.current,
            hard = ?limit.maximum,
            "could not raise the open-files soft limit: {e}"
        ),
    }
}
