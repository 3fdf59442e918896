//! One connection to a Kafka-compatible peer.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{ApiVersionRanges, ClientError};

/// How a [`Connection`] behaves.
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    /// Sent in every request header.
    pub client_id: String,
    pub connect_timeout: Duration,
    /// How long one request may wait for its response.
    pub request_timeout: Duration,
    /// Larger response frames close the connection.
    pub max_response_size: usize,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        Self {
            client_id: "wharf".to_string(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_response_size: wharf_protocol::frame::DEFAULT_MAX_REQUEST_SIZE,
        }
    }
}

/// A TCP connection that has negotiated API versions with its peer. One
/// request at a time: each call writes a request and reads its response.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    addr: String,
    options: ConnectionOptions,
    next_correlation_id: i32,
    versions: ApiVersionRanges,
}

impl Connection {
    /// Connects to `addr` (`host:port`) and asks it which versions it speaks.
    pub async fn connect(addr: &str, options: ConnectionOptions) -> Result<Self, ClientError> {
        let connecting = TcpStream::connect(addr);
        let stream = match tokio::time::timeout(options.connect_timeout, connecting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(ClientError::Connect {
                    addr: addr.to_string(),
                    source,
                })
            }
            Err(_) => {
                return Err(ClientError::Timeout {
                    addr: addr.to_string(),
                    timeout: options.connect_timeout,
                })
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(addr, "could not set TCP_NODELAY: {e}");
        }
        let mut connection = Self {
            stream,
            addr: addr.to_string(),
            options,
            next_correlation_id: 0,
            versions: ApiVersionRanges::default(),
        };
        connection.versions = connection.negotiate().await?;
        Ok(connection)
    }

    /// The peer's address as given to [`Connection::connect`].
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The versions the peer serves.
    pub fn versions(&self) -> &ApiVersionRanges {
        &self.versions
    }

    /// Sends `request` at the highest version both sides speak.
    pub async fn call<R: Request>(&mut self, request: &R) -> Result<R::Response, ClientError> {
        let version = self
            .versions
            .pick::<R>()
            .ok_or_else(|| ClientError::UnsupportedVersion {
                addr: self.addr.clone(),
                api: R::KEY,
                ours_min: R::VERSIONS.min,
                ours_max: R::VERSIONS.max,
            })?;
        self.call_at(request, version).await
    }

    /// Sends `request` at the highest version both sides speak, but at most
    /// `max`: for requests whose newer versions change shape in ways the
    /// caller does not fill in (Produce and Fetch by topic id from v13).
    pub async fn call_capped<R: Request>(
        &mut self,
        request: &R,
        max: i16,
    ) -> Result<R::Response, ClientError> {
        let version = self
            .versions
            .pick::<R>()
            .map(|v| v.min(max))
            .filter(|v| {
                self.versions
                    .range(R::KEY)
                    .is_some_and(|(min, _)| *v >= min)
            })
            .ok_or_else(|| ClientError::UnsupportedVersion {
                addr: self.addr.clone(),
                api: R::KEY,
                ours_min: R::VERSIONS.min,
                ours_max: max,
            })?;
        self.call_at(request, version).await
    }

    /// The version [`Connection::call`] would use for `R`.
    pub fn version_of<R: Request>(&self) -> Option<i16> {
        self.versions.pick::<R>()
    }

    /// Sends `request` at `version` and decodes the response.
    pub async fn call_at<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, ClientError> {
        let mut body = self.round_trip(request, version).await?;
        R::Response::decode(&mut body, version).map_err(|e| self.malformed(R::KEY, version, e))
    }

    /// Sends `request` at `version` without waiting for an answer: for
    /// requests the peer does not answer (Produce with acks=0).
    pub async fn send_at<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<(), ClientError> {
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = encode_request(
            request,
            version,
            self.next_correlation_id,
            &self.options.client_id,
        )?;
        let timeout = self.options.request_timeout;
        match tokio::time::timeout(timeout, self.stream.write_all(&frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.io(e)),
            Err(_) => Err(ClientError::Timeout {
                addr: self.addr.clone(),
                timeout,
            }),
        }
    }

    /// ApiVersions v3, falling back to the v0 body a peer answers with when
    /// it does not serve v3 (Kafka's rule for unknown ApiVersions versions).
    async fn negotiate(&mut self) -> Result<ApiVersionRanges, ClientError> {
        let mut request = ApiVersionsRequest::default();
        request.client_software_name = StrBytes::from_static_str("wharf");
        request.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
        let body = self.round_trip(&request, 3).await?;
        let response = match ApiVersionsResponse::decode(&mut body.clone(), 3) {
            Ok(response) if response.error_code == 0 => response,
            _ => ApiVersionsResponse::decode(&mut body.clone(), 0)
                .map_err(|e| self.malformed(ApiVersionsRequest::KEY, 0, e))?,
        };
        if response.error_code != 0 && response.api_keys.is_empty() {
            return Err(ClientError::Malformed {
                addr: self.addr.clone(),
                api: ApiVersionsRequest::KEY,
                version: 0,
                reason: format!("ApiVersions failed with error {}", response.error_code),
            });
        }
        Ok(ApiVersionRanges::from_response(&response))
    }

