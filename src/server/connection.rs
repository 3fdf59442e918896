//! One client connection: read a frame, dispatch it through the registry
//! (`dispatch.rs`), write the response, in order. Kafka's own rule is one request at a time
//! per connection, so responses leave in request order by construction; a
//! slow request (a long-polling fetch) holds only its own connection.
//!
//! What a client controls is bounded: the read buffer grows with the bytes
//! that arrive, not with the size a frame's prefix claims, and past a small
//! first buffer it is charged to the broker-wide request budget (reading
//! pauses while that is spent); a connection without a request for
//! `connections.max.idle.ms`, a frame not completed within the request
//! read timeout, and a response the client does not read for the idle time
//! all close the connection.
//!
//! On an SSL or SASL_SSL listener the bytes pass through TLS (the handshake
//! comes first, within its timeout); on a SASL listener the SASL exchange
//! (`security::sasl`) must succeed before any request but ApiVersions.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use wharf_protocol::frame::{FrameDecoder, FrameError};
use wharf_protocol::header::HeaderError;

use super::dispatch::{dispatch, response_head, Client, DispatchError};
use crate::broker::Broker;
use crate::budget::{RequestBudget, RequestCharge, ResponseBudget};
use crate::handlers::ResponseBody;
use crate::security::sasl::{SaslSession, Step};
use crate::security::stream::{looks_like_kafka, looks_like_tls, Stream};
use crate::security::{ListenerSecurity, ANONYMOUS};

/// Why a connection is closed early. Each is logged once, at warn level.
#[derive(Debug, thiserror::Error)]
enum CloseReason {
    #[error("bad frame: {0}")]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Request(#[from] DispatchError),
    #[error("could not encode a response header: {0}")]
    Header(#[from] HeaderError),
    #[error("connection ended in the middle of a request frame")]
    TruncatedFrame,
    #[error("no request for {} ms (--connections-max-idle-ms)", .0.as_millis())]
    Idle(Duration),
    #[error("request frame not completed within {} ms (--request-read-timeout-ms)", .0.as_millis())]
    RequestTimeout(Duration),
    #[error("client read none of its response for {} ms (--connections-max-idle-ms)", .0.as_millis())]
    WriteStalled(Duration),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("a TLS handshake arrived on PLAINTEXT/SASL_PLAINTEXT listener {0} (the client is set up for SSL)")]
    TlsOnPlaintext(Arc<str>),
    #[error("{0}")]
    Sasl(String),
}

/// Bytes a connection may buffer without charge to the request budget:
/// the first read buffer, which holds whole most requests.
pub const READ_BASE: usize = 8 * 1024;

/// How far the read buffer may grow ahead of the bytes received: to this
/// many times what it holds. Larger means fewer reallocations (and copies)
/// while a large request arrives; smaller, less room a client reserves with
/// bytes it never sends.
const READ_GROWTH: usize = 4;

/// What every connection of a server shares: its limits and budgets.
#[derive(Debug)]
pub struct Shared {
    pub max_request_size: usize,
    /// Longest wait for a request, or for a response's write to progress.
    pub idle_timeout: Duration,
    /// Longest a request frame may take to arrive once started.
    pub request_timeout: Duration,
    pub request_budget: Arc<RequestBudget>,
    pub response_budget: Arc<ResponseBudget>,
}

/// What a read waits for, which decides its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// The first byte of a request: the idle timeout.
    Request,
    /// The rest of a started frame: the request read timeout.
    RestOfFrame,
}

pub struct Connection {
    /// Plain or TLS. Unbuffered: each response leaves in one vectored
    /// write.
    stream: Stream,
    peer: SocketAddr,
    /// The name of the listener it arrived on.
    listener: Arc<str>,
    /// Its security protocol, TLS and SASL settings.
    security: Arc<ListenerSecurity>,
    /// Who the client is: its certificate's subject on SSL with a client
    /// certificate, its SASL user once authenticated, else ANONYMOUS.
    principal: Arc<str>,
    /// The SASL exchange still to finish (SASL listeners only).
    sasl: Option<SaslSession>,
    /// No request read yet: a TLS hello now means a misconfigured client.
    first_frame: bool,
    broker: Arc<Broker>,
    decoder: FrameDecoder,
    /// Bytes read but not yet consumed as frames.
    buffer: BytesMut,
    /// The request budget this connection holds: its buffer's capacity
    /// beyond `READ_BASE`, until the request in it has been handled.
    charge: RequestCharge,
    shared: Arc<Shared>,
}

