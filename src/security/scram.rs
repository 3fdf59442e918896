//! SASL SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka
//! serves them: no channel binding (gs2 header `n,,` or `n,a=<user>,`),
//! users and their credentials from the cluster metadata
//! (UserScramCredentialRecords; see `wharf_coordinator::metadata::scram`).
//!
//! The exchange is two rounds:
//!
//! 1. client-first `n,,n=<user>,r=<client nonce>[,<extensions>]` →
//!    server-first `r=<client nonce><server nonce>,s=<salt>,i=<iterations>`;
//! 2. client-final `c=<base64 gs2 header>,r=<nonce>,p=<proof>` →
//!    server-final `v=<server signature>`.
//!
//! Any malformed message, an unknown user, a wrong nonce or proof is a
//! [`Refusal`] with Kafka's generic answer; the detail is for the audit log
//! only. Kafka's `tokenauth` extension (delegation tokens) is refused: Wharf
//! has no delegation tokens. Everything here is sans-io and never panics on
//! input (the fuzz target `scram` feeds it arbitrary bytes).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use wharf_coordinator::metadata::scram::ScramCredential;

use super::sasl::{same_bytes, Refusal};

pub use wharf_client::scram::{random_bytes, Mechanism, SCRAM_SHA_256, SCRAM_SHA_512};

/// The stored key and server key of `salted_password` for mechanism type
/// `mechanism` (what the controller keeps of an AlterUserScramCredentials
/// upsertion).
pub fn derive_keys(mechanism: i8, salted_password: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mechanism = Mechanism::from_type(mechanism)?;
    let (_, stored_key, server_key) = mechanism.keys(salted_password);
    Some((stored_key, server_key))
}

/// A parsed client-first message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// `n,,` or `n,a=<authzid>,`, as sent (the client-final's `c=`).
    pub gs2_header: String,
    pub authzid: String,
    pub user: String,
    pub nonce: String,
    /// Everything after the gs2 header (part of the AuthMessage).
    pub bare: String,
    pub extensions: Vec<(String, String)>,
}

/// A parsed client-final message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFinal {
    pub channel_binding: Vec<u8>,
    pub nonce: String,
    pub proof: Vec<u8>,
    /// The message up to (not including) `,p=` (part of the AuthMessage).
    pub without_proof: String,
}

/// A SCRAM `saslname`: `=2C` is `,` and `=3D` is `=`; any other `=` or a
/// bare `,` is malformed.
fn decode_saslname(name: &str) -> Result<String, String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(r) = tail.strip_prefix("=2C") {
            out.push(',');
            rest = r;
        } else if let Some(r) = tail.strip_prefix("=3D") {
            out.push('=');
            rest = r;
        } else {
            return Err(format!("invalid escape in the user name {name:?}"));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A nonce is printable ASCII without `,`.
fn valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// An `x=value` attribute.
fn attribute(part: &str, name: char) -> Option<&str> {
    let mut chars = part.chars();
    (chars.next() == Some(name) && chars.next() == Some('=')).then(|| &part[2..])
}

pub fn parse_client_first(message: &[u8]) -> Result<ClientFirst, String> {
    let text = std::str::from_utf8(message).map_err(|_| "the client-first message is not UTF-8")?;
    let rest = text
        .strip_prefix("n,")
        .ok_or("the client-first message does not start with the gs2 header n, (channel binding is not supported)")?;
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or("the client-first message has no user")?;
    let authzid = if authzid.is_empty() {
        String::new()
    } else {
        decode_saslname(
            attribute(authzid, 'a').ok_or("the gs2 header's authorization id is not a=<name>")?,
        )?
    };
    let gs2_header = text[..text.len() - bare.len()].to_string();
    let mut parts = bare.split(',');
    let user = parts
        .next()
        .and_then(|p| attribute(p, 'n'))
        .ok_or("the client-first message has no n=<user>")?;
    let user = decode_saslname(user)?;
    if user.is_empty() {
        return Err("the client-first message names an empty user".into());
    }
    let nonce = parts
        .next()
        .and_then(|p| attribute(p, 'r'))
        .ok_or("the client-first message has no r=<nonce>")?;
    if !valid_nonce(nonce) {
        return Err("the client nonce is empty or not printable".into());
    }
    let mut extensions = Vec::new();
    for part in parts {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("extension {part:?} is not key=value"))?;
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!("extension {part:?} has an invalid name"));
        }
        extensions.push((key.to_string(), value.to_string()));
    }
    Ok(ClientFirst {
        gs2_header,
        authzid,
        user,
        nonce: nonce.to_string(),
        bare: bare.to_string(),
        extensions,
    })
}

pub fn parse_client_final(message: &[u8]) -> Result<ClientFinal, String> {
    let text = std::str::from_utf8(message).map_err(|_| "the client-final message is not UTF-8")?;
    let (without_proof, proof) = text
        .rsplit_once(",p=")
        .ok_or("the client-final message has no p=<proof>")?;
    let proof = STANDARD
        .decode(proof)
        .map_err(|_| "the client proof is not base64")?;
    let mut parts = without_proof.split(',');
    let binding = parts
        .next()
        .and_then(|p| attribute(p, 'c'))
        .ok_or("the client-final message has no c=<channel binding>")?;
    let channel_binding = STANDARD
        .decode(binding)
        .map_err(|_| "the channel binding is not base64")?;
    let nonce = parts
        .next()
        .and_then(|p| attribute(p, 'r'))
        .ok_or("the client-final message has no r=<nonce>")?;
    if !valid_nonce(nonce) {
        return Err("the nonce of the client-final message is not printable".into());
    }
    Ok(ClientFinal {
        channel_binding,
        nonce: nonce.to_string(),
        proof,
        without_proof: without_proof.to_string(),
    })
}

