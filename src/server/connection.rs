//! One client connection: read a frame, dispatch it through the registry
//! (`dispatch.rs`), write the response, in order. Kafka's own rule is one request at a time
//! per connection, so responses leave in request order by construction; a
//! slow request (a long-polling fetch) holds only its own connection.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use wharf_protocol::frame::{FrameDecoder, FrameError};
use wharf_protocol::header::HeaderError;

use super::dispatch::{dispatch, response_head, Client, DispatchError};
use crate::broker::Broker;
use crate::handlers::ResponseBody;

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
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub struct Connection {
    reader: OwnedReadHalf,
    /// Unbuffered: each response leaves in one vectored write.
    writer: OwnedWriteHalf,
    peer: SocketAddr,
    broker: Arc<Broker>,
    decoder: FrameDecoder,
    /// Bytes read but not yet consumed as frames.
    buffer: BytesMut,
}

impl Connection {
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        broker: Arc<Broker>,
        max_request_size: usize,
    ) -> Self {
        // Small responses should leave at once rather than wait for more.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, "could not set TCP_NODELAY: {e}");
        }
        let (reader, writer) = stream.into_split();
        Self {
            reader,
            writer,
            peer,
            broker,
            decoder: FrameDecoder::new(max_request_size),
            buffer: BytesMut::with_capacity(8 * 1024),
        }
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
                Ok(Some(frame)) => self.serve(frame, stop.clone()).await,
                Ok(None) => break,
                Err(e) => Err(e),
            };
            if let Err(reason) = result {
                tracing::warn!(%peer, "closing connection: {reason}");
                break;
            }
        }
        tracing::debug!(%peer, "connection closed");
    }

    /// The next whole frame, or `None` on a clean end of stream.
    async fn read_frame(&mut self) -> Result<Option<Bytes>, CloseReason> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buffer)? {
                return Ok(Some(frame));
            }
            let needed = self.decoder.needed(&self.buffer)?;
            self.buffer.reserve(needed.min(1024 * 1024));
            if self.reader.read_buf(&mut self.buffer).await? == 0 {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(CloseReason::TruncatedFrame)
                };
            }
        }
    }

    async fn serve(
        &mut self,
        frame: Bytes,
        stop: watch::Receiver<bool>,
    ) -> Result<(), CloseReason> {
        let client = Client {
            host: format!("/{}", self.peer.ip()),
            shutdown: stop,
        };
        let done = dispatch(&self.broker, frame, &client).await?;
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
            let written = self.writer.write_vectored(&rest[..batch]).await?;
            if written == 0 {
                return Err(CloseReason::Io(std::io::ErrorKind::WriteZero.into()));
            }
            IoSlice::advance_slices(&mut rest, written);
        }
        Ok(())
    }
}

/// Most buffers one `writev` takes (Linux's IOV_MAX).
const MAX_IOVECS: usize = 1024;
