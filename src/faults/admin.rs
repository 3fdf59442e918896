//! The admin listener (`--admin-listen HOST:PORT`): a small HTTP/1.1 JSON
//! API over the fault table, which `wharf faults` talks to.
//!
//! - `GET /faults`: the rules, as a JSON array.
//! - `POST /faults` with a [`RuleSpec`] body: adds a rule, answers with it.
//! - `DELETE /faults`: removes every rule, answers `{"cleared": N}`.
//!
//! One request per connection (the answer says `Connection: close`); heads
//! and bodies are size-capped, each exchange has a deadline, and only a few
//! connections are served at once.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::{FaultTable, Rule, RuleSpec};
use crate::broker::Broker;

/// Longest request head (request line and headers).
const MAX_HEAD: usize = 8 * 1024;
/// Longest request body.
const MAX_BODY: usize = 64 * 1024;
/// Longest one exchange may take, from accept to the answer written.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the backlog.
const MAX_CONNECTIONS: usize = 16;

/// Binds the admin listener when `--admin-listen` is given.
pub fn bind(addr: Option<&str>) -> anyhow::Result<Option<std::net::TcpListener>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("binding --admin-listen {addr}"))?;
    listener
        .set_nonblocking(true)
        .context("setting up the admin listener")?;
    let bound = listener
        .local_addr()
        .map_or_else(|_| addr.to_string(), |a| a.to_string());
    tracing::warn!(
        admin = %bound,
        "fault injection admin API listening: requests can be made to fail on purpose"
    );
    Ok(Some(listener))
}

/// Starts serving a bound admin listener; must run inside a Tokio runtime.
pub fn start(
    listener: Option<std::net::TcpListener>,
    broker: &Arc<Broker>,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    let Some(listener) = listener else {
        return Ok(None);
    };
    let listener = TcpListener::from_std(listener).context("registering the admin listener")?;
    Ok(Some(tokio::spawn(serve(listener, broker.clone()))))
}

/// Accepts admin connections until the task is aborted.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::error!("admin listener: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let broker = broker.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange(stream, &broker.faults)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%peer, "admin connection: {e}"),
                Err(_) => tracing::debug!(%peer, "admin connection timed out"),
            }
            drop(permit);
        });
    }
}

/// An HTTP answer: status and JSON body.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    body: serde_json::Value,
}

impl Answer {
    fn error(status: u16, message: impl std::fmt::Display) -> Self {
        Self {
            status,
            body: serde_json::json!({ "error": message.to_string() }),
        }
    }
}

/// Reads one request, answers it, closes.
async fn exchange(mut stream: TcpStream, table: &FaultTable) -> std::io::Result<()> {
    let answer = match read_request(&mut stream).await? {
        Ok((method, path, body)) => route(table, &method, &path, &body),
        Err(answer) => answer,
    };
    let body = answer.body.to_string();
    let reason = match answer.status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        answer.status,
        body.len() + 1
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.write_all(b"\n").await?;
    stream.shutdown().await
}

/// The method, path and body of one request, or the error answer for a
/// request that is too large or malformed.
async fn read_request(
    stream: &mut TcpStream,
) -> std::io::Result<Result<(String, String, Vec<u8>), Answer>> {
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at;
        }
        if buf.len() > MAX_HEAD {
            return Ok(Err(Answer::error(413, "request head too large")));
        }
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    };
    let head = String::from_utf8_lossy(buf.get(..head_end).unwrap_or_default()).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split_whitespace();
    let (Some(method), Some(path)) = (request_line.next(), request_line.next()) else {
        return Ok(Err(Answer::error(400, "malformed request line")));
    };
    let mut length = 0usize;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                match value.trim().parse() {
                    Ok(n) => length = n,
                    Err(_) => return Ok(Err(Answer::error(400, "bad Content-Length"))),
                }
            } else if name.trim().eq_ignore_ascii_case("transfer-encoding") {
                return Ok(Err(Answer::error(400, "chunked bodies are not accepted")));
            }
        }
    }
    if length > MAX_BODY {
        return Ok(Err(Answer::error(413, "request body too large")));
    }
    let mut body = buf.split_off(head_end + 4);
    if body.len() < length {
        let start = body.len();
        body.resize(length, 0);
        stream
            .read_exact(body.get_mut(start..).unwrap_or_default())
            .await?;
    }
    body.truncate(length);
    Ok(Ok((method.to_string(), path.to_string(), body)))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn rules_json(rules: &[Rule]) -> serde_json::Value {
    serde_json::Value::Array(
        rules
            .iter()
            .filter_map(|r| serde_json::to_value(r.view()).ok())
            .collect(),
    )
}

/// Answers one request.
fn route(table: &FaultTable, method: &str, path: &str, body: &[u8]) -> Answer {
    let path = path
        .split('?')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/');
    if path != "/faults" {
        return Answer::error(404, format!("no such resource {path:?} (try /faults)"));
    }
    match method {
        "GET" => Answer {
            status: 200,
            body: rules_json(&table.list()),
        },
        "POST" => {
            let spec: RuleSpec = match serde_json::from_slice(body) {
                Ok(spec) => spec,
                Err(e) => return Answer::error(400, format!("bad rule: {e}")),
            };
            match table.add(&spec) {
                Ok(rule) => {
                    tracing::warn!(rule = rule.id, "fault rule added: {rule}");
                    Answer {
                        status: 201,
                        body: rules_json(std::slice::from_ref(&rule))
                            .get(0)
                            .cloned()
                            .unwrap_or_default(),
                    }
                }
                Err(e) => Answer::error(400, e),
            }
        }
        "DELETE" => {
            let cleared = table.clear();
            tracing::warn!(cleared, "fault rules cleared");
            Answer {
                status: 200,
                body: serde_json::json!({ "cleared": cleared }),
            }
        }
        _ => Answer::error(405, format!("{method} is not allowed on /faults")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_added_listed_and_cleared() {
        let table = FaultTable::default();
        let added = route(
            &table,
            "POST",
            "/faults",
            br#"{"api":"Produce","topic":"orders","error":"NOT_LEADER_OR_FOLLOWER","count":3}"#,
        );
        assert_eq!(added.status, 201);
        assert_eq!(added.body["id"], 1);
        assert_eq!(added.body["error"], "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(added.body["remaining"], 3);
        let listed = route(&table, "GET", "/faults/", b"");
        assert_eq!(listed.body.as_array().unwrap().len(), 1);
        let cleared = route(&table, "DELETE", "/faults", b"");
        assert_eq!(cleared.body["cleared"], 1);
        assert!(table.is_empty());
    }

    #[test]
    fn bad_requests_get_error_answers() {
        let table = FaultTable::default();
        assert_eq!(route(&table, "POST", "/faults", b"{").status, 400);
        let unknown = route(
            &table,
            "POST",
            "/faults",
            br#"{"api":"Nope","latency":"1s"}"#,
        );
        assert_eq!(unknown.status, 400);
        assert!(unknown.body["error"].as_str().unwrap().contains("Nope"));
        assert_eq!(route(&table, "GET", "/other", b"").status, 404);
        assert_eq!(route(&table, "PUT", "/faults", b"").status, 405);
    }
}