impl Connection {
    /// A connection ready to read requests: on a TLS listener, once its
    /// handshake is done. `None` (logged) when the handshake fails.
    pub async fn open(
        stream: TcpStream,
        peer: SocketAddr,
        security: Arc<ListenerSecurity>,
        broker: Arc<Broker>,
        shared: Arc<Shared>,
    ) -> Option<Self> {
        // Small responses should leave at once rather than wait for more.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, "could not set TCP_NODELAY: {e}");
        }
        let listener = security.name.clone();
        let (stream, principal) = match &security.tls {
            None => (Stream::Plain(stream), None),
            Some(tls) => {
                let limit = security.handshake_timeout;
                match tokio::time::timeout(limit, handshake(stream, tls)).await {
                    Ok(Ok(Some(done))) => done,
                    Ok(Ok(None)) => {
                        // Port probes and health checks do this.
                        tracing::debug!(%peer, %listener, "closed by the client before the TLS handshake");
                        return None;
                    }
                    Ok(Err(reason)) => {
                        tracing::warn!(%peer, %listener, "closing connection: {reason}");
                        return None;
                    }
                    Err(_) => {
                        tracing::warn!(
                            %peer,
                            %listener,
                            "closing connection: TLS handshake not completed within {} ms",
                            limit.as_millis()
                        );
                        return None;
                    }
                }
            }
        };
        let sasl = security.sasl.is_some().then(SaslSession::default);
        Some(Self {
            stream,
            peer,
            listener,
            principal: Arc::from(principal.as_deref().unwrap_or(ANONYMOUS)),
            security,
            sasl,
            first_frame: true,
            broker,
            decoder: FrameDecoder::new(shared.max_request_size),
            buffer: BytesMut::with_capacity(READ_BASE),
            charge: RequestCharge::new(shared.request_budget.clone()),
            shared,
        })
    }

    /// Serves requests until the client leaves, sends something invalid, or
    /// the broker shuts down (between requests).
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let peer = self.peer;
        tracing::debug!(%peer, "connection opened");
        loop {
            let frame = tokio::select! {
                f = self.read_frame() => f,
                _ = stop.wait_for(|s| *s) => break,
            };
            let result = match frame {
                Ok(Some(frame)) if self.sasl.is_some() => {
                    match self.authenticate(frame, &stop).await {
                        Ok(true) => Ok(()),
                        Ok(false) => break,
                        Err(e) => Err(e),
                    }
                }
                Ok(Some(frame)) => self.serve(frame, stop.clone()).await,
                Ok(None) => break,
                Err(e) => Err(e),
            };
            if let Err(reason) = result {
                match reason {
                    // Routine: clients come and go.
                    CloseReason::Idle(_) => tracing::info!(%peer, "closing connection: {reason}"),
                    _ => tracing::warn!(%peer, "closing connection: {reason}"),
                }
                break;
            }
        }
        tracing::debug!(%peer, "connection closed");
    }

    /// The next whole frame, or `None` on a clean end of stream.
    async fn read_frame(&mut self) -> Result<Option<Bytes>, CloseReason> {
        let mut deadline: Option<(Waiting, Instant)> = None;
        loop {
            if self.first_frame && self.buffer.len() >= 2 {
                // No Kafka request is large enough to begin like a TLS
                // record (0x16 0x03: a size over 369 MB).
                if looks_like_tls(&self.buffer) {
                    return Err(CloseReason::TlsOnPlaintext(self.listener.clone()));
                }
                self.first_frame = false;
            }
            if let Some(frame) = self.decoder.decode(&mut self.buffer)? {
                if frame.len() > READ_BASE {
                    self.rebase();
                }
                return Ok(Some(frame));
            }
            let needed = self.decoder.needed(&self.buffer)?;
            let held = self.buffer.len();
            // Room for the rest of the frame, but never more than
            // READ_GROWTH times what has arrived.
            let target = (held + needed)
                .max(READ_BASE)
                .min(held.saturating_mul(READ_GROWTH).max(READ_BASE));
            let waiting = if held == 0 {
                Waiting::Request
            } else {
                Waiting::RestOfFrame
            };
            let (_, at) = match deadline {
                Some(d) if d.0 == waiting => d,
                _ => {
                    let limit = match waiting {
                        Waiting::Request => self.shared.idle_timeout,
                        Waiting::RestOfFrame => self.shared.request_timeout,
                    };
                    *deadline.insert((waiting, Instant::now() + limit))
                }
            };
            let Self {
                stream,
                buffer,
                charge,
                ..
            } = self;
            let read = tokio::time::timeout_at(at, async {
                if buffer.capacity() < target {
                    // Waits while the broker's request budget is spent:
                    // this connection stops reading until others finish.
                    charge.grow_to(target - READ_BASE).await;
                    buffer.reserve(target - held);
                }
                stream.read_buf(buffer).await
            })
            .await;
            match read {
                Err(_) => {
                    return Err(match waiting {
                        Waiting::Request => CloseReason::Idle(self.shared.idle_timeout),
                        Waiting::RestOfFrame => {
                            CloseReason::RequestTimeout(self.shared.request_timeout)
                        }
                    })
                }
                Ok(Ok(0)) => {
                    return if self.buffer.is_empty() {
                        Ok(None)
                    } else {
                        Err(CloseReason::TruncatedFrame)
                    };
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// Moves what follows a large frame into a fresh first-size buffer, so
    /// the large one is freed once its request is handled rather than kept
    /// for reuse without charge.
    fn rebase(&mut self) {
        let mut fresh = BytesMut::with_capacity(self.buffer.len().max(READ_BASE));
        fresh.extend_from_slice(&self.buffer);
        self.buffer = fresh;
    }

    /// Gives back the request budget held for a handled request, keeping
    /// what covers bytes still buffered (pipelined requests).
    fn release_request(&mut self) {
        self.charge
            .shrink_to(self.buffer.capacity().saturating_sub(READ_BASE));
    }

    async fn serve(
        &mut self,
        frame: Bytes,
        stop: watch::Receiver<bool>,
    ) -> Result<(), CloseReason> {
        let client = Client {
            host: format!("/{}", self.peer.ip()),
            listener: self.listener.clone(),
            shutdown: stop,
            response_budget: self.shared.response_budget.clone(),
            principal: self.principal.clone(),
        };
        // Until the broker has applied its first metadata image and loaded
        // its coordinators, requests wait here (milliseconds for a lone
        // node).
        self.broker.wait_ready().await;
        let done = dispatch(&self.broker, frame, &client).await;
        // The request's bytes are gone with the handler's future.
        self.release_request();
        let done = done?;
        match done.body {
            Some(body) => {
                self.write_response(done.api_key, done.api_version, done.correlation_id, body)
                    .await
            }
            None => Ok(()),
        }
    }

    /// Writes the size prefix, the response header and the body's chunks
    /// with vectored writes (usually one system call), copying nothing.
    async fn write_response(
        &mut self,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        body: ResponseBody,
    ) -> Result<(), CloseReason> {
        let head = response_head(api_key, version, correlation_id, body.len())?;
        let mut slices: Vec<IoSlice<'_>> = std::iter::once(&head[..])
            .chain(body.chunks().iter().map(|c| &c[..]))
            .filter(|c| !c.is_empty())
            .map(IoSlice::new)
            .collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let batch = rest.len().min(MAX_IOVECS);
            let idle = self.shared.idle_timeout;
            let written = tokio::time::timeout(idle, self.stream.write_vectored(&rest[..batch]))
                .await
                .map_err(|_| CloseReason::WriteStalled(idle))??;
            if written == 0 {
                return Err(CloseReason::Io(std::io::ErrorKind::WriteZero.into()));
            }
            IoSlice::advance_slices(&mut rest, written);
        }
        // TLS may hold the last record until flushed; TCP holds nothing.
        self.flush().await
    }

    async fn flush(&mut self) -> Result<(), CloseReason> {
        let idle = self.shared.idle_timeout;
        tokio::time::timeout(idle, self.stream.flush())
            .await
            .map_err(|_| CloseReason::WriteStalled(idle))??;
        Ok(())
    }

    /// Writes one whole frame (a SASL exchange's answer).
    async fn write_frame(&mut self, frame: &[u8]) -> Result<(), CloseReason> {
        let idle = self.shared.idle_timeout;
        tokio::time::timeout(idle, self.stream.write_all(frame))
            .await
            .map_err(|_| CloseReason::WriteStalled(idle))??;
        self.flush().await
    }

    /// One frame of the SASL exchange. `Ok(false)`: authentication failed
    /// and the connection closes (logged here, with the peer and who tried,
    /// never the password).
    async fn authenticate(
        &mut self,
        frame: Bytes,
        stop: &watch::Receiver<bool>,
    ) -> Result<bool, CloseReason> {
        let (Some(session), Some(server)) = (self.sasl.as_mut(), self.security.sasl.clone()) else {
            return Ok(true);
        };
        // SCRAM users live in the metadata image: like requests, the
        // exchange waits for the first one to be applied.
        self.broker.wait_ready().await;
        let image = self.broker.image();
        let credentials =
            |user: &str, mechanism: i8| image.scram_credential(user, mechanism).cloned();
        let step = session.on_frame(&server, &credentials, frame);
        self.release_request();
        match step {
            Step::Dispatch(frame) => self.serve(frame, stop.clone()).await?,
            Step::Reply(reply) => self.write_frame(&reply).await?,
            Step::Authenticated {
                reply,
                principal,
                mechanism,
            } => {
                self.write_frame(&reply).await?;
                tracing::debug!(peer = %self.peer, listener = %self.listener, %principal, %mechanism, "authenticated");
                self.principal = Arc::from(principal);
                self.sasl = None;
            }
            Step::Failed {
                reply,
                mechanism,
                refusal,
            } => {
                let principal = refusal
                    .user
                    .as_deref()
                    .map_or_else(|| "(none)".to_string(), |u| format!("User:{u}"));
                tracing::warn!(
                    target: "wharf::audit",
                    peer = %self.peer,
                    listener = %self.listener,
                    %principal,
                    mechanism = mechanism.as_deref().unwrap_or("(none)"),
                    detail = refusal.detail.as_deref().unwrap_or(""),
                    "authentication failed: {}",
                    refusal.message
                );
                // Slows password guessing: the answer, and the close, wait.
                tokio::time::sleep(self.security.failed_auth_delay).await;
                if let Some(reply) = reply {
                    if let Err(e) = self.write_frame(&reply).await {
                        tracing::debug!(peer = %self.peer, "could not send the authentication failure: {e}");
                    }
                }
                return Ok(false);
            }
            Step::Close(reason) => return Err(CloseReason::Sasl(reason)),
        }
        Ok(true)
    }
}

/// The TLS handshake on an accepted socket: the stream and, when the
/// client showed a certificate, its principal; `None` when the client
/// closed without a byte. A client speaking plain Kafka to the TLS port is
/// told apart from a failed handshake.
async fn handshake(
    stream: TcpStream,
    tls: &crate::security::tls::Tls,
) -> Result<Option<(Stream, Option<String>)>, String> {
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(0) => return Ok(None),
        Ok(_) if looks_like_kafka(&first) => {
            return Err(
                "a plaintext Kafka request arrived on a TLS listener (the client is not set up for SSL)"
                    .into(),
            )
        }
        Ok(_) => {}
        Err(e) => return Err(format!("I/O error before the TLS handshake: {e}")),
    }
    let stream = tls
        .acceptor
        .accept(stream)
        .await
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    let principal = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(crate::security::tls::principal_of);
    Ok(Some((Stream::Tls(Box::new(stream)), principal)))
}

/// Most buffers one `writev` takes (Linux's IOV_MAX).
const MAX_IOVECS: usize = 1024;
