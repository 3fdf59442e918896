//! FindCoordinator: this node coordinates every group and every
//! transactional id. Batched keys (v4+) get one entry each.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{HandlerResult, Request};
use crate::broker::Broker;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 6;

const GROUP_KEY: i8 = 0;
const TRANSACTION_KEY: i8 = 1;

pub async fn handle(request: Request) -> HandlerResult {
    let body: FindCoordinatorRequest = request.decode()?;
    let broker = &request.broker;
    let version = request.api_version;
    let keys: Vec<StrBytes> = if version >= 4 {
        body.coordinator_keys
    } else {
        vec![body.key]
    };
    // The first request creates the internal topic: file work, off the
    // async workers.
    let locating = broker.clone();
    let key_type = body.key_type;
    let found = tokio::task::spawn_blocking(move || locate(&locating, key_type))
        .await
        .unwrap_or_else(|e| {
            tracing::error!("FindCoordinator task failed: {e}");
            Err(ResponseError::CoordinatorNotAvailable)
        });
    let settings = &broker.settings;
    let mut response = FindCoordinatorResponse::default();
    if version >= 4 {
        response.coordinators = keys
            .into_iter()
            .map(|key| {
                let mut c = Coordinator::default();
                c.key = key;
                match found {
                    Ok(()) => {
                        c.node_id = settings.node_id.into();
                        c.host = StrBytes::from_string(settings.advertised_host.clone());
                        c.port = settings.advertised_port;
                    }
                    Err(e) => {
                        c.node_id = (-1).into();
                        c.port = -1;
                        c.error_code = e.code();
                        c.error_message = Some(StrBytes::from_string(e.to_string()));
                    }
                }
                c
            })
            .collect();
    } else {
        match found {
            Ok(()) => {
                response.node_id = settings.node_id.into();
                response.host = StrBytes::from_string(settings.advertised_host.clone());
                response.port = settings.advertised_port;
            }
            Err(e) => {
                response.node_id = (-1).into();
                response.port = -1;
                response.error_code = e.code();
                if version >= 1 {
                    response.error_message = Some(StrBytes::from_string(e.to_string()));
                }
            }
        }
    }
    request.respond(&response)
}

/// Whether this node can coordinate keys of `key_type` now. Asking for a
/// coordinator creates its internal topic when it is missing.
fn locate(broker: &Broker, key_type: i8) -> Result<(), ResponseError> {
    match key_type {
        GROUP_KEY => {
            if !broker.groups.is_loaded() {
                return Err(ResponseError::CoordinatorNotAvailable);
            }
            broker.offsets_topic().map(|_| ()).map_err(|e| {
                tracing::warn!("cannot create __consumer_offsets: {e}");
                ResponseError::CoordinatorNotAvailable
            })
        }
        TRANSACTION_KEY => {
            if !broker.txns.is_loaded() {
                return Err(ResponseError::CoordinatorNotAvailable);
            }
            broker.txn_state_topic().map(|_| ()).map_err(|e| {
                tracing::warn!("cannot create __transaction_state: {e}");
                ResponseError::CoordinatorNotAvailable
            })
        }
        other => {
            tracing::warn!(key_type = other, "FindCoordinator for an unknown key type");
            Err(ResponseError::InvalidRequest)
        }
    }
}
