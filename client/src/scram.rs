//! SCRAM (RFC 5802, RFC 7677) for Kafka's SCRAM-SHA-256 and
//! SCRAM-SHA-512: the hash, HMAC and PBKDF2 of each mechanism (RustCrypto),
//! which the broker's SASL server and the command line's credential tools
//! share, and the admin calls that manage users' credentials
//! (AlterUserScramCredentials and DescribeUserScramCredentials, KIP-554).
//! A password is salted here, on the client; only the salted password
//! travels, and only to the broker.

use hmac::{Hmac, KeyInit, Mac};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use sha2::{Digest, Sha256, Sha512};

use crate::{ClientError, ClusterClient};

/// The mechanism types of Kafka's `ScramMechanism`.
pub const SCRAM_SHA_256: i8 = 1;
pub const SCRAM_SHA_512: i8 = 2;

/// The two SCRAM mechanisms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Sha256,
    Sha512,
}

impl Mechanism {
    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "SCRAM-SHA-256" => Some(Mechanism::Sha256),
            "SCRAM-SHA-512" => Some(Mechanism::Sha512),
            _ => None,
        }
    }

    pub fn from_type(mechanism: i8) -> Option<Mechanism> {
        match mechanism {
            SCRAM_SHA_256 => Some(Mechanism::Sha256),
            SCRAM_SHA_512 => Some(Mechanism::Sha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The type the metadata records use.
    pub fn type_id(self) -> i8 {
        match self {
            Mechanism::Sha256 => SCRAM_SHA_256,
            Mechanism::Sha512 => SCRAM_SHA_512,
        }
    }

    /// H(data).
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => Sha256::digest(data).to_vec(),
            Mechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// HMAC(key, data); HMAC takes keys of any length.
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
            match <M as KeyInit>::new_from_slice(key) {
                Ok(mut mac) => {
                    mac.update(data);
                    mac.finalize().into_bytes().to_vec()
                }
                // HMAC accepts every key length; an empty answer fails
                // any comparison.
                Err(_) => Vec::new(),
            }
        }
        match self {
            Mechanism::Sha256 => run::<Hmac<Sha256>>(key, data),
            Mechanism::Sha512 => run::<Hmac<Sha512>>(key, data),
        }
    }

    /// Hi(password, salt, iterations): PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => {
                let mut out = vec![0; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
            Mechanism::Sha512 => {
                let mut out = vec![0; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out
            }
        }
    }

    /// The client key, the stored key and the server key of a salted
    /// password.
    pub fn keys(self, salted_password: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let client_key = self.hmac(salted_password, b"Client Key");
        let stored_key = self.hash(&client_key);
        let server_key = self.hmac(salted_password, b"Server Key");
        (client_key, stored_key, server_key)
    }
}

/// `n` random bytes from the operating system.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, String> {
    let mut out = vec![0; n];
    getrandom::fill(&mut out).map_err(|e| format!("no randomness from the OS: {e}"))?;
    Ok(out)
}

/// A credential to set: the password is salted before it is sent.
#[derive(Clone)]
pub struct NewCredential {
    pub user: String,
    pub mechanism: Mechanism,
    pub iterations: i32,
    pub password: String,
}

impl std::fmt::Debug for NewCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCredential")
            .field("user", &self.user)
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// One user's credentials: mechanism and iterations of each.
pub type UserCredentials = Vec<(Mechanism, i32)>;

impl ClusterClient {
    /// Sets and removes SCRAM credentials; each user's result, in the
    /// order the broker gave them.
    pub async fn alter_user_scram_credentials(
        &mut self,
        set: &[NewCredential],
        remove: &[(String, Mechanism)],
    ) -> Result<Vec<(String, Result<(), ClientError>)>, ClientError> {
        let mut request = AlterUserScramCredentialsRequest::default();
        for (user, mechanism) in remove {
            let mut d = ScramCredentialDeletion::default();
            d.name = StrBytes::from_string(user.clone());
            d.mechanism = mechanism.type_id();
            request.deletions.push(d);
        }
        for c in set {
            let salt = random_bytes(32).map_err(ClientError::Invalid)?;
            let rounds = u32::try_from(c.iterations).unwrap_or(0);
            let mut u = ScramCredentialUpsertion::default();
            u.name = StrBytes::from_string(c.user.clone());
            u.mechanism = c.mechanism.type_id();
            u.iterations = c.iterations;
            u.salted_password = c
                .mechanism
                .salted_password(c.password.as_bytes(), &salt, rounds)
                .into();
            u.salt = salt.into();
            request.upsertions.push(u);
        }
        let response = self.call_any(&request).await?;
        Ok(response
            .results
            .iter()
            .map(|r| {
                let user = r.user.to_string();
                let result = ClientError::check(r.error_code, r.error_message.as_deref(), || {
                    format!("could not alter the SCRAM credentials of user {user}")
                });
                (user, result)
            })
            .collect())
    }

    /// The SCRAM credentials (mechanisms and iterations, never keys) of
    /// `users`, or of every user when empty.
    pub async fn describe_user_scram_credentials(
        &mut self,
        users: &[String],
    ) -> Result<Vec<(String, Result<UserCredentials, ClientError>)>, ClientError> {
        let mut request = DescribeUserScramCredentialsRequest::default();
        request.users = (!users.is_empty()).then(|| {
            users
                .iter()
                .map(|u| {
                    let mut name = UserName::default();
                    name.name = StrBytes::from_string(u.clone());
                    name
                })
                .collect()
        });
        let response = self
            .with_retries(async |c| c.call_any(&request).await)
            .await?;
        ClientError::check(
            response.error_code,
            response.error_message.as_deref(),
            || "could not describe SCRAM credentials".to_string(),
        )?;
        Ok(response
            .results
            .iter()
            .map(|r| {
                let user = r.user.to_string();
                let result = ClientError::check(r.error_code, r.error_message.as_deref(), || {
                    format!("could not describe the SCRAM credentials of user {user}")
                })
                .map(|()| {
                    r.credential_infos
                        .iter()
                        .filter_map(|i| Some((Mechanism::from_type(i.mechanism)?, i.iterations)))
                        .collect()
                });
                (user, result)
            })
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    #[test]
    fn proofs_match_rfc_7677s_example() {
        // RFC 7677 section 3: user "user", password "pencil".
        let m = Mechanism::Sha256;
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = m.salted_password(b"pencil", &salt, 4096);
        let (client_key, stored_key, server_key) = m.keys(&salted);
        let auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let signature = m.hmac(&stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(
            STANDARD.encode(proof),
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            STANDARD.encode(m.hmac(&server_key, auth.as_bytes())),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn mechanisms_have_kafkas_names_types_and_key_sizes() {
        for (m, name, id, len) in [
            (Mechanism::Sha256, "SCRAM-SHA-256", 1, 32),
            (Mechanism::Sha512, "SCRAM-SHA-512", 2, 64),
        ] {
            assert_eq!(Mechanism::from_name(name), Some(m));
            assert_eq!(Mechanism::from_type(id), Some(m));
            assert_eq!(m.name(), name);
            assert_eq!(m.salted_password(b"pw", b"salt", 4096).len(), len);
            let (client, stored, server) = m.keys(&[1; 7]);
            assert_eq!((client.len(), stored.len(), server.len()), (len, len, len));
            assert_ne!(client, server);
        }
        assert_eq!(Mechanism::from_name("SCRAM-SHA-1"), None);
        assert_eq!(Mechanism::from_type(0), None);
    }
}
