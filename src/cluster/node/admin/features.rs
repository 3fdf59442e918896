//! UpdateFeatures via the active controller: the request travels as the
//! client sent it (with v0's `allow_downgrade` already turned into an
//! upgrade type) and is retried across a controller change until the
//! client's timeout; [`serve_update_features`] runs on the controller.

use std::time::Duration;

use kafka_protocol::messages::update_features_response::UpdatableFeatureResult;
use kafka_protocol::messages::{UpdateFeaturesRequest, UpdateFeaturesResponse};
use kafka_protocol::protocol::StrBytes;
use wharf_coordinator::metadata::features::{FeatureUpdate, UpgradeType};
use wharf_coordinator::metadata::ControllerError;

use super::{wire_error, ClusterNode, Controller, Quorum};

/// UpgradeType UPGRADE and SAFE_DOWNGRADE, as v1+ requests carry them.
const UPGRADE: i8 = 1;
const SAFE_DOWNGRADE: i8 = 2;

/// Makes a v0 request's `allow_downgrade` its `upgrade_type` (v0 knows no
/// unsafe downgrade), so the request means the same at any version it is
/// forwarded at.
pub fn normalize_update_features(request: &mut UpdateFeaturesRequest, version: i16) {
    if version == 0 {
        for update in &mut request.feature_updates {
            update.upgrade_type = if update.allow_downgrade {
                SAFE_DOWNGRADE
            } else {
                UPGRADE
            };
            // v1+ cannot carry it.
            update.allow_downgrade = false;
        }
    }
}

impl ClusterNode {
    /// UpdateFeatures via the active controller.
    pub async fn update_features(
        &self,
        request: UpdateFeaturesRequest,
        timeout: Duration,
    ) -> Result<UpdateFeaturesResponse, ControllerError> {
        self.forward_until(
            request,
            timeout,
            |c, r, v| async move { serve_update_features(&c, &r, v).await },
            |r| (r.error_code, r.error_message.as_ref()),
        )
        .await
    }
}

/// UpdateFeatures on the controller: all updates or none; the outcome is
/// the top-level error, and (v0-1) every feature's result.
pub(in crate::cluster::node) async fn serve_update_features(
    controller: &Controller<Quorum>,
    request: &UpdateFeaturesRequest,
    version: i16,
) -> UpdateFeaturesResponse {
    let updates: Vec<FeatureUpdate> = request
        .feature_updates
        .iter()
        .map(|u| FeatureUpdate {
            name: u.feature.to_string(),
            level: u.max_version_level,
            // A v0 request from a client was normalized by the handler;
            // one arriving at v0 on the controller listener is read here.
            upgrade_type: if version == 0 && u.allow_downgrade {
                UpgradeType::SafeDowngrade
            } else {
                UpgradeType::from_code(u.upgrade_type)
            },
        })
        .collect();
    let outcome = controller
        .update_features(&updates, request.validate_only)
        .await;
    let (code, message) = match &outcome {
        Ok(()) => (0, None),
        Err(e) => wire_error(e),
    };
    update_features_outcome(request, code, message)
}

/// An UpdateFeatures answer: `code` and `message` at the top level and
/// (v0-1) for every feature the request names, as Wharf decides all
/// updates or none.
pub fn update_features_outcome(
    request: &UpdateFeaturesRequest,
    code: i16,
    message: Option<StrBytes>,
) -> UpdateFeaturesResponse {
    let mut response = UpdateFeaturesResponse::default();
    response.error_code = code;
    response.error_message = message.clone();
    response.results = request
        .feature_updates
        .iter()
        .map(|u| {
            let mut r = UpdatableFeatureResult::default();
            r.feature = u.feature.clone();
            r.error_code = code;
            r.error_message = message.clone();
            r
        })
        .collect();
    response
}
