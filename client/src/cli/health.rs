//! `wharf health`: whether a broker answers, for container health checks
//! (Docker's HEALTHCHECK runs it inside the image). One connection and an
//! ApiVersions round trip to the first bootstrap address, bounded by a few
//! seconds; exit 0 when it answers, 1 otherwise. Unlike `wharf cluster
//! health`, it says nothing about partitions: a broker that answers is
//! healthy, as a container orchestrator means it.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::ConnectArgs;
use crate::cluster_client::parse_bootstrap;
use crate::{ClientError, Connection, ConnectionOptions};

/// Flags of `wharf health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Most milliseconds to wait for the answer.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
}

pub async fn run(args: HealthArgs) -> Result<ExitCode, ClientError> {
    let bootstrap = parse_bootstrap(&args.connect.bootstrap_server)?;
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
