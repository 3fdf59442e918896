//! The `--metrics-listen` endpoint: a minimal HTTP/1.1 server for one
//! path. `GET /metrics` (or `HEAD`) answers the Prometheus text; any other
//! path is 404 and any other method 405. One request per connection
//! (`Connection: close`), a request head of at most [`MAX_HEAD`] bytes, a
//! deadline for the whole exchange, and a cap on concurrent scrapes: a
//! client can hold nothing for long.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// The largest request head read (request line and headers).
const MAX_HEAD: usize = 8 * 1024;

/// How long one connection may take, from accept to the last byte written.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Scrapes served at once; more wait in the listen backlog.
const MAX_CONCURRENT: usize = 8;

/// Serves `/metrics` from `registry` on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONCURRENT));
    while let Some((permit, accepted)) =
        crate::server::accept_within(&listener, &permits, &mut stop).await
    {
        match accepted {
            Ok((stream, peer)) => {
                let registry = registry.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange(stream, registry)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::debug!(%peer, "metrics request failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "metrics request timed out"),
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!("metrics listener: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics { head_only: bool },
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// Routes a request by its request line (`GET /metrics?x=y HTTP/1.1`).
fn route(head: &[u8]) -> Route {
    let Some(line) = head
        .split(|&b| b == b'\n')
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
    else {
        return Route::BadRequest;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return Route::BadRequest;
    }
    let path = target.split('?').next().unwrap_or(target);
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => Route::Metrics {
            head_only: method == "HEAD",
        },
        ("GET" | "HEAD", _) => Route::NotFound,
        _ => Route::MethodNotAllowed,
    }
}

/// Reads the request head: up to the blank line, at most `MAX_HEAD` bytes.
/// `None` when the client closed first or sent too much.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

async fn exchange(mut stream: TcpStream, registry: Arc<Registry>) -> std::io::Result<()> {
    let Some(head) = read_head(&mut stream).await? else {
        return respond(
            &mut stream,
            "400 Bad Request",
            "text/plain",
            b"bad request\n",
            false,
        )
        .await;
    };
    match route(&head) {
        Route::Metrics { head_only } => {
            // Reading the partitions takes their logs' locks: off the async
            // workers.
            let rendered = tokio::task::spawn_blocking(move || super::render(&registry)).await;
            match rendered {
                Ok(Ok(text)) => {
                    let content_type = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
                    respond(
                        &mut stream,
                        "200 OK",
                        content_type,
                        text.as_bytes(),
                        head_only,
                    )
                    .await
                }
                _ => {
                    tracing::warn!("could not render the metrics");
                    let body = b"could not render the metrics\n";
                    respond(
                        &mut stream,
                        "500 Internal Server Error",
                        "text/plain",
                        body,
                        false,
                    )
                    .await
                }
            }
        }
        Route::NotFound => {
            respond(
                &mut stream,
                "404 Not Found",
                "text/plain",
                b"not found; try /metrics\n",
                false,
            )
            .await
        }
        Route::MethodNotAllowed => {
            let body = b"method not allowed\n";
            respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                body,
                false,
            )
            .await
        }
        Route::BadRequest => {
            respond(
                &mut stream,
                "400 Bad Request",
                "text/plain",
                b"bad request\n",
                false,
            )
            .await
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(body).await?;
    }
    stream.shutdown().await
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_method_and_path() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            route(b"HEAD /metrics?name=x HTTP/1.0\r\n\r\n"),
            Route::Metrics { head_only: true }
        );
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"GET /metricsx HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::BadRequest);
        assert_eq!(route(b"\xff\xfe\r\n\r\n"), Route::BadRequest);
    }

    async fn get(addr: std::net::SocketAddr, request: &[u8]) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request).await?;
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    #[tokio::test]
    async fn serves_metrics_and_refuses_other_paths_and_oversized_heads() {
        let counter = prometheus_client::metrics::counter::Counter::<u64>::default();
        counter.inc();
        let mut registry = Registry::default();
        registry.register("wharf_test", "a test counter", counter);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = watch::channel(false);
        let server = tokio::spawn(serve(listener, Arc::new(registry), stop_rx));

        let ok = get(addr, b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("text/plain; version=0.0.4"), "{ok}");
        assert!(ok.ends_with("wharf_test_total 1\n"), "{ok}");

        let missing = get(addr, b"GET /other HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(
            missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{missing}"
        );

        let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_HEAD * 2));
        // The server stops reading and closes: a 400, or a reset if the
        // unread bytes make the close abrupt; never a wait.
        if let Ok(refused) = get(addr, &huge).await {
            assert!(
                refused.starts_with("HTTP/1.1 400 Bad Request\r\n"),
                "{refused}"
            );
        }

        stop_tx.send(true).unwrap();
        server.await.unwrap();
    }
}
