//! AlterUserScramCredentials (KIP-554): sets or removes users' SCRAM
//! credentials, decided by the active controller (forwarded to it) and
//! kept in the cluster metadata, so every broker's SASL/SCRAM listeners
//! know them and they survive restarts. The request carries salted
//! passwords, never passwords; nothing of them is logged.

use std::time::Duration;

use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};
use kafka_protocol::ResponseError;
use wharf_coordinator::metadata::{ControllerError, MetadataImage};

use super::{HandlerResult, Request};
use crate::cluster::node::admin::scram_refused_all;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 0;

/// How long the controller may take (the request has no timeout of its
/// own; Kafka's admin client default).
const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long this broker waits to apply the committed change, so that a
/// DescribeUserScramCredentials sent here next sees it.
const APPLY_WAIT: Duration = Duration::from_secs(5);

pub async fn handle(request: Request) -> HandlerResult {
    let body: AlterUserScramCredentialsRequest = request.decode()?;
    let broker = &request.broker;
    let answer = match broker.cluster() {
        Some(node) => {
            node.alter_user_scram_credentials(body.clone(), CONTROLLER_TIMEOUT)
                .await
        }
        None => Err(ControllerError::new(
            ResponseError::NotController,
            "this broker has not joined its cluster yet",
        )),
    };
    let response = match answer {
        Ok(response) => response,
        Err(e) => {
            tracing::info!("AlterUserScramCredentials failed: {e}");
            scram_refused_all(&body, &e)
        }
    };
    let mut applied = broker.subscribe_applied();
    let waited = tokio::time::timeout(
        APPLY_WAIT,
        applied.wait_for(|image| is_applied(image, &body, &response)),
    )
    .await;
    if waited.is_err() {
        tracing::warn!("SCRAM credentials committed but not yet applied on this broker");
    }
    request.respond(&response)
}

/// Whether `image` shows every alteration the controller accepted.
fn is_applied(
    image: &MetadataImage,
    body: &AlterUserScramCredentialsRequest,
    response: &AlterUserScramCredentialsResponse,
) -> bool {
    let accepted = |user: &str| {
        response
            .results
            .iter()
            .any(|r| r.user.as_str() == user && r.error_code == 0)
    };
    let deleted = body.deletions.iter().all(|d| {
        !accepted(d.name.as_str()) || image.scram_credential(&d.name, d.mechanism).is_none()
    });
    let upserted = body.upsertions.iter().all(|u| {
        !accepted(u.name.as_str())
            || image
                .scram_credential(&u.name, u.mechanism)
                .is_some_and(|c| c.salt == u.salt.as_ref() && c.iterations == u.iterations)
    });
    deleted && upserted
}
