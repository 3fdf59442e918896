//! SASL on SASL_PLAINTEXT and SASL_SSL listeners: the exchange a client
//! must finish before any request but ApiVersions (Kafka's
//! SaslServerAuthenticator), and the PLAIN mechanism with users from a
//! JAAS configuration (`user_<name>="<password>"` options of
//! `PlainLoginModule`).
//!
//! The exchange is a state machine fed whole request frames: SaslHandshake
//! (v0 or v1) picks the mechanism; with v1 the tokens come in
//! SaslAuthenticate requests (v0-v2), with v0 as bare size-prefixed
//! frames. Anything else before the end closes the connection, as Kafka
//! does.

use std::collections::BTreeMap;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError;
use wharf_protocol::header;

use super::keys::{ListenerKeys, MECHANISMS};
use super::scram::{ScramExchange, ScramStep};
use crate::server::dispatch::response_head;
use wharf_coordinator::metadata::scram::ScramCredential;

/// SaslHandshake versions served.
pub const HANDSHAKE_VERSIONS: (i16, i16) = (0, 1);
/// SaslAuthenticate versions served.
pub const AUTHENTICATE_VERSIONS: (i16, i16) = (0, 2);

/// Kafka's answer to a wrong PLAIN user or password.
const BAD_CREDENTIALS: &str = "Authentication failed: Invalid username or password";

/// A listener's SASL settings: its mechanisms and their users.
pub struct SaslServer {
    mechanisms: Vec<String>,
    /// PLAIN's users and passwords.
    plain_users: BTreeMap<String, String>,
}

impl fmt::Debug for SaslServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslServer")
            .field("mechanisms", &self.mechanisms)
            .field("plain_users", &self.plain_users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SaslServer {
    pub fn build(keys: &ListenerKeys<'_>) -> Result<Self, String> {
        let mechanisms: Vec<String> = keys
            .get("sasl.enabled.mechanisms")
            .unwrap_or("PLAIN")
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect();
        if mechanisms.is_empty() {
            return Err("sasl.enabled.mechanisms names no mechanism".into());
        }
        let mut plain_users = BTreeMap::new();
        for mechanism in &mechanisms {
            match mechanism.as_str() {
                "PLAIN" => {
                    let jaas = keys.jaas("PLAIN").ok_or_else(|| {
                        "SASL PLAIN needs its users: set listener.name.<listener>.plain.sasl.jaas.config (or sasl.jaas.config) to a PlainLoginModule with user_<name>=\"<password>\" options".to_string()
                    })?;
                    plain_users = plain_users_of(jaas)?;
                }
                // Users and credentials come from the cluster metadata.
                "SCRAM-SHA-256" | "SCRAM-SHA-512" => {}
                other => {
                    return Err(format!(
                        "sasl.enabled.mechanisms: {other} is not supported (Wharf serves {})",
                        MECHANISMS.join(", ")
                    ))
                }
            }
        }
        Ok(SaslServer {
            mechanisms,
            plain_users,
        })
    }

    pub fn mechanisms(&self) -> &[String] {
        &self.mechanisms
    }

    /// Checks a PLAIN token (`[authzid] NUL user NUL password`): the
    /// principal, or why not (the attempted user, if any, and a message
    /// for the client that holds no secret).
    pub fn plain(&self, token: &[u8]) -> Result<String, Refusal> {
        let parts: Vec<&[u8]> = token.split(|b| *b == 0).collect();
        let [authzid, user, password] = parts[..] else {
            return Err(Refusal {
                user: None,
                message: format!(
                    "Invalid SASL/PLAIN response: expected 3 tokens, got {}",
                    parts.len()
                ),
                detail: None,
            });
        };
        let (Ok(authzid), Ok(user)) = (std::str::from_utf8(authzid), std::str::from_utf8(user))
        else {
            return Err(Refusal {
                user: None,
                message: "Invalid SASL/PLAIN response: not UTF-8".into(),
                detail: None,
            });
        };
        if user.is_empty() {
            return Err(Refusal {
                user: None,
                message: "Authentication failed: username not specified".into(),
                detail: None,
            });
        }
        let refused = |message: &str| Refusal {
            user: Some(user.to_string()),
            message: message.to_string(),
            detail: None,
        };
        if password.is_empty() {
            return Err(refused("Authentication failed: password not specified"));
        }
        if !authzid.is_empty() && authzid != user {
            return Err(refused(
                "Authentication failed: Client requested an authorization id that is different from username",
            ));
        }
        match self.plain_users.get(user) {
            Some(expected) if same_bytes(expected.as_bytes(), password) => {
                Ok(format!("User:{user}"))
            }
            _ => Err(refused(BAD_CREDENTIALS)),
        }
    }
}

/// A failed authentication: who tried (never the password) and what the
/// client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub user: Option<String>,
    pub message: String,
    /// More for the audit log than the client is told (never a secret).
    pub detail: Option<String>,
}

