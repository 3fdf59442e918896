//! One request frame to one response: decode the header, look the API up in
//! the registry, run its handler. The connection task and the fuzz targets
//! share this function, so what the fuzzer reaches is what a socket reaches.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;
use tokio::sync::watch;
use tracing::Instrument;
use wharf_protocol::frame;
use wharf_protocol::header::{self, HeaderError};

use crate::broker::Broker;
use crate::handlers::{self, HandlerError, Request, ResponseBody};
use crate::registry;

/// Why a request gets no answer and its connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("bad request header: {0}")]
    Header(#[from] HeaderError),
    #[error("API {0:?} is not supported")]
    UnsupportedApi(ApiKey),
    #[error("{api:?} v{version} is not supported (this broker serves v{min}-v{max})")]
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        min: i16,
        max: i16,
    },
    #[error(transparent)]
    Handler(#[from] HandlerError),
    #[error(
        "{principal} may not send {api:?} (served to super users only while the authorizer is on)"
    )]
    Unauthorized { api: ApiKey, principal: String },
}

/// Who sent a request, as the handlers see it.
#[derive(Debug, Clone)]
pub struct Client {
    /// The client's address as Kafka shows it in DescribeGroups ("/ip").
    pub host: String,
    /// The listener it connected to.
    pub listener: Arc<str>,
    /// Flips to true when the broker shuts down; long waits end early.
    pub shutdown: watch::Receiver<bool>,
    /// The broker-wide budget of response bytes not yet written.
    pub response_budget: Arc<crate::budget::ResponseBudget>,
    /// Who the client is (`User:alice`, `User:CN=...`, `User:ANONYMOUS`),
    /// for authorization.
    pub principal: Arc<str>,
}

/// A handled request: what the response header needs, and the body.
#[derive(Debug)]
pub struct Dispatched {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    /// `None` when the client expects no answer (Produce with acks=0).
    pub body: Option<ResponseBody>,
}

/// Handles one request frame (without its size prefix).
pub async fn dispatch(
    broker: &Arc<Broker>,
    mut frame: Bytes,
    client: &Client,
) -> Result<Dispatched, DispatchError> {
    let size = frame.len();
    let parsed = header::decode_request_header(&mut frame)?;
    let version = parsed.header.request_api_version;
    let correlation_id = parsed.header.correlation_id;
    let client_id = parsed.header.client_id.as_deref().unwrap_or("");
    let span = tracing::debug_span!(
        "request",
        api_key = ?parsed.api_key,
        api_version = version,
        correlation_id,
        client_id,
    );
    let api =
        registry::lookup(parsed.api_key).ok_or(DispatchError::UnsupportedApi(parsed.api_key))?;
    // Counts the request and its latency when dropped (see crate::metrics).
    let mut timer = broker.metrics.request_timer(parsed.api_key);
    broker.metrics.request_size(parsed.api_key, size);
    let body = if api.supports(version) {
        let request = Request {
            broker: broker.clone(),
            api_key: parsed.api_key,
            api_version: version,
            body: frame,
            shutdown: client.shutdown.clone(),
            client_id: client_id.to_string(),
            client_host: client.host.clone(),
            listener: client.listener.clone(),
            response_budget: client.response_budget.clone(),
            principal: client.principal.clone(),
        };
        if !crate::security::authz::gate(&request) {
            timer.finish(crate::metrics::Outcome::None);
            return Err(DispatchError::Unauthorized {
                api: parsed.api_key,
                principal: client.principal.to_string(),
            });
        }
        crate::faults::intercept(request, api.handle)
            .instrument(span)
            .await?
    } else if parsed.api_key == ApiKey::ApiVersions {
        // Tell the client which versions we know, in the v0 layout every
        // client can read.
        span.in_scope(|| tracing::debug!("unknown ApiVersions version; answering with v0"));
        Some(ResponseBody::One(
            handlers::api_versions::unsupported_version_response(),
        ))
    } else {
        timer.finish(crate::metrics::Outcome::UnsupportedVersion);
        return Err(DispatchError::UnsupportedVersion {
            api: parsed.api_key,
            version,
            min: api.min_version,
            max: api.max_version,
        });
    };
    timer.finish(crate::metrics::Outcome::None);
    Ok(Dispatched {
        api_key: parsed.api_key,
        api_version: version,
        correlation_id,
        body,
    })
}

/// The size prefix and response header that go before a body of
/// `body_len` bytes.
pub fn response_head(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body_len: usize,
) -> Result<BytesMut, HeaderError> {
    let mut head = BytesMut::with_capacity(16);
    head.extend_from_slice(&[0; frame::SIZE_PREFIX_LEN]);
    header::encode_response_header(&mut head, api_key, api_version, correlation_id)?;
    let size = frame::size_prefix(head.len() - frame::SIZE_PREFIX_LEN + body_len);
    head[..frame::SIZE_PREFIX_LEN].copy_from_slice(&size);
    Ok(head)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn response_head_sizes_the_frame_for_header_and_body() {
        // Metadata v12 answers with header v1: correlation id and tags.
        let head = response_head(ApiKey::Metadata, 12, 7, 10).unwrap();
        assert_eq!(&head[..], &[0, 0, 0, 15, 0, 0, 0, 7, 0]);
        // ApiVersions always answers with header v0.
        let head = response_head(ApiKey::ApiVersions, 3, 7, 10).unwrap();
        assert_eq!(&head[..], &[0, 0, 0, 14, 0, 0, 0, 7]);
    }
}