    /// Writes one request and returns its response body (after the header).
    async fn round_trip<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<Bytes, ClientError> {
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let correlation_id = self.next_correlation_id;
        let frame = encode_request(request, version, correlation_id, &self.options.client_id)?;
        let timeout = self.options.request_timeout;
        let exchange = async {
            self.stream
                .write_all(&frame)
                .await
                .map_err(|e| self.io(e))?;
            self.read_frame().await
        };
        let mut body = match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(ClientError::Timeout {
                    addr: self.addr.clone(),
                    timeout,
                })
            }
        };
        let header_version = R::Response::header_version(version);
        let header = ResponseHeader::decode(&mut body, header_version)
            .map_err(|e| self.malformed(R::KEY, version, e))?;
        if header.correlation_id != correlation_id {
            return Err(ClientError::Malformed {
                addr: self.addr.clone(),
                api: R::KEY,
                version,
                reason: format!(
                    "correlation id {} where {correlation_id} was expected",
                    header.correlation_id
                ),
            });
        }
        Ok(body)
    }

    async fn read_frame(&mut self) -> Result<Bytes, ClientError> {
        let mut prefix = [0u8; 4];
        self.stream
            .read_exact(&mut prefix)
            .await
            .map_err(|e| self.io(e))?;
        let size = i32::from_be_bytes(prefix);
        let size = usize::try_from(size).map_err(|_| ClientError::Malformed {
            addr: self.addr.clone(),
            api: -1,
            version: -1,
            reason: format!("negative response size {size}"),
        })?;
        if size > self.options.max_response_size {
            return Err(ClientError::ResponseTooLarge {
                addr: self.addr.clone(),
                size,
                max: self.options.max_response_size,
            });
        }
        let mut body = BytesMut::zeroed(size);
        self.stream
            .read_exact(&mut body)
            .await
            .map_err(|e| self.io(e))?;
        Ok(body.freeze())
    }

    fn io(&self, source: std::io::Error) -> ClientError {
        if source.kind() == std::io::ErrorKind::UnexpectedEof {
            ClientError::Closed {
                addr: self.addr.clone(),
            }
        } else {
            ClientError::Io {
                addr: self.addr.clone(),
                source,
            }
        }
    }

    fn malformed(&self, api: i16, version: i16, e: impl std::fmt::Display) -> ClientError {
        ClientError::Malformed {
            addr: self.addr.clone(),
            api,
            version,
            reason: e.to_string(),
        }
    }
}

/// The whole frame of a request: size prefix, header, body.
fn encode_request<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: &str,
) -> Result<BytesMut, ClientError> {
    let encode_err = |e: anyhow::Error| ClientError::Encode {
        api: R::KEY,
        version,
        reason: e.to_string(),
    };
    let mut header = RequestHeader::default();
    header.request_api_key = R::KEY;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_string(client_id.to_string()));
    let mut frame = BytesMut::with_capacity(64);
    frame.extend_from_slice(&[0; 4]);
    header
        .encode(&mut frame, R::header_version(version))
        .map_err(encode_err)?;
    request.encode(&mut frame, version).map_err(encode_err)?;
    let size = wharf_protocol::frame::size_prefix(frame.len() - 4);
    if let Some(prefix) = frame.get_mut(..4) {
        prefix.copy_from_slice(&size);
    }
    Ok(frame)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiKey, MetadataRequest};

    #[test]
    fn a_request_frame_carries_its_size_header_and_body() {
        let frame = encode_request(&MetadataRequest::default(), 12, 7, "cli").unwrap();
        let size = i32::from_be_bytes(frame[..4].try_into().unwrap());
        assert_eq!(size as usize, frame.len() - 4);
        let mut rest = Bytes::copy_from_slice(&frame[4..]);
        let parsed = wharf_protocol::header::decode_request_header(&mut rest).unwrap();
        assert_eq!(parsed.api_key, ApiKey::Metadata);
        assert_eq!(parsed.header.request_api_version, 12);
        assert_eq!(parsed.header.correlation_id, 7);
        assert_eq!(parsed.header.client_id.as_deref(), Some("cli"));
        let body = MetadataRequest::decode(&mut rest, 12).unwrap();
        assert_eq!(body, MetadataRequest::default());
    }
}
