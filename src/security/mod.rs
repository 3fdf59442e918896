//! Listener security, Kafka's way: each listener has a security protocol
//! (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL, from
//! `listener.security.protocol.map`), TLS settings from Kafka's `ssl.*`
//! keys, and SASL settings from its `sasl.*` keys and JAAS configuration.
//! Every key may also be given per listener as
//! `listener.name.<name>.<key>` (the name in lower case), which wins.
//!
//! The connection task asks this module for three things: the TLS
//! handshake (`tls`), the stream type that hides whether bytes are
//! encrypted (`stream`), and the SASL exchange that must come before any
//! other request on a SASL listener (`sasl`).

pub mod authz;
pub mod keys;
pub mod sasl;
pub mod scram;
pub mod stream;
pub mod tls;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use keys::SecurityKeys;

/// Kafka's principal for a connection nobody authenticated on.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// The four security protocols of Kafka's listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    pub fn parse(name: &str) -> Option<Protocol> {
        match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(Protocol::Plaintext),
            "SSL" => Some(Protocol::Ssl),
            "SASL_PLAINTEXT" => Some(Protocol::SaslPlaintext),
            "SASL_SSL" => Some(Protocol::SaslSsl),
            _ => None,
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Plaintext => "PLAINTEXT",
            Protocol::Ssl => "SSL",
            Protocol::SaslPlaintext => "SASL_PLAINTEXT",
            Protocol::SaslSsl => "SASL_SSL",
        })
    }
}

/// Why a listener's security settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("listener {listener}: {reason}")]
    Listener { listener: String, reason: String },
    #[error("{0}")]
    Key(String),
}

impl SecurityError {
    fn listener(listener: &str, reason: impl fmt::Display) -> Self {
        SecurityError::Listener {
            listener: listener.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// The security protocol of each listener: `map` (Kafka's
/// `listener.security.protocol.map`, `NAME:PROTOCOL,...`), else the
/// listener's own name when it is a protocol's (Kafka's default map).
pub fn parse_protocol_map(map: &str) -> Result<BTreeMap<String, Protocol>, String> {
    let mut out = BTreeMap::new();
    for pair in map.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, protocol) = pair
            .split_once(':')
            .ok_or_else(|| format!("{pair:?} is not NAME:PROTOCOL"))?;
        let protocol = Protocol::parse(protocol.trim()).ok_or_else(|| {
            format!(
                "{pair:?}: unknown security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)"
            )
        })?;
        out.insert(name.trim().to_string(), protocol);
    }
    Ok(out)
}

/// The protocol of listener `name` under `map`. Without a map, a listener
/// named after a protocol has it and any other is PLAINTEXT (Wharf's
/// listeners before security, such as `EXTERNAL://`, keep working); with
/// one, every listener must be in it, as in Kafka.
pub fn protocol_of(
    name: &str,
    map: Option<&BTreeMap<String, Protocol>>,
) -> Result<Protocol, SecurityError> {
    match map {
        Some(map) => map.get(name).copied().ok_or_else(|| {
            SecurityError::listener(
                name,
                "has no security protocol in --listener-security-protocol-map (listener.security.protocol.map)",
            )
        }),
        None => Ok(Protocol::parse(name).unwrap_or(Protocol::Plaintext)),
    }
}

/// What the connections of one listener need to secure themselves.
pub struct ListenerSecurity {
    pub name: Arc<str>,
    pub protocol: Protocol,
    /// For SSL and SASL_SSL.
    pub tls: Option<tls::Tls>,
    /// For SASL_PLAINTEXT and SASL_SSL.
    pub sasl: Option<Arc<sasl::SaslServer>>,
    /// Longest a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// How long a failed authentication waits before its answer and the
    /// close (Kafka's connection.failed.authentication.delay.ms).
    pub failed_auth_delay: Duration,
}

impl fmt::Debug for ListenerSecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerSecurity")
            .field("name", &self.name)
            .field("protocol", &self.protocol)
            .field("tls", &self.tls.is_some())
            .field("sasl", &self.sasl.is_some())
            .finish()
    }
}

impl ListenerSecurity {
    /// A PLAINTEXT listener: no TLS, no SASL.
    pub fn plaintext(name: Arc<str>) -> Self {
        ListenerSecurity {
            name,
            protocol: Protocol::Plaintext,
            tls: None,
            sasl: None,
            handshake_timeout: Duration::from_secs(10),
            failed_auth_delay: Duration::from_millis(100),
        }
    }

    /// Builds listener `name`'s security from the keys; reads the key and
    /// certificate files now, so a mistake stops the start.
    pub fn build(
        name: Arc<str>,
        protocol: Protocol,
        keys: &SecurityKeys,
        handshake_timeout: Duration,
        failed_auth_delay: Duration,
    ) -> Result<Self, SecurityError> {
        let view = keys.listener(&name);
        let tls = if protocol.uses_tls() {
            Some(tls::Tls::build(&view).map_err(|e| SecurityError::listener(&name, e))?)
        } else {
            None
        };
        let sasl = if protocol.uses_sasl() {
            Some(Arc::new(
                sasl::SaslServer::build(&view).map_err(|e| SecurityError::listener(&name, e))?,
            ))
        } else {
            None
        };
        Ok(ListenerSecurity {
            name,
            protocol,
            tls,
            sasl,
            handshake_timeout,
            failed_auth_delay,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_is_its_names_protocol_unless_the_map_says_otherwise() {
        assert_eq!(protocol_of("SASL_SSL", None).unwrap(), Protocol::SaslSsl);
        assert_eq!(protocol_of("EXTERNAL", None).unwrap(), Protocol::Plaintext);
        let map = parse_protocol_map("EXTERNAL:SSL, INTERNAL:PLAINTEXT").unwrap();
        assert_eq!(protocol_of("EXTERNAL", Some(&map)).unwrap(), Protocol::Ssl);
        assert!(protocol_of("SSL", Some(&map)).is_err());
        assert!(parse_protocol_map("A:TLS").is_err());
        assert!(parse_protocol_map("A").is_err());
    }
}
