//! SCRAM credentials via the active controller: AlterUserScramCredentials
//! travels to it as the client sent it (the salted passwords, never the
//! passwords) and is retried across a controller change until the
//! client's timeout; `serve_alter_user_scram_credentials` runs on the
//! controller, called directly when this node leads and by the controller
//! listener otherwise.

use std::time::Duration;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use wharf_coordinator::metadata::scram::{Deletion, Upsertion};
use wharf_coordinator::metadata::ControllerError;

use super::wire_error;
use super::{ClusterNode, Controller, Quorum};

impl ClusterNode {
    /// AlterUserScramCredentials via the active controller.
    pub async fn alter_user_scram_credentials(
        &self,
        request: AlterUserScramCredentialsRequest,
        timeout: Duration,
    ) -> Result<AlterUserScramCredentialsResponse, ControllerError> {
        self.forward_until(
            request,
            timeout,
            |c, r, v| async move { serve_alter_user_scram_credentials(&c, &r, v).await },
            |r| {
                // No top-level error: a controller that is not active says
                // so in every user's result.
                r.results
                    .iter()
                    .find(|u| u.error_code == ResponseError::NotController.code())
                    .map_or((0, None), |u| (u.error_code, u.error_message.as_ref()))
            },
        )
        .await
    }
}

/// Every user of `request`, once each, in request order.
pub fn users_of(request: &AlterUserScramCredentialsRequest) -> Vec<String> {
    let mut users: Vec<String> = Vec::new();
    let names = request
        .deletions
        .iter()
        .map(|d| &d.name)
        .chain(request.upsertions.iter().map(|u| &u.name));
    for name in names {
        if !users.iter().any(|u| u.as_str() == name.as_str()) {
            users.push(name.to_string());
        }
    }
    users
}

/// The response giving every user of `request` error `e`.
pub fn refused_all(
    request: &AlterUserScramCredentialsRequest,
    e: &ControllerError,
) -> AlterUserScramCredentialsResponse {
    let (code, message) = wire_error(e);
    let mut response = AlterUserScramCredentialsResponse::default();
    response.results = users_of(request)
        .into_iter()
        .map(|user| {
            let mut r = AlterUserScramCredentialsResult::default();
            r.user = StrBytes::from_string(user);
            r.error_code = code;
            r.error_message = message.clone();
            r
        })
        .collect();
    response
}

/// AlterUserScramCredentials on the controller.
pub(in crate::cluster::node) async fn serve_alter_user_scram_credentials(
    controller: &Controller<Quorum>,
    request: &AlterUserScramCredentialsRequest,
    _version: i16,
) -> AlterUserScramCredentialsResponse {
    let deletions: Vec<Deletion> = request
        .deletions
        .iter()
        .map(|d| Deletion {
            name: d.name.to_string(),
            mechanism: d.mechanism,
        })
        .collect();
    let upsertions: Vec<Upsertion> = request
        .upsertions
        .iter()
        .map(|u| Upsertion {
            name: u.name.to_string(),
            mechanism: u.mechanism,
            iterations: u.iterations,
            salt: u.salt.to_vec(),
            salted_password: u.salted_password.to_vec(),
        })
        .collect();
    match controller
        .alter_scram_credentials(&deletions, &upsertions)
        .await
    {
        Ok(results) => {
            let mut response = AlterUserScramCredentialsResponse::default();
            response.results = results
                .into_iter()
                .map(|(user, result)| {
                    let mut r = AlterUserScramCredentialsResult::default();
                    match &result {
                        Ok(()) => tracing::info!(%user, "SCRAM credentials altered"),
                        Err(e) => {
                            tracing::info!(%user, "SCRAM credential alteration refused: {e}");
                            (r.error_code, r.error_message) = wire_error(e);
                        }
                    }
                    r.user = StrBytes::from_string(user);
                    r
                })
                .collect();
            response
        }
        Err(e) => {
            tracing::info!("AlterUserScramCredentials refused: {e}");
            refused_all(request, &e)
        }
    }
}
