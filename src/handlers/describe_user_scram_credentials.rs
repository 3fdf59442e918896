//! DescribeUserScramCredentials (KIP-554): each user's SCRAM mechanisms
//! and iteration counts from this broker's metadata image, as Kafka's
//! `ScramImage.describe`: no users (null or empty) means every user; a user
//! asked twice is DUPLICATE_RESOURCE, a user without credentials
//! RESOURCE_NOT_FOUND. Salts and keys never leave the broker.

use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use wharf_coordinator::metadata::MetadataImage;

use super::{HandlerResult, Request};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 0;

pub async fn handle(request: Request) -> HandlerResult {
    let body: DescribeUserScramCredentialsRequest = request.decode()?;
    let image = request.broker.image();
    let asked: Vec<String> = body
        .users
        .iter()
        .flatten()
        .map(|u| u.name.to_string())
        .collect();
    let mut response = DescribeUserScramCredentialsResponse::default();
    response.results = describe(&image, &asked);
    request.respond(&response)
}

/// The results for users `asked` (every user when empty).
pub fn describe(
    image: &MetadataImage,
    asked: &[String],
) -> Vec<DescribeUserScramCredentialsResult> {
    let mut users: Vec<(String, bool)> = Vec::new();
    if asked.is_empty() {
        users = image
            .scram_users()
            .map(|(u, _)| (u.to_string(), false))
            .collect();
    }
    for name in asked {
        match users.iter_mut().find(|(u, _)| u == name) {
            Some((_, twice)) => *twice = true,
            None => users.push((name.clone(), false)),
        }
    }
    users
        .into_iter()
        .map(|(user, twice)| {
            let mut result = DescribeUserScramCredentialsResult::default();
            if twice {
                result.error_code = ResponseError::DuplicateResource.code();
                result.error_message = Some(StrBytes::from_string(format!(
                    "Cannot describe SCRAM credentials for the same user twice in a single request: {user}"
                )));
            } else {
                let infos: Vec<CredentialInfo> = image
                    .scram_users()
                    .find(|(u, _)| *u == user)
                    .map(|(_, mechanisms)| {
                        mechanisms
                            .iter()
                            .map(|(mechanism, credential)| {
                                let mut info = CredentialInfo::default();
                                info.mechanism = *mechanism;
                                info.iterations = credential.iterations;
                                info
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                if infos.is_empty() {
                    result.error_code = ResponseError::ResourceNotFound.code();
                    result.error_message = Some(StrBytes::from_string(format!(
                        "Attempt to describe a user credential that does not exist: {user}"
                    )));
                }
                result.credential_infos = infos;
            }
            result.user = StrBytes::from_string(user);
            result
        })
        .collect()
}
