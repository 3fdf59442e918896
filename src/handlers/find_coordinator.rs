//! FindCoordinator: the coordinator of a group (transactional id) is the
//! leader of its `__consumer_offsets` (`__transaction_state`) partition.
//! Batched keys (v4+) get one entry each.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{HandlerResult, Request};
use crate::broker::Broker;
use crate::security::authz::{Op, Resource};
use wharf_coordinator::metadata::MetadataImage;
use wharf_coordinator::txn::TRANSACTION_STATE_TOPIC;
use wharf_coordinator::{partition_for, OFFSETS_TOPIC};

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
    // With the authorizer on: DESCRIBE on the group or transactional id.
    let denied: Vec<Option<ResponseError>> = keys
        .iter()
        .map(|key| match body.key_type {
            GROUP_KEY => (!request.authorized(Op::Describe, Resource::Group, key.as_str()))
                .then_some(ResponseError::GroupAuthorizationFailed),
            TRANSACTION_KEY => {
                (!request.authorized(Op::Describe, Resource::TransactionalId, key.as_str()))
                    .then_some(ResponseError::TransactionalIdAuthorizationFailed)
            }
            _ => None,
        })
        .collect();
    let located = if denied.iter().all(Option::is_some) && !denied.is_empty() {
        Err(ResponseError::UnknownServerError)
    } else {
        locate(broker, body.key_type).await
    };
    let found: Vec<Result<Location, ResponseError>> = match located {
        Ok((topic, loaded)) => {
            let image = broker.image();
            keys.iter()
                .map(|key| {
                    coordinator_of(
                        broker,
                        &request.listener,
                        &image,
                        &topic,
                        key.as_str(),
                        loaded,
                    )
                })
                .collect()
        }
        Err(e) => keys.iter().map(|_| Err(e)).collect(),
    };
    let found: Vec<Result<Location, ResponseError>> = found
        .into_iter()
        .zip(denied)
        .map(|(found, denied)| match denied {
            Some(e) => Err(e),
            None => found,
        })
        .collect();
    let mut response = FindCoordinatorResponse::default();
    if version >= 4 {
        response.coordinators = keys
            .into_iter()
            .zip(found)
            .map(|(key, found)| {
                let mut c = Coordinator::default();
                c.key = key;
                match found {
                    Ok(at) => {
                        c.node_id = at.node_id.into();
                        c.host = StrBytes::from_string(at.host);
                        c.port = at.port;
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
        let found = found
            .into_iter()
            .next()
            .unwrap_or(Err(ResponseError::CoordinatorNotAvailable));
        match found {
            Ok(at) => {
                response.node_id = at.node_id.into();
                response.host = StrBytes::from_string(at.host);
                response.port = at.port;
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

/// Where a coordinator is.
struct Location {
    node_id: i32,
    host: String,
    port: i32,
}

/// The internal topic that holds keys of `key_type` (created when
/// missing), and whether this broker's coordinator for them has loaded.
async fn locate(broker: &Broker, key_type: i8) -> Result<(String, bool), ResponseError> {
    let (topic, partitions, replication_factor, loaded) = match key_type {
        GROUP_KEY => (
            OFFSETS_TOPIC,
            broker.groups.config().offsets_partitions,
            broker.offsets_replication_factor(),
            broker.groups.is_loaded(),
        ),
        TRANSACTION_KEY => (
            TRANSACTION_STATE_TOPIC,
            broker.txns.config().state_partitions,
            broker.txn_state_replication_factor(),
            broker.txns.is_loaded(),
        ),
        other => {
            tracing::warn!(key_type = other, "FindCoordinator for an unknown key type");
            return Err(ResponseError::InvalidRequest);
        }
    };
    match broker
        .ensure_internal_topic(topic, partitions, replication_factor)
        .await
    {
        Ok(()) => Ok((topic.to_string(), loaded)),
        Err(e) => {
            tracing::info!("cannot create {topic}: {e}");
            Err(ResponseError::CoordinatorNotAvailable)
        }
    }
}

/// The broker leading the partition of `topic` that `key` maps to.
fn coordinator_of(
    broker: &Broker,
    listener: &str,
    image: &MetadataImage,
    topic: &str,
    key: &str,
    loaded: bool,
) -> Result<Location, ResponseError> {
    let t = image
        .topic_by_name(topic)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    let count = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX);
    let partition = partition_for(key, count);
    let leader = t.partitions.get(&partition).map_or(-1, |p| p.leader);
    if leader == broker.settings.node_id && !(loaded && broker.coordinates(topic, partition)) {
        return Err(ResponseError::CoordinatorLoadInProgress);
    }
    let endpoint = image
        .alive_endpoint(leader, listener)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    Ok(Location {
        node_id: leader,
        host: endpoint.host.clone(),
        port: i32::from(endpoint.port),
    })
}
