//! SCRAM credentials in the metadata (KIP-554): what the image holds per
//! user and mechanism, and the controller's decision on an
//! AlterUserScramCredentials request, with the behaviour of Kafka's
//! `ScramControlManager`:
//!
//! - a user named twice in one request (as deletions, upsertions or both)
//!   gets DUPLICATE_RESOURCE and none of its alterations is applied; only
//!   its first problem is reported;
//! - an empty user name or an unknown iteration count is
//!   UNACCEPTABLE_CREDENTIAL, an unknown mechanism UNSUPPORTED_SASL_MECHANISM;
//! - deleting a credential the image lacks is RESOURCE_NOT_FOUND;
//! - the accepted alterations become one atomic batch of
//!   UserScramCredentialRecords and RemoveUserScramCredentialRecords.
//!
//! The password never reaches the controller: the client sends the salted
//! password (PBKDF2 of it), and the controller keeps only the keys derived
//! from it. That derivation is the caller's (`derive`), so this crate holds
//! no cryptography.

use std::collections::BTreeMap;
use std::fmt;

use kafka_protocol::ResponseError;

use super::controller::ControllerError;
use super::image::MetadataImage;
use super::records::{
    MetadataRecord, RemoveUserScramCredentialRecord, UserScramCredentialRecord, SCRAM_SHA_256,
    SCRAM_SHA_512,
};

/// Fewest iterations Kafka accepts (both mechanisms' `minIterations`).
pub const MIN_ITERATIONS: i32 = 4096;
/// Most iterations Kafka accepts (`ScramControlManager.MAX_ITERATIONS`).
pub const MAX_ITERATIONS: i32 = 16384;

/// A mechanism's name for its type in the records (`ScramMechanism`).
pub fn mechanism_name(mechanism: i8) -> Option<&'static str> {
    match mechanism {
        SCRAM_SHA_256 => Some("SCRAM-SHA-256"),
        SCRAM_SHA_512 => Some("SCRAM-SHA-512"),
        _ => None,
    }
}

/// A mechanism's type in the records for its name.
pub fn mechanism_type(name: &str) -> Option<i8> {
    match name {
        "SCRAM-SHA-256" => Some(SCRAM_SHA_256),
        "SCRAM-SHA-512" => Some(SCRAM_SHA_512),
        _ => None,
    }
}

/// One user's credential for one mechanism, as the image holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl ScramCredential {
    pub(crate) fn of_record(r: &UserScramCredentialRecord) -> Self {
        ScramCredential {
            salt: r.salt.clone(),
            stored_key: r.stored_key.clone(),
            server_key: r.server_key.clone(),
            iterations: r.iterations,
        }
    }

    pub(crate) fn to_record(&self, name: &str, mechanism: i8) -> UserScramCredentialRecord {
        UserScramCredentialRecord {
            name: name.to_owned(),
            mechanism,
            salt: self.salt.clone(),
            stored_key: self.stored_key.clone(),
            server_key: self.server_key.clone(),
            iterations: self.iterations,
        }
    }
}

/// A credential to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    pub name: String,
    pub mechanism: i8,
}