/// Compares without stopping at the first differing byte.
pub(super) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The users of a JAAS configuration's PlainLoginModule.
fn plain_users_of(jaas: &str) -> Result<BTreeMap<String, String>, String> {
    let modules = parse_jaas(jaas).map_err(|e| format!("sasl.jaas.config: {e}"))?;
    let module = modules
        .iter()
        .find(|m| m.class.ends_with("PlainLoginModule"))
        .ok_or(
            "sasl.jaas.config: no org.apache.kafka.common.security.plain.PlainLoginModule in it",
        )?;
    let users: BTreeMap<String, String> = module
        .options
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("user_")?.to_string(), v.clone())))
        .collect();
    if users.is_empty() {
        return Err(
            "sasl.jaas.config: the PlainLoginModule has no user_<name>=\"<password>\" option"
                .into(),
        );
    }
    Ok(users)
}

/// One login module of a JAAS configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginModule {
    pub class: String,
    pub flag: String,
    pub options: Vec<(String, String)>,
}

/// Parses JAAS login module entries: `Class flag key=value ...;` repeated,
/// values bare or double-quoted (with `\` escapes).
pub fn parse_jaas(text: &str) -> Result<Vec<LoginModule>, String> {
    #[derive(Debug, PartialEq)]
    enum Token {
        Word(String),
        Equals,
        End,
    }
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '=' => {
                chars.next();
                tokens.push(Token::Equals);
            }
            ';' => {
                chars.next();
                tokens.push(Token::End);
            }
            '"' => {
                chars.next();
                let mut word = String::new();
                loop {
                    match chars.next() {
                        None => return Err("a quoted value is not closed".into()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(escaped) => word.push(escaped),
                            None => return Err("a quoted value is not closed".into()),
                        },
                        Some(other) => word.push(other),
                    }
                }
                tokens.push(Token::Word(word));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '=' || c == ';' || c == '"' {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    let mut modules = Vec::new();
    let mut it = tokens.into_iter().peekable();
    while it.peek().is_some() {
        let Some(Token::Word(class)) = it.next() else {
            return Err("expected a login module class name".into());
        };
        let flag = match it.next() {
            Some(Token::Word(flag))
                if matches!(
                    flag.as_str(),
                    "required" | "requisite" | "sufficient" | "optional"
                ) =>
            {
                flag
            }
            _ => {
                return Err(format!(
                    "{class}: expected a control flag (required, requisite, sufficient, optional)"
                ))
            }
        };
        let mut options = Vec::new();
        loop {
            match it.next() {
                Some(Token::End) => break,
                Some(Token::Word(key)) => {
                    if it.next() != Some(Token::Equals) {
                        return Err(format!("{class}: option {key} has no =value"));
                    }
                    let Some(Token::Word(value)) = it.next() else {
                        return Err(format!("{class}: option {key} has no value"));
                    };
                    options.push((key, value));
                }
                _ => return Err(format!("{class}: the entry does not end with ;")),
            }
        }
        modules.push(LoginModule {
            class,
            flag,
            options,
        });
    }
    if modules.is_empty() {
        return Err("no login module".into());
    }
    Ok(modules)
}

/// Where a connection's SASL exchange stands.
#[derive(Debug)]
enum Phase {
    /// Waiting for SaslHandshake.
    Handshake,
    /// Mechanism chosen; waiting for its token, in a SaslAuthenticate
    /// request (`bare` false) or as a bare frame (after SaslHandshake v0).
    Authenticate {
        mechanism: String,
        bare: bool,
        /// The SCRAM exchange's state across its two rounds.
        scram: Option<Box<ScramExchange>>,
    },
}

/// Looks up user's SCRAM credential for a mechanism type (the broker's
/// metadata image).
pub type ScramCredentials<'a> = &'a dyn Fn(&str, i8) -> Option<ScramCredential>;

/// What one token of the exchange leads to.
enum Outcome {
    /// Another round: send this token back.
    Challenge(Vec<u8>),
    /// Authenticated as the principal; send the token back.
    Done(String, Vec<u8>),
}

/// What the connection does with a frame of the exchange.
#[derive(Debug)]
pub enum Step {
    /// Not part of the exchange (ApiVersions): dispatch it as usual.
    Dispatch(Bytes),
    /// Write this frame (size prefix included) and read on.
    Reply(Bytes),
    /// Authenticated: write the frame (if any), then serve requests as
    /// `principal`.
    Authenticated {
        reply: Bytes,
        principal: String,
        mechanism: String,
    },
    /// Refused: wait the failed-authentication delay, write the frame (if
    /// any), close.
    Failed {
        reply: Option<Bytes>,
        mechanism: Option<String>,
        refusal: Refusal,
    },
    /// A request out of place: close at once.
    Close(String),
}

/// One connection's SASL exchange.
#[derive(Debug)]
pub struct SaslSession {
    phase: Phase,
}

impl Default for SaslSession {
    fn default() -> Self {
        SaslSession {
            phase: Phase::Handshake,
        }
    }
}

impl SaslSession {
    /// The next step for one request frame (without its size prefix).
    pub fn on_frame(
        &mut self,
        server: &SaslServer,
        credentials: ScramCredentials<'_>,
        frame: Bytes,
    ) -> Step {
        if let Phase::Authenticate {
            mechanism,
            bare: true,
            scram,
        } = &mut self.phase
        {
            let mechanism = mechanism.clone();
            return match authenticate(server, &mechanism, scram, credentials, &frame) {
                Ok(Outcome::Challenge(token)) => Step::Reply(bare_frame(&token)),
                Ok(Outcome::Done(principal, token)) => Step::Authenticated {
                    // The last token back as a bare size-prefixed frame.
                    reply: bare_frame(&token),
                    principal,
                    mechanism,
                },
                Err(refusal) => Step::Failed {
                    reply: None,
                    mechanism: Some(mechanism),
                    refusal,
                },
            };
        }
        let mut body = frame.clone();
        let parsed = match header::decode_request_header(&mut body) {
            Ok(parsed) => parsed,
            Err(e) => {
                return Step::Close(format!(
                    "bad request header during SASL authentication: {e}"
                ))
            }
        };
        let version = parsed.header.request_api_version;
        let correlation_id = parsed.header.correlation_id;
        match (parsed.api_key, &mut self.phase) {
            (ApiKey::ApiVersions, Phase::Handshake) => Step::Dispatch(frame),
            (ApiKey::SaslHandshake, Phase::Handshake) => {
                if !(HANDSHAKE_VERSIONS.0..=HANDSHAKE_VERSIONS.1).contains(&version) {
                    return Step::Close(format!("SaslHandshake v{version} is not supported"));
                }
                let request = match SaslHandshakeRequest::decode(&mut body, version) {
                    Ok(r) => r,
                    Err(e) => return Step::Close(format!("malformed SaslHandshake: {e}")),
                };
                let mechanism = request.mechanism.to_string();
                let mut response = SaslHandshakeResponse::default();
                response.mechanisms = server
                    .mechanisms
                    .iter()
                    .map(|m| StrBytes::from_string(m.clone()))
                    .collect();
                let enabled = server.mechanisms.contains(&mechanism);
                if !enabled {
                    response.error_code = ResponseError::UnsupportedSaslMechanism.code();
                }
                let reply = match encode(ApiKey::SaslHandshake, version, correlation_id, &response)
                {
                    Ok(reply) => reply,
                    Err(e) => return Step::Close(e),
                };
                if !enabled {
                    return Step::Failed {
                        reply: Some(reply),
                        mechanism: None,
                        refusal: Refusal {
                            user: None,
                            message: format!(
                                "Unsupported SASL mechanism {mechanism} (enabled: {})",
                                server.mechanisms.join(", ")
                            ),
                            detail: None,
                        },
                    };
                }
                let scram = super::scram::Mechanism::from_name(&mechanism)
                    .map(|m| Box::new(ScramExchange::new(m)));
                self.phase = Phase::Authenticate {
                    mechanism,
                    bare: version == 0,
                    scram,
                };
                Step::Reply(reply)
            }
            (
                ApiKey::SaslAuthenticate,
                Phase::Authenticate {
                    mechanism, scram, ..
                },
            ) => {
                if !(AUTHENTICATE_VERSIONS.0..=AUTHENTICATE_VERSIONS.1).contains(&version) {
                    return Step::Close(format!("SaslAuthenticate v{version} is not supported"));
                }
                let mechanism = mechanism.clone();
                let request = match SaslAuthenticateRequest::decode(&mut body, version) {
                    Ok(r) => r,
                    Err(e) => return Step::Close(format!("malformed SaslAuthenticate: {e}")),
                };
                let outcome =
                    authenticate(server, &mechanism, scram, credentials, &request.auth_bytes);
                let mut response = SaslAuthenticateResponse::default();
                match &outcome {
                    Err(refusal) => {
                        response.error_code = ResponseError::SaslAuthenticationFailed.code();
                        response.error_message =
                            Some(StrBytes::from_string(refusal.message.clone()));
                    }
                    Ok(Outcome::Challenge(token) | Outcome::Done(_, token)) => {
                        response.auth_bytes = Bytes::copy_from_slice(token);
                    }
                }
                let reply =
                    match encode(ApiKey::SaslAuthenticate, version, correlation_id, &response) {
                        Ok(reply) => reply,
                        Err(e) => return Step::Close(e),
                    };
                match outcome {
                    Ok(Outcome::Challenge(_)) => Step::Reply(reply),
                    Ok(Outcome::Done(principal, _)) => Step::Authenticated {
                        reply,
                        principal,
                        mechanism,
                    },
                    Err(refusal) => Step::Failed {
                        reply: Some(reply),
                        mechanism: Some(mechanism),
                        refusal,
                    },
                }
            }
            (api, Phase::Handshake) => Step::Close(format!(
                "unexpected {api:?} request during SASL handshake (a SASL listener needs SaslHandshake first)"
            )),
            (api, Phase::Authenticate { .. }) => Step::Close(format!(
                "unexpected {api:?} request during SASL authentication (expected SaslAuthenticate)"
            )),
        }
    }
}

fn authenticate(
    server: &SaslServer,
    mechanism: &str,
    scram: &mut Option<Box<ScramExchange>>,
    credentials: ScramCredentials<'_>,
    token: &[u8],
) -> Result<Outcome, Refusal> {
    if let Some(exchange) = scram {
        let Some(kind) = super::scram::Mechanism::from_name(mechanism) else {
            return Err(unsupported(mechanism));
        };
        let lookup = |user: &str| credentials(user, kind.type_id());
        return match exchange.step(token, &lookup) {
            ScramStep::Challenge(token) => Ok(Outcome::Challenge(token)),
            ScramStep::Authenticated { principal, reply } => Ok(Outcome::Done(principal, reply)),
            ScramStep::Refused(refusal) => Err(refusal),
        };
    }
    match mechanism {
        "PLAIN" => server.plain(token).map(|p| Outcome::Done(p, Vec::new())),
        other => Err(unsupported(other)),
    }
}

fn unsupported(mechanism: &str) -> Refusal {
    Refusal {
        user: None,
        message: format!("Unsupported SASL mechanism {mechanism}"),
        detail: None,
    }
}

/// A token as a bare frame (after SaslHandshake v0): size prefix, bytes.
fn bare_frame(token: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(4 + token.len());
    out.put_u32(u32::try_from(token.len()).unwrap_or(u32::MAX));
    out.put_slice(token);
    out.freeze()
}

/// A whole response frame: size prefix, header, body.
fn encode<T: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<Bytes, String> {
    let mut encoded = BytesMut::new();
    body.encode(&mut encoded, version)
        .map_err(|e| format!("could not encode the {api_key:?} response: {e}"))?;
    let mut frame = response_head(api_key, version, correlation_id, encoded.len())
        .map_err(|e| format!("could not encode the {api_key:?} response header: {e}"))?;
    frame.put(encoded);
    Ok(frame.freeze())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::security::keys::SecurityKeys;
    use kafka_protocol::messages::RequestHeader;

    const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required
        username="admin" password="admin-secret"
        user_admin="admin-secret" user_alice="alice \"quoted\" secret";"#;

    fn no_scram(_: &str, _: i8) -> Option<ScramCredential> {
        None
    }

    fn server() -> SaslServer {
        let mut keys = SecurityKeys::default();
        keys.0.insert(
            "listener.name.sasl_plaintext.plain.sasl.jaas.config".into(),
            JAAS.into(),
        );
        SaslServer::build(&keys.listener("SASL_PLAINTEXT")).unwrap()
    }

    fn request<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Bytes {
        let mut header = RequestHeader::default();
        header.request_api_key = key as i16;
        header.request_api_version = version;
        header.correlation_id = 9;
        header.client_id = Some(StrBytes::from_static_str("t"));
        let mut out = BytesMut::new();
        header
            .encode(&mut out, key.request_header_version(version))
            .unwrap();
        body.encode(&mut out, version).unwrap();
        out.freeze()
    }

    fn handshake(mechanism: &str, version: i16) -> Bytes {
        let mut body = SaslHandshakeRequest::default();
        body.mechanism = StrBytes::from_string(mechanism.into());
        request(ApiKey::SaslHandshake, version, &body)
    }

    fn authenticate_request(token: &[u8], version: i16) -> Bytes {
        let mut body = SaslAuthenticateRequest::default();
        body.auth_bytes = Bytes::copy_from_slice(token);
        request(ApiKey::SaslAuthenticate, version, &body)
    }

    fn decode_reply<T: Decodable>(reply: &Bytes, header_len: usize, version: i16) -> T {
        let mut body = reply.slice(4 + header_len..);
        T::decode(&mut body, version).unwrap()
    }

    #[test]
    fn parses_users_from_kafkas_jaas_form() {
        let users = plain_users_of(JAAS).unwrap();
        assert_eq!(users.get("admin").unwrap(), "admin-secret");
        assert_eq!(users.get("alice").unwrap(), "alice \"quoted\" secret");
        assert_eq!(users.len(), 2);
        assert!(parse_jaas("Foo required a=\"b\"").is_err(), "no ;");
        assert!(parse_jaas("Foo always a=b;").is_err(), "bad flag");
        assert!(plain_users_of("x.ScramLoginModule required;").is_err());
    }

    #[test]
    fn plain_checks_user_password_and_authzid() {
        let server = server();
        assert_eq!(
            server.plain(b"\0admin\0admin-secret").unwrap(),
            "User:admin"
        );
        assert_eq!(
            server.plain(b"admin\0admin\0admin-secret").unwrap(),
            "User:admin"
        );
        let wrong = server.plain(b"\0admin\0nope").unwrap_err();
        assert_eq!(wrong.user.as_deref(), Some("admin"));
        assert_eq!(wrong.message, BAD_CREDENTIALS);
        assert!(!wrong.message.contains("nope"));
        assert!(server.plain(b"\0ghost\0admin-secret").is_err());
        assert!(server.plain(b"bob\0admin\0admin-secret").is_err());
        assert!(server.plain(b"admin-secret").is_err());
        assert!(server.plain(b"\0\0x").is_err());
    }

    #[test]
    fn handshake_v1_then_authenticate_succeeds() {
        let server = server();
        let mut session = SaslSession::default();
        let Step::Reply(reply) = session.on_frame(&server, &no_scram, handshake("PLAIN", 1)) else {
            panic!("no handshake reply")
        };
        let response: SaslHandshakeResponse = decode_reply(&reply, 4, 1);
        assert_eq!(response.error_code, 0);
        assert_eq!(
            response.mechanisms,
            vec![StrBytes::from_static_str("PLAIN")]
        );
        match session.on_frame(
            &server,
            &no_scram,
            authenticate_request(b"\0alice\0alice \"quoted\" secret", 2),
        ) {
            Step::Authenticated {
                principal, reply, ..
            } => {
                assert_eq!(principal, "User:alice");
                // v2 responses use the flexible header (correlation id + tags).
                let response: SaslAuthenticateResponse = decode_reply(&reply, 5, 2);
                assert_eq!(response.error_code, 0);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_wrong_password_fails_with_sasl_authentication_failed() {
        let server = server();
        let mut session = SaslSession::default();
        assert!(matches!(
            session.on_frame(&server, &no_scram, handshake("PLAIN", 1)),
            Step::Reply(_)
        ));
        match session.on_frame(
            &server,
            &no_scram,
            authenticate_request(b"\0alice\0wrong", 1),
        ) {
            Step::Failed {
                reply: Some(reply),
                refusal,
                ..
            } => {
                let response: SaslAuthenticateResponse = decode_reply(&reply, 4, 1);
                assert_eq!(response.error_code, 58);
                assert_eq!(response.error_message.unwrap().as_str(), BAD_CREDENTIALS);
                assert_eq!(refusal.user.as_deref(), Some("alice"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn handshake_v0_takes_a_bare_token() {
        let server = server();
        let mut session = SaslSession::default();
        assert!(matches!(
            session.on_frame(&server, &no_scram, handshake("PLAIN", 0)),
            Step::Reply(_)
        ));
        match session.on_frame(
            &server,
            &no_scram,
            Bytes::from_static(b"\0admin\0admin-secret"),
        ) {
            Step::Authenticated { reply, .. } => assert_eq!(&reply[..], &[0, 0, 0, 0]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_mechanism_is_answered_then_refused() {
        let server = server();
        let mut session = SaslSession::default();
        match session.on_frame(&server, &no_scram, handshake("SCRAM-SHA-256", 1)) {
            Step::Failed {
                reply: Some(reply), ..
            } => {
                let response: SaslHandshakeResponse = decode_reply(&reply, 4, 1);
                assert_eq!(response.error_code, 33);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn requests_before_authentication_close_the_connection() {
        let server = server();
        let mut session = SaslSession::default();
        let metadata = request(
            ApiKey::Metadata,
            12,
            &kafka_protocol::messages::MetadataRequest::default(),
        );
        assert!(matches!(
            session.on_frame(&server, &no_scram, metadata.clone()),
            Step::Close(_)
        ));
        let versions = request(
            ApiKey::ApiVersions,
            3,
            &kafka_protocol::messages::ApiVersionsRequest::default(),
        );
        assert!(matches!(
            session.on_frame(&server, &no_scram, versions),
            Step::Dispatch(_)
        ));
        assert!(matches!(
            session.on_frame(&server, &no_scram, authenticate_request(b"\0a\0b", 2)),
            Step::Close(_)
        ));
        let mut session = SaslSession::default();
        assert!(matches!(
            session.on_frame(&server, &no_scram, handshake("PLAIN", 1)),
            Step::Reply(_)
        ));
        assert!(matches!(
            session.on_frame(&server, &no_scram, metadata),
            Step::Close(_)
        ));
    }
}
