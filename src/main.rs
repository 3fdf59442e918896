//! The `wharf` command: `wharf serve` runs a broker; `wharf topic`,
//! `produce`, `consume`, `group`, `cluster` and `config` are a Kafka client
//! (in the `wharf-client` crate).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use wharf::config::{Config, LogFormat, DEFAULT_MAX_CONNECTIONS};
use wharf::{alloc, limits, server};
use wharf_client::cli::ClientCommand;

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

// Parsed once at start: the size of the broker's Config against the
// client commands does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker.
    Serve(Config),
    #[command(flatten)]
    Client(wharf_client::cli::ClientCommand),
}

fn main() -> ExitCode {
    alloc::tune_for_fetch_buffers();
    if let Some((tool, args)) = wharf_client::cli::kafka_tool_invocation(std::env::args_os()) {
        return wharf_client::cli::run_kafka_tool(tool, args);
    }
    let cli = Cli::parse();
    match cli.command {
        Command::Client(ClientCommand::Health(mut args)) if args.bootstrap_server.is_none() => {
            match serving_address(args.config_file.as_deref()) {
                Ok(address) => args.bootstrap_server = Some(address),
                Err(err) => {
                    eprintln!("wharf: unhealthy: {err}");
                    return ExitCode::FAILURE;
                }
            }
            wharf_client::cli::run(ClientCommand::Health(args))
        }
        Command::Client(command) => wharf_client::cli::run(command),
        Command::Serve(_) => {
            server::catch_early_signals();
            // Read again with Kafka's configuration (--config, KAFKA_*
            // variables) filling what flags and WHARF_* variables leave unset.
            let env = process_env();
            let serve_args = std::env::args_os().skip_while(|a| a != "serve");
            let loaded = match wharf::config::kafka::load(serve_args, &env) {
                Ok(loaded) => loaded,
                Err(err) => {
                    eprintln!("wharf: {err}");
                    return ExitCode::FAILURE;
                }
            };
            if loaded.config.print_config {
                print!("{}", loaded.report());
                return ExitCode::SUCCESS;
            }
            let config = loaded.config;
            if let Err(err) = init_logging(&config.log_level, config.log_format) {
                eprintln!("wharf: {err:#}");
                return ExitCode::FAILURE;
            }
            let mut config = config;
            // Made before anything else is logged, so that the first line
            // says where the data goes; removed when `memory` drops, after
            // the broker has stopped.
            let memory = match memory_mode(&mut config) {
                Ok(memory) => memory,
                Err(err) => {
                    tracing::error!("wharf stopped: {err:#}");
                    return ExitCode::FAILURE;
                }
            };
            for notice in &loaded.notices {
                tracing::info!("Kafka configuration: {notice}");
            }
            let result = serve(config);
            drop(memory);
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("wharf stopped: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// The process environment, as `wharf::config::kafka::load` reads it
/// (variables that are not UTF-8 are left out).
fn process_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Where a `wharf serve` started with this environment (and `--config
/// file`, else $WHARF_CONFIG) serves clients on this machine: what
/// `wharf health` checks when it is given no address.
fn serving_address(file: Option<&std::path::Path>) -> anyhow::Result<String> {
    let mut args: Vec<std::ffi::OsString> = vec!["serve".into()];
    if let Some(file) = file {
        args.push("--config".into());
        args.push(file.into());
    }
    let loaded = wharf::config::kafka::load(args, &process_env())
        .map_err(|e| anyhow::anyhow!("reading the broker's configuration: {e}"))?;
    loaded
        .config
        .local_address()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn init_logging(level: &str, format: LogFormat) -> anyhow::Result<()> {
    // openraft narrates every election at info; its warnings are enough
    // unless the filter asks for it by name.
    let directives = if level.contains("openraft") {
        level.to_string()
    } else {
        format!("{level},openraft=warn")
    };
    let filter =
        EnvFilter::try_new(&directives).with_context(|| format!("bad --log-level {level:?}"))?;
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

/// With `--memory`, makes the data directory on the memory filesystem and
/// points `config` at it.
fn memory_mode(config: &mut Config) -> anyhow::Result<Option<server::memory::MemoryDir>> {
    if !config.memory {
        return Ok(None);
    }
    let root = std::env::var_os("WHARF_MEMORY_ROOT").map_or_else(
        || server::memory::MEMORY_ROOT.into(),
        std::path::PathBuf::from,
    );
    let dir = server::memory::MemoryDir::create(&root)?;
    tracing::info!(
        dir = %dir.path().display(),
        free_mib = dir.free_bytes >> 20,
        "memory mode: every log is kept in memory (tmpfs), nothing is written to disk, and all data is removed when the broker stops"
    );
    for stale in &dir.swept {
        tracing::info!(dir = %stale.display(), "memory mode: removed the data a stopped broker left");
    }
    if dir.free_bytes < 256 << 20 {
        tracing::warn!(
            "memory mode: only {} MiB of memory filesystem are free at {}; writes fail once it is full (in Docker, raise --shm-size)",
            dir.free_bytes >> 20,
            root.display()
        );
    }
    config.data_dir = Some(dir.path().to_path_buf());
    Ok(Some(dir))
}

fn serve(mut config: Config) -> anyhow::Result<()> {
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
    let open_files = raise_open_files_limit();
    apply_fd_budget(&mut config, open_files);
    let prepared = server::prepare(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(server::serve(prepared));
    // Logs are flushed by now. Dropping the runtime would wait without end
    // for blocking tasks still running (a file operation stuck on a slow
    // disk, say); their work was never acknowledged, so exit regardless
    // after a bound, as a crash would.
    let stopping = std::time::Instant::now();
    runtime.shutdown_timeout(RUNTIME_STOP_TIMEOUT);
    if stopping.elapsed() >= RUNTIME_STOP_TIMEOUT {
        tracing::warn!(
            "blocking tasks were still running {RUNTIME_STOP_TIMEOUT:?} after the broker stopped; exiting without them"
        );
    }
    result
}

/// How long exit waits for blocking tasks once the broker has stopped.
const RUNTIME_STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Shares the open-files limit between connections and the two segment
/// file pools (the rule is in `wharf::limits`), and applies the shares.
fn apply_fd_budget(config: &mut Config, open_files: Option<u64>) {
    let budget = limits::fd_budget(
        open_files,
        u64::try_from(config.max_connections).unwrap_or(u64::MAX),
        config.max_open_segment_files,
        config.max_open_active_segment_files,
    );
    for (flag, asked, got) in &budget.lowered {
        if *flag == "--max-connections" && config.max_connections == DEFAULT_MAX_CONNECTIONS {
            tracing::info!(
                limit = budget.limit,
                "serving at most {got} connections at once: the open-files limit leaves no room for {asked}"
            );
        } else {
            tracing::warn!(
                limit = budget.limit,
                "{flag} {asked} does not fit under the open-files limit; using {got}"
            );
        }
    }
    config.max_connections = usize::try_from(budget.connections).unwrap_or(usize::MAX);
    wharf_storage::set_max_open_segment_files(
        usize::try_from(budget.read_pool).unwrap_or(usize::MAX),
    );
    wharf_storage::set_max_open_active_segment_files(
        usize::try_from(budget.write_pool).unwrap_or(usize::MAX),
    );
    tracing::info!(
        open_files_limit = budget.limit,
        reserved = budget.internal,
        connections = budget.connections,
        read_pool = budget.read_pool,
        write_pool = budget.write_pool,
        "file descriptor budget"
    );
}

/// Raises the soft limit on open files to the hard limit: a broker holds a
/// file per connection and per pooled segment file, and the usual soft
/// default (1024) runs out long before the hard one. Returns the soft limit
/// in force afterwards (`None`: unlimited).
fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some() && limit.current == limit.maximum {
        tracing::debug!(limit = ?limit.current, "open-files limit already at its maximum");
        return limit.current;
    }
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => {
            tracing::debug!(
                from = ?limit.current,
                to = ?limit.maximum,
                "raised the open-files soft limit to the hard limit"
            );
            limit.maximum
        }
        Err(e) => {
            tracing::debug!(
                soft = ?limit.current,
                hard = ?limit.maximum,
                "could not raise the open-files soft limit: {e}"
            );
            limit.current
        }
    }
}