/// A credential to set: the salted password as the client sent it.
#[derive(Clone, PartialEq, Eq)]
pub struct Upsertion {
    pub name: String,
    pub mechanism: i8,
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

impl fmt::Debug for Upsertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upsertion")
            .field("name", &self.name)
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// The decision on an AlterUserScramCredentials request: the records to
/// commit as one batch and each user's result, in the order users first
/// appear (deletions before upsertions).
#[derive(Debug, Default)]
pub struct Alteration {
    pub records: Vec<MetadataRecord>,
    pub results: Vec<(String, Result<(), ControllerError>)>,
}

fn refuse(code: ResponseError, message: &str) -> ControllerError {
    ControllerError::new(code, message)
}

fn check_name_and_mechanism(name: &str, mechanism: i8) -> Result<(), ControllerError> {
    if name.is_empty() {
        return Err(refuse(
            ResponseError::UnacceptableCredential,
            "Username must not be empty",
        ));
    }
    if mechanism_name(mechanism).is_none() {
        return Err(refuse(
            ResponseError::UnsupportedSaslMechanism,
            "Unknown SCRAM mechanism",
        ));
    }
    Ok(())
}

/// Decides an AlterUserScramCredentials request against `image`. `derive`
/// turns a mechanism type and salted password into the stored key and
/// server key (RFC 5802), or `None` if it cannot.
pub fn alter_credentials(
    image: &MetadataImage,
    deletions: &[Deletion],
    upsertions: &[Upsertion],
    derive: impl Fn(i8, &[u8]) -> Option<(Vec<u8>, Vec<u8>)>,
) -> Alteration {
    enum Accepted<'a> {
        Delete(&'a Deletion),
        Upsert(&'a Upsertion),
    }
    // Per user, in first-appearance order: what is accepted, or why not.
    let mut order: Vec<&str> = Vec::new();
    let mut state: BTreeMap<&str, Result<Accepted<'_>, ControllerError>> = BTreeMap::new();
    let duplicate = || {
        Err(refuse(
            ResponseError::DuplicateResource,
            "A user credential cannot be altered twice in the same request",
        ))
    };
    for deletion in deletions {
        let name = deletion.name.as_str();
        match state.get(name) {
            Some(Err(_)) => {}
            Some(Ok(_)) => {
                state.insert(name, duplicate());
            }
            None => {
                order.push(name);
                let checked = check_name_and_mechanism(name, deletion.mechanism).and_then(|()| {
                    if image.scram_credential(name, deletion.mechanism).is_none() {
                        Err(refuse(
                            ResponseError::ResourceNotFound,
                            "Attempt to delete a user credential that does not exist",
                        ))
                    } else {
                        Ok(Accepted::Delete(deletion))
                    }
                });
                state.insert(name, checked);
            }
        }
    }
    for upsertion in upsertions {
        let name = upsertion.name.as_str();
        match state.get(name) {
            Some(Err(_)) => {}
            Some(Ok(_)) => {
                state.insert(name, duplicate());
            }
            None => {
                order.push(name);
                let checked = check_name_and_mechanism(name, upsertion.mechanism).and_then(|()| {
                    if upsertion.iterations < MIN_ITERATIONS {
                        Err(refuse(
                            ResponseError::UnacceptableCredential,
                            "Too few iterations",
                        ))
                    } else if upsertion.iterations > MAX_ITERATIONS {
                        Err(refuse(
                            ResponseError::UnacceptableCredential,
                            "Too many iterations",
                        ))
                    } else {
                        Ok(Accepted::Upsert(upsertion))
                    }
                });
                state.insert(name, checked);
            }
        }
    }
    let mut out = Alteration::default();
    for name in order {
        let Some(entry) = state.remove(name) else {
            continue;
        };
        let result = entry.and_then(|accepted| match accepted {
            Accepted::Delete(d) => {
                out.records.push(MetadataRecord::RemoveUserScramCredential(
                    RemoveUserScramCredentialRecord {
                        name: d.name.clone(),
                        mechanism: d.mechanism,
                    },
                ));
                Ok(())
            }
            Accepted::Upsert(u) => {
                let (stored_key, server_key) =
                    derive(u.mechanism, &u.salted_password).ok_or_else(|| {
                        refuse(
                            ResponseError::UnacceptableCredential,
                            "The salted password cannot be used",
                        )
                    })?;
                out.records.push(MetadataRecord::UserScramCredential(
                    UserScramCredentialRecord {
                        name: u.name.clone(),
                        mechanism: u.mechanism,
                        salt: u.salt.clone(),
                        stored_key,
                        server_key,
                        iterations: u.iterations,
                    },
                ));
                Ok(())
            }
        });
        out.results.push((name.to_owned(), result));
    }
    out
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;