/// Where one connection's SCRAM exchange stands.
#[derive(Debug)]
enum State {
    /// Waiting for the client-first message.
    First,
    /// Server-first sent; waiting for the client-final message.
    Final(Box<Pending>),
    /// Authenticated or refused: no more messages.
    Done,
}

/// The first round's outcome, which the second checks against.
#[derive(Debug)]
struct Pending {
    client_first: ClientFirst,
    server_first: String,
    credential: ScramCredential,
}

/// What one SCRAM message leads to.
#[derive(Debug)]
pub enum ScramStep {
    /// Send this challenge and wait for the next message.
    Challenge(Vec<u8>),
    /// Authenticated as `principal`; send `reply` (the server-final).
    Authenticated {
        principal: String,
        reply: Vec<u8>,
    },
    Refused(Refusal),
}

/// One connection's SCRAM exchange.
#[derive(Debug)]
pub struct ScramExchange {
    mechanism: Mechanism,
    state: State,
}

impl ScramExchange {
    pub fn new(mechanism: Mechanism) -> Self {
        ScramExchange {
            mechanism,
            state: State::First,
        }
    }

    fn refuse(&mut self, user: Option<&str>, detail: impl Into<String>) -> ScramStep {
        self.state = State::Done;
        ScramStep::Refused(Refusal {
            user: user.map(str::to_string),
            message: format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                self.mechanism.name()
            ),
            detail: Some(detail.into()),
        })
    }

    /// The next step for one client message. `credential` looks a user's
    /// credential up for this exchange's mechanism.
    pub fn step(
        &mut self,
        message: &[u8],
        credential: &dyn Fn(&str) -> Option<ScramCredential>,
    ) -> ScramStep {
        match std::mem::replace(&mut self.state, State::Done) {
            State::First => self.on_first(message, credential),
            State::Final(pending) => self.on_final(
                message,
                &pending.client_first,
                &pending.server_first,
                &pending.credential,
            ),
            State::Done => self.refuse(None, "a SCRAM message after the exchange ended"),
        }
    }

    fn on_first(
        &mut self,
        message: &[u8],
        credential: &dyn Fn(&str) -> Option<ScramCredential>,
    ) -> ScramStep {
        let first = match parse_client_first(message) {
            Ok(first) => first,
            Err(e) => return self.refuse(None, e),
        };
        let user = first.user.clone();
        if first
            .extensions
            .iter()
            .any(|(k, v)| k == "tokenauth" && v == "true")
        {
            return self.refuse(
                Some(&user),
                "delegation tokens (the tokenauth extension) are not supported",
            );
        }
        if !first.authzid.is_empty() && first.authzid != user {
            self.state = State::Done;
            return ScramStep::Refused(Refusal {
                user: Some(user),
                message: "Authentication failed: Client requested an authorization id that is different from username".into(),
                detail: None,
            });
        }
        let Some(found) = credential(&user) else {
            return self.refuse(
                Some(&user),
                format!("no {} credential for the user", self.mechanism.name()),
            );
        };
        // Letters and digits only, as Kafka's (a base-36 number): older
        // librdkafka releases mishandle a nonce holding base64's `+`/`/`.
        let server_nonce = match random_bytes(24) {
            Ok(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            Err(e) => return self.refuse(Some(&user), e),
        };
        let server_first = format!(
            "r={}{},s={},i={}",
            first.nonce,
            server_nonce,
            STANDARD.encode(&found.salt),
            found.iterations
        );
        let reply = server_first.clone().into_bytes();
        self.state = State::Final(Box::new(Pending {
            client_first: first,
            server_first,
            credential: found,
        }));
        ScramStep::Challenge(reply)
    }

    fn on_final(
        &mut self,
        message: &[u8],
        first: &ClientFirst,
        server_first: &str,
        credential: &ScramCredential,
    ) -> ScramStep {
        let user = first.user.as_str();
        let last = match parse_client_final(message) {
            Ok(last) => last,
            Err(e) => return self.refuse(Some(user), e),
        };
        if last.channel_binding != first.gs2_header.as_bytes() {
            return self.refuse(Some(user), "the channel binding is not the gs2 header");
        }
        // The server-first's nonce is the client's followed by ours.
        let expected_nonce = server_first
            .strip_prefix("r=")
            .and_then(|r| r.split(',').next())
            .unwrap_or_default();
        // Kafka checks only that the nonce ends with the server-first's:
        // librdkafka before 2.1 sends its own nonce in front of it again.
        if !last.nonce.ends_with(expected_nonce) || expected_nonce.is_empty() {
            return self.refuse(
                Some(user),
                format!(
                    "invalid nonce in the client-final message: {:?}, expected {expected_nonce:?}",
                    last.nonce
                ),
            );
        }
        let auth_message = format!("{},{},{}", first.bare, server_first, last.without_proof);
        let m = self.mechanism;
        let client_signature = m.hmac(&credential.stored_key, auth_message.as_bytes());
        if last.proof.len() != client_signature.len() {
            return self.refuse(Some(user), "the client proof has the wrong length");
        }
        let client_key: Vec<u8> = last
            .proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !same_bytes(&m.hash(&client_key), &credential.stored_key) {
            return self.refuse(Some(user), "invalid client proof (wrong password)");
        }
        let server_signature = m.hmac(&credential.server_key, auth_message.as_bytes());
        ScramStep::Authenticated {
            principal: format!("User:{user}"),
            reply: format!("v={}", STANDARD.encode(server_signature)).into_bytes(),
        }
    }
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;
