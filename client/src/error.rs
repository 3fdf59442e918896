//! The client's one error type.

use std::time::Duration;

use kafka_protocol::error::ResponseError;

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
    /// No address of the bootstrap list (nor any known broker) answered.
    #[error("no broker reachable at {bootstrap} (last error: {last})")]
    Unreachable { bootstrap: String, last: String },
    /// The broker answered with a Kafka error code.
    #[error("{context}: {}{}", error_name(*code), message.as_deref().filter(|m| !m.is_empty()).map(|m| format!(": {m}")).unwrap_or_default())]
    Broker {
        /// What was being done, in plain words ("could not create topic 'a'").
        context: String,
        code: i16,
        /// The broker's own error message, when it sent one.
        message: Option<String>,
    },
    /// Something the user asked for that cannot be done (unknown topic,
    /// malformed argument), found on the client side.
    #[error("{0}")]
    Invalid(String),
    /// Reading input (a file, stdin) or writing output failed.
    #[error("{what}: {source}")]
    Local {
        what: String,
        source: std::io::Error,
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

    /// Whether retrying after refreshing metadata (or finding the
    /// coordinator again) may succeed: a lost connection, or one of the
    /// error codes Kafka's clients retry on.
    pub fn is_retriable_after_refresh(&self) -> bool {
        match self {
            ClientError::Broker { code, .. } => is_retriable_code(*code),
            other => other.is_retriable(),
        }
    }

    /// A broker error for `code`, or `Ok` when `code` is 0.
    pub fn check(
        code: i16,
        message: Option<&str>,
        context: impl FnOnce() -> String,
    ) -> Result<(), ClientError> {
        if code == 0 {
            return Ok(());
        }
        Err(ClientError::Broker {
            context: context(),
            code,
            message: message.map(str::to_string),
        })
    }
}

/// Error codes after which a client refreshes its metadata (or looks for
/// the coordinator again) and retries: leadership or coordination moved or
/// is being decided, or the broker timed out.
pub fn is_retriable_code(code: i16) -> bool {
    matches!(
        code,
        5   // LEADER_NOT_AVAILABLE
        | 6 // NOT_LEADER_OR_FOLLOWER
        | 7 // REQUEST_TIMED_OUT
        | 13 // NETWORK_EXCEPTION
        | 14 // COORDINATOR_LOAD_IN_PROGRESS
        | 15 // COORDINATOR_NOT_AVAILABLE
        | 16 // NOT_COORDINATOR
        | 19 // NOT_ENOUGH_REPLICAS
        | 20 // NOT_ENOUGH_REPLICAS_AFTER_APPEND
        | 41 // NOT_CONTROLLER
        | 74 // FENCED_LEADER_EPOCH
        | 75 // UNKNOWN_LEADER_EPOCH
        | 89 // THROTTLING_QUOTA_EXCEEDED
    )
}

/// Kafka's name for an error code, as its tools print it
/// (`TOPIC_ALREADY_EXISTS`).
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(ResponseError::Unknown(code)) => format!("error code {code}"),
        Some(known) => {
            let camel = known.to_string();
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_get_kafkas_names() {
        assert_eq!(error_name(36), "TOPIC_ALREADY_EXISTS");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(9999), "error code 9999");
    }

    #[test]
    fn a_broker_error_reads_as_plain_words_with_the_brokers_message() {
        let err = ClientError::Broker {
            context: "could not create topic 'a'".into(),
            code: 36,
            message: Some("Topic 'a' already exists.".into()),
        };
        assert_eq!(
            err.to_string(),
            "could not create topic 'a': TOPIC_ALREADY_EXISTS: Topic 'a' already exists."
        );
        assert!(!err.is_retriable_after_refresh());
        let moved = ClientError::Broker {
            context: "x".into(),
            code: 6,
            message: None,
        };
        assert_eq!(moved.to_string(), "x: NOT_LEADER_OR_FOLLOWER");
        assert!(moved.is_retriable_after_refresh());
    }
}
