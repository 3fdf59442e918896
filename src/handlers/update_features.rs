//! UpdateFeatures (KIP-584): changes the cluster's finalized feature
//! levels; decided by the active controller (forwarded to it), all updates
//! or none. The levels Wharf supports are in
//! `wharf_coordinator::metadata::features`; ApiVersions reports the result.

use kafka_protocol::messages::UpdateFeaturesRequest;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use wharf_coordinator::metadata::ControllerError;

use super::{HandlerResult, Request};
use crate::cluster::node::admin::{normalize_update_features, update_features_outcome};

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 2;

pub async fn handle(request: Request) -> HandlerResult {
    let mut body: UpdateFeaturesRequest = request.decode()?;
    normalize_update_features(&mut body, request.api_version);
    let timeout = super::admin_timeout(body.timeout_ms);
    let answer = match request.broker.node().await {
        Ok(node) => node.update_features(body.clone(), timeout).await,
        Err(e) => Err(ControllerError::new(
            ResponseError::NotController,
            e.to_string(),
        )),
    };
    let mut response = match answer {
        Ok(response) => response,
        Err(e) => {
            tracing::info!(
                peer = %request.client_host,
                "UpdateFeatures refused: {}",
                e.message
            );
            let message = Some(StrBytes::from_string(e.message.clone()));
            update_features_outcome(&body, e.code.code(), message)
        }
    };
    if request.api_version >= 2 {
        // v2 answers with the top-level error only.
        response.results.clear();
    }
    request.respond(&response)
}
