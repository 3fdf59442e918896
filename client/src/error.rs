//! The client's one error type.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("could not connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("I/O error talking to {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("{addr} closed the connection")]
    Closed { addr: String },
    #[error(
        "{addr} supports no version of API {api} that this client speaks ({ours_min}-{ours_max})"
    )]
    UnsupportedVersion {
        addr: String,
        api: i16,
        ours_min: i16,
        ours_max: i16,
    },
    #[error("could not encode a request for API {api} v{version}: {reason}")]
    Encode {
        api: i16,
        version: i16,
        reason: String,
    },
    #[error("malformed response from {addr} to API {api} v{version}: {reason}")]
    Malformed {
        addr: String,
        api: i16,
        version: i16,
        reason: String,
    },
    #[error("response from {addr} is {size} bytes, over the {max}-byte limit")]
    ResponseTooLarge {
        addr: String,
        size: usize,
        max: usize,
    },
}

impl ClientError {
    /// Whether a new connection may succeed where this one failed (the peer
    /// is down, restarting or slow), as opposed to a protocol mismatch.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. }
                | ClientError::Io { .. }
                | ClientError::Timeout { .. }
                | ClientError::Closed { .. }
        )
    }
}
