//! `wharf health`: whether a broker answers, for container health checks
//! (Docker's HEALTHCHECK runs it inside the image). One connection and an
//! ApiVersions round trip to the first bootstrap address, bounded by a few
//! seconds; exit 0 when it answers, 1 otherwise. Unlike `wharf cluster
//! health`, it says nothing about partitions: a broker that answers is
//! healthy, as a container orchestrator means it. Without an address, the
//! binary's `main` fills it in from the broker's own configuration (the
//! client crate does not know `wharf serve`'s settings).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::cluster_client::parse_bootstrap;
use crate::{ClientError, Connection, ConnectionOptions};

/// Flags of `wharf health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The broker to check, host:port (only the first of a list is tried).
    /// Without it, `wharf` finds the broker that `wharf serve` would run
    /// with the same configuration: the port of its listener from the
    /// `--config` file, `KAFKA_*` and `WHARF_*` variables, reached on
    /// 127.0.0.1 when it listens on every interface.
    #[arg(long = "bootstrap-server", env = "WHARF_BOOTSTRAP")]
    pub bootstrap_server: Option<String>,
    /// The broker's Kafka server.properties, read (with the environment)
    /// to find its listener when no --bootstrap-server is given; as
    /// `wharf serve --config`, it defaults to $WHARF_CONFIG.
    #[arg(long = "config", value_name = "FILE")]
    pub config_file: Option<std::path::PathBuf>,
    /// Most milliseconds to wait for the answer.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
}

pub async fn run(args: HealthArgs) -> Result<ExitCode, ClientError> {
    let Some(bootstrap) = args.bootstrap_server.as_deref() else {
        return Err(ClientError::Invalid(
            "no broker address: give --bootstrap-server".to_string(),
        ));
    };
    let bootstrap = parse_bootstrap(bootstrap)?;
    let Some(addr) = bootstrap.first() else {
        return Err(ClientError::Invalid("no bootstrap address".to_string()));
    };
    let timeout = Duration::from_millis(args.timeout_ms);
    let options = ConnectionOptions {
        client_id: "wharf-health".to_string(),
        connect_timeout: timeout,
        request_timeout: timeout,
        ..ConnectionOptions::default()
    };
    match Connection::connect(addr, options).await {
        Ok(_) => {
            println!("ok: {addr} answers");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("wharf: unhealthy: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
