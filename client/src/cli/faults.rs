//! `wharf faults add|list|clear`: the broker's protocol-level fault rules,
//! through its admin listener (`wharf serve --admin-listen HOST:PORT`), a
//! small HTTP/1.1 JSON API.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::output::{print, print_json, Table};
use super::OutputFormat;
use crate::ClientError;

/// How long one exchange with the admin listener may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The longest answer read.
const MAX_ANSWER: u64 = 1024 * 1024;

#[derive(Debug, Args)]
pub struct FaultsArgs {
    /// The broker's admin listener (its --admin-listen address).
    #[arg(long, env = "WHARF_ADMIN", value_name = "HOST:PORT", global = true)]
    pub admin: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub output: OutputFormat,
    #[command(subcommand)]
    pub command: FaultsCommand,
}

#[derive(Debug, Subcommand)]
pub enum FaultsCommand {
    /// Add a rule: requests it matches fail, wait, or lose their connection.
    Add(AddArgs),
    /// List the rules in force.
    List,
    /// Remove every rule.
    Clear,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("action").required(true).args(["error", "latency", "drop_connection"]))]
pub struct AddArgs {
    /// The Kafka API to match (Produce, Fetch, JoinGroup, ...; any case),
    /// or `any`.
    #[arg(long, default_value = "any")]
    pub api: String,
    /// Only requests for this topic (Produce and Fetch).
    #[arg(long)]
    pub topic: Option<String>,
    /// Answer with this Kafka error (NOT_LEADER_OR_FOLLOWER, ...).
    #[arg(long)]
    pub error: Option<String>,
    /// Delay the answer by this long (500ms, 2s).
    #[arg(long)]
    pub latency: Option<String>,
    /// Close the connection instead of answering.
    #[arg(long)]
    pub drop_connection: bool,
    /// Fire this many times, then expire (default: until cleared).
    #[arg(long)]
    pub count: Option<u64>,
    /// The chance (0 to 1) that a matching request is hit (default 1).
    #[arg(long)]
    pub probability: Option<f64>,
}

pub async fn run(args: FaultsArgs) -> Result<ExitCode, ClientError> {
    let admin = args.admin.ok_or_else(|| {
        ClientError::Invalid(
            "--admin HOST:PORT is required (the broker's --admin-listen address)".to_string(),
        )
    })?;
    let answer = match &args.command {
        FaultsCommand::List => call(&admin, "GET", None).await?,
        FaultsCommand::Clear => call(&admin, "DELETE", None).await?,
        FaultsCommand::Add(add) => {
            let spec = json!({
                "api": add.api,
                "topic": add.topic,
                "error": add.error,
                "latency": add.latency,
                "drop_connection": add.drop_connection,
                "count": add.count,
                "probability": add.probability,
            });
            call(&admin, "POST", Some(&spec)).await?
        }
    };
    if args.output == OutputFormat::Json {
        print_json(&answer)?;
        return Ok(ExitCode::SUCCESS);
    }
    match &args.command {
        FaultsCommand::Clear => print(&format!(
            "cleared {} rule(s)\n",
            answer.get("cleared").and_then(Value::as_u64).unwrap_or(0)
        ))?,
        FaultsCommand::List => print(&table(answer.as_array().map_or(&[][..], Vec::as_slice)))?,
        FaultsCommand::Add(_) => print(&table(std::slice::from_ref(&answer)))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Rules as an aligned table.
fn table(rules: &[Value]) -> String {
    let mut t = Table::new(&[
        "ID",
        "API",
        "TOPIC",
        "ACTION",
        "REMAINING",
        "PROBABILITY",
        "FIRED",
    ]);
    let text = |v: &Value, key: &str| match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "-".to_string(),
    };
    for rule in rules {
        let action = match rule.get("action").and_then(Value::as_str) {
            Some("error") => format!("error {}", text(rule, "error")),
            Some("latency") => format!("latency {}ms", text(rule, "latency_ms")),
            Some(other) => other.to_string(),
            None => "-".to_string(),
        };
        t.row(vec![
            text(rule, "id"),
            text(rule, "api"),
            text(rule, "topic"),
            action,
            text(rule, "remaining"),
            text(rule, "probability"),
            text(rule, "fired"),
        ]);
    }
    t.render()
}

/// One HTTP exchange with the admin listener: the answer's JSON body, or
/// the error it reports.
async fn call(admin: &str, method: &str, body: Option<&Value>) -> Result<Value, ClientError> {
    tokio::time::timeout(TIMEOUT, exchange(admin, method, body))
        .await
        .map_err(|_| ClientError::Timeout {
            addr: admin.to_string(),
            timeout: TIMEOUT,
        })?
}

async fn exchange(admin: &str, method: &str, body: Option<&Value>) -> Result<Value, ClientError> {
    let io = |source| ClientError::Io {
        addr: admin.to_string(),
        source,
    };
    let mut stream = TcpStream::connect(admin)
        .await
        .map_err(|source| ClientError::Connect {
            addr: admin.to_string(),
            source,
        })?;
    let payload = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} /faults HTTP/1.1\r\nHost: {admin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .await
        .map_err(io)?;
    parse_answer(&answer).map_err(|reason| ClientError::Invalid(format!("{admin}: {reason}")))
}

/// The JSON body of a 2xx answer; otherwise the error it carries.
fn parse_answer(answer: &[u8]) -> Result<Value, String> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("not an HTTP answer (is this the --admin-listen address?)")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("not an HTTP answer (is this the --admin-listen address?)")?;
    let value: Value =
        serde_json::from_str(body.trim()).map_err(|e| format!("bad JSON in the answer: {e}"))?;
    if (200..300).contains(&status) {
        Ok(value)
    } else {
        let message = value
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        Err(format!("refused (HTTP {status}): {message}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_bodies_or_their_errors() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n[]\n";
        assert_eq!(parse_answer(ok), Ok(json!([])));
        let refused = b"HTTP/1.1 400 Bad Request\r\n\r\n{\"error\":\"unknown Kafka API\"}";
        assert_eq!(
            parse_answer(refused),
            Err("refused (HTTP 400): unknown Kafka API".to_string())
        );
        assert!(parse_answer(b"garbage").is_err());
    }

    #[test]
    fn rules_print_as_a_table() {
        let rules = [
            json!({"id": 1, "api": "Produce", "topic": "orders", "action": "error",
            "error": "NOT_LEADER_OR_FOLLOWER", "remaining": 3, "probability": 1.0, "fired": 0}),
        ];
        let out = table(&rules);
        assert!(out.contains("error NOT_LEADER_OR_FOLLOWER"), "{out}");
        assert!(out.starts_with("ID  API"), "{out}");
    }
}
