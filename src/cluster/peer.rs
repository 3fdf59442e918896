//! A blocking Kafka request to another broker's client listener, for the
//! few inter-broker calls made from synchronous code (a transaction
//! coordinator's WriteTxnMarkers to partition leaders). Bounded by a
//! connect and a read timeout; the caller retries on any error.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// Largest response accepted (a WriteTxnMarkers answer is tiny).
const MAX_RESPONSE: usize = 1 << 20;

/// Sends `request` at `version` to `host:port` and returns its response.
pub fn call<R>(
    host: &str,
    port: u16,
    request: &R,
    version: i16,
    client_id: &str,
    timeout: Duration,
) -> Result<R::Response, String>
where
    R: Request,
{
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("resolving {host}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}:{port} resolves to no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("setting timeouts: {e}"))?;

    let mut header = RequestHeader::default();
    header.request_api_key = R::KEY;
    header.request_api_version = version;
    header.correlation_id = 1;
    header.client_id = Some(StrBytes::from_string(client_id.to_string()));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, R::header_version(version))
        .and_then(|()| request.encode(&mut body, version))
        .map_err(|e| format!("encoding the request: {e}"))?;
    let len = u32::try_from(body.len()).map_err(|_| "request too large".to_string())?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    stream
        .write_all(&frame)
        .map_err(|e| format!("sending to {addr}: {e}"))?;

    let mut size = [0u8; 4];
    stream
        .read_exact(&mut size)
        .map_err(|e| format!("reading from {addr}: {e}"))?;
    let size = usize::try_from(u32::from_be_bytes(size)).unwrap_or(usize::MAX);
    if size > MAX_RESPONSE {
        return Err(format!("{addr} sent a {size}-byte response"));
    }
    let mut response = vec![0u8; size];
    stream
        .read_exact(&mut response)
        .map_err(|e| format!("reading from {addr}: {e}"))?;
    let mut response = bytes::Bytes::from(response);
    let header = ResponseHeader::decode(&mut response, R::Response::header_version(version))
        .map_err(|e| format!("decoding the response header: {e}"))?;
    if header.correlation_id != 1 {
        return Err(format!("{addr} answered another request"));
    }
    let decoded = R::Response::decode(&mut response, version)
        .map_err(|e| format!("decoding the response: {e}"))?;
    if response.has_remaining() {
        return Err(format!(
            "{} bytes left after the response",
            response.remaining()
        ));
    }
    Ok(decoded)
}
