//! Metadata writes from any node: CreateTopics, DeleteTopics,
//! CreatePartitions, topic config changes and producer id blocks go to the
//! active controller, by a direct call when this node leads, else over the
//! leader's controller listener in Kafka's request formats (CreateTopics,
//! DeleteTopics, CreatePartitions, IncrementalAlterConfigs,
//! AllocateProducerIds). Both paths run the same `serve_*` functions on the
//! controller, which the controller listener also answers with.
//!
//! A call retries every [`RETRY_BACKOFF`] while there is no leader, the
//! answer is NOT_CONTROLLER (leadership moved) or the connection fails, until
//! [`CONTROLLER_CALL_TIMEOUT`]; then it returns the last error. An answer of
//! REQUEST_TIMED_OUT (the quorum did not commit in time, but may still) is
//! returned as it is, never retried. A connection that fails after the
//! request was sent is retried too, so a retried CreateTopics whose first
//! answer was lost can report TOPIC_ALREADY_EXISTS for a topic it created.
//!
//! Replacing a topic's configs travels as IncrementalAlterConfigs: a SET
//! for every wanted key and a DELETE for every other key this node's image
//! holds. On the leader the image is the controller's, so the replacement
//! is exact; from a follower, a key set by someone else after the
//! follower's image was read survives.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{alter_partition_request, alter_partition_response};
use kafka_protocol::messages::{
    AllocateProducerIdsRequest, AllocateProducerIdsResponse, AlterPartitionRequest,
    AlterPartitionResponse, BrokerId, CreatePartitionsRequest, CreatePartitionsResponse,
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::ResponseError;
use tokio::time::Instant;
use uuid::Uuid;
use wharf_client::Connection;
use wharf_coordinator::metadata::alter_partition::{AlterPartitionData, IsrMember};
use wharf_coordinator::metadata::configs::{replace_ops, ConfigOp};
use wharf_coordinator::metadata::records::LeaderRecoveryState;
use wharf_coordinator::metadata::records::CONFIG_RESOURCE_TOPIC;
use wharf_coordinator::metadata::topics::{CreatedTopic, NewTopic};
use wharf_coordinator::metadata::ControllerError;

use super::{ClusterNode, Controller, Quorum};

mod acls;
mod features;
mod replicas;
pub use acls::{binding_of, filter_of};
pub(super) use acls::{serve_create_acls, serve_delete_acls};
pub(super) use features::serve_update_features;
pub use features::{normalize_update_features, update_features_outcome};
pub(super) use replicas::{serve_alter_partition_reassignments, serve_elect_leaders};
mod scram;
pub use scram::refused_all as scram_refused_all;
pub(super) use scram::serve_alter_user_scram_credentials;

/// How long a metadata write through [`ClusterNode`] keeps looking for the
/// active controller before it answers with the last error.
pub const CONTROLLER_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The pause between two attempts of a metadata write.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// The timeout the forwarded requests carry (Kafka's `timeoutMs`).
const REQUEST_TIMEOUT_MS: i32 = 30_000;

/// IncrementalAlterConfigs' operation codes.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

fn unreachable_controller(message: String) -> ControllerError {
    ControllerError::new(ResponseError::NotController, message)
}

/// Whether an attempt that failed with `e` is worth another one.
fn retriable(e: &ControllerError) -> bool {
    e.code == ResponseError::NotController
}

/// A response's error code and message as a result.
fn result_of(code: i16, message: Option<&StrBytes>) -> Result<(), ControllerError> {
    if code == 0 {
        return Ok(());
    }
    let error = ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError);
    let message = message.map_or_else(|| format!("{error:?}"), |m| m.to_string());
    Err(ControllerError::new(error, message))
}

/// The error code and message a response carries for `e`.
fn wire_error(e: &ControllerError) -> (i16, Option<StrBytes>) {
    (
        e.code.code(),
        Some(StrBytes::from_string(e.message.clone())),
    )
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// When a call's retries end.
struct Deadline(Instant);

impl Deadline {
    /// Pauses before the next attempt; false once the deadline has passed.
    async fn pause(&self) -> bool {
        if Instant::now() + RETRY_BACKOFF > self.0 {
            return false;
        }
        tokio::time::sleep(RETRY_BACKOFF).await;
        true
    }
}

impl ClusterNode {
    fn deadline(&self) -> Deadline {
        Deadline(Instant::now() + self.call_timeout)
    }

    /// Takes the cached connection to the controller, if any.
    fn take_admin_client(&self) -> Option<(i32, Connection)> {
        match self.admin_client.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }

    /// Caches `connection` to controller `leader` unless another call
    /// already put one back.
    fn return_admin_client(&self, leader: i32, connection: Connection) {
        let mut slot = match self.admin_client.lock() {
            Ok(slot) => slot,
            Err(poisoned) => poisoned.into_inner(),
        };
        if slot.is_none() {
            *slot = Some((leader, connection));
        }
    }

    /// One attempt of a metadata write at the active controller: `serve`
    /// on this node's controller when it leads, else the request (`build`
    /// for the version the leader speaks) over the leader's controller
    /// listener. The errors are this node's failures to reach a
    /// controller, as NOT_CONTROLLER.
    async fn admin_attempt<R, B, F, Fut>(
        &self,
        build: B,
        serve: F,
    ) -> Result<R::Response, ControllerError>
    where
        R: Request,
        B: FnOnce(i16) -> R,
        F: FnOnce(Arc<Controller<Quorum>>, R, i16) -> Fut,
        Fut: Future<Output = R::Response>,
    {
        let leader = self
            .controller_id()
            .ok_or_else(|| unreachable_controller("no active controller yet".into()))?;
        if leader == self.settings.node_id {
            let version = R::VERSIONS.max;
            return Ok(serve(self.controller.clone(), build(version), version).await);
        }
        let mut connection = match self.take_admin_client() {
            Some((id, connection)) if id == leader => connection,
            _ => {
                let addr = self.settings.voters.get(&leader).ok_or_else(|| {
                    unreachable_controller(format!("controller {leader} is not a known voter"))
                })?;
                Connection::connect(addr, self.client_options())
                    .await
                    .map_err(|e| unreachable_controller(format!("controller {leader}: {e}")))?
            }
        };
        let version = connection.versions().pick::<R>().ok_or_else(|| {
            ControllerError::new(
                ResponseError::UnsupportedVersion,
                format!("controller {leader} does not serve API {}", R::KEY),
            )
        })?;
        match connection.call_at(&build(version), version).await {
            Ok(response) => {
                self.return_admin_client(leader, connection);
                Ok(response)
            }
            Err(e) => Err(unreachable_controller(format!("controller {leader}: {e}"))),
        }
    }

    /// CreateTopics via the active controller: each topic's result, in
    /// request order.
    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<(String, Result<CreatedTopic, ControllerError>)> {
        let deadline = self.deadline();
        let mut results: Vec<Result<CreatedTopic, ControllerError>> = topics
            .iter()
            .map(|_| Err(unreachable_controller("not sent".into())))
            .collect();
        let mut pending: Vec<usize> = (0..topics.len()).collect();
        while !pending.is_empty() {
            let batch: Vec<&NewTopic> = pending.iter().filter_map(|i| topics.get(*i)).collect();
            let answer = self
                .admin_attempt(
                    |_| create_topics_request(&batch, validate_only),
                    |c, r, v| async move { serve_create_topics(&c, &r, v).await },
                )
                .await;
            let answers: Vec<Result<CreatedTopic, ControllerError>> = match answer {
                Ok(response) => batch
                    .iter()
                    .enumerate()
                    .map(|(i, topic)| match response.topics.get(i) {
                        Some(r) if r.name.0.as_str() == topic.name => created_of(r),
                        _ => Err(ControllerError::new(
                            ResponseError::UnknownServerError,
                            format!("the controller returned no result for {}", topic.name),
                        )),
                    })
                    .collect(),
                Err(e) => batch.iter().map(|_| Err(e.clone())).collect(),
            };
            for (i, answer) in pending.iter().zip(answers) {
                if let Some(slot) = results.get_mut(*i) {
                    *slot = answer;
                }
            }
            pending.retain(|i| matches!(results.get(*i), Some(Err(e)) if retriable(e)));
            if pending.is_empty() || !deadline.pause().await {
                break;
            }
        }
        topics.into_iter().map(|t| t.name).zip(results).collect()
    }

    /// DeleteTopics by name via the active controller: each topic's id, in
    /// request order.
    pub async fn delete_topics(
        &self,
        names: Vec<String>,
    ) -> Vec<(String, Result<Uuid, ControllerError>)> {
        let deadline = self.deadline();
        let mut results: Vec<Result<Uuid, ControllerError>> = names
            .iter()
            .map(|_| Err(unreachable_controller("not sent".into())))
            .collect();
        let mut pending: Vec<usize> = (0..names.len()).collect();
        while !pending.is_empty() {
            let batch: Vec<&String> = pending.iter().filter_map(|i| names.get(*i)).collect();
            let answer = self
                .admin_attempt(
                    |v| delete_topics_request(&batch, v),
                    |c, r, v| async move { serve_delete_topics(&c, &r, v).await },
                )
                .await;
            let answers: Vec<Result<Uuid, ControllerError>> = match answer {
                Ok(response) => batch
                    .iter()
                    .enumerate()
                    .map(|(i, name)| match response.responses.get(i) {
                        Some(r) if r.name.as_ref().is_some_and(|n| n.0.as_str() == *name) => {
                            result_of(r.error_code, r.error_message.as_ref()).map(|()| r.topic_id)
                        }
                        _ => Err(ControllerError::new(
                            ResponseError::UnknownServerError,
                            format!("the controller returned no result for {name}"),
                        )),
                    })
                    .collect(),
                Err(e) => batch.iter().map(|_| Err(e.clone())).collect(),
            };
            for (i, answer) in pending.iter().zip(answers) {
                if let Some(slot) = results.get_mut(*i) {
                    *slot = answer;
                }
            }
            pending.retain(|i| matches!(results.get(*i), Some(Err(e)) if retriable(e)));
            if pending.is_empty() || !deadline.pause().await {
                break;
            }
        }
        names.into_iter().zip(results).collect()
    }

    /// CreatePartitions via the active controller: grows topic `name` to
    /// `count` partitions (`assignments`: one replica list per new
    /// partition).
    pub async fn create_partitions(
        &self,
        name: String,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let deadline = self.deadline();
        loop {
            let answer = self
                .admin_attempt(
                    |_| {
                        create_partitions_request(
                            &name,
                            count,
                            assignments.as_deref(),
                            validate_only,
                        )
                    },
                    |c, r, v| async move { serve_create_partitions(&c, &r, v).await },
                )
                .await;
            let result = answer.and_then(|response| match response.results.first() {
                Some(r) => result_of(r.error_code, r.error_message.as_ref()),
                None => Err(ControllerError::new(
                    ResponseError::UnknownServerError,
                    format!("the controller returned no result for {name}"),
                )),
            });
            match result {
                Err(e) if retriable(&e) && deadline.pause().await => {}
                result => return result,
            }
        }
    }

    /// Replaces topic `name`'s config overrides with exactly `configs`, via
    /// the active controller (see the module doc for how).
    pub async fn set_topic_configs(
        &self,
        name: String,
        configs: BTreeMap<String, String>,
    ) -> Result<(), ControllerError> {
        let deadline = self.deadline();
        loop {
            let ops = replace_ops(&self.image(), &name, &configs);
            let answer = self
                .admin_attempt(
                    |_| alter_topic_configs_request(&name, &ops),
                    |c, r, v| async move { serve_incremental_alter_configs(&c, &r, v).await },
                )
                .await;
            let result = answer.and_then(|response| match response.responses.first() {
                Some(r) => result_of(r.error_code, r.error_message.as_ref()),
                None => Err(ControllerError::new(
                    ResponseError::UnknownServerError,
                    format!("the controller returned no result for {name}"),
                )),
            });
            match result {
                Err(e) if retriable(&e) && deadline.pause().await => {}
                result => return result,
            }
        }
    }

    /// A block of producer ids for this broker (AllocateProducerIds): the
    /// first id and the count. Waits, within the call timeout, for this
    /// broker's registration.
    pub async fn allocate_producer_ids(&self) -> Result<(i64, i32), ControllerError> {
        let deadline = self.deadline();
        loop {
            let result = match self.broker_epoch() {
                None => Err(ControllerError::new(
                    ResponseError::StaleBrokerEpoch,
                    "this broker has not registered with the controller yet",
                )),
                Some(epoch) => {
                    let mut request = AllocateProducerIdsRequest::default();
                    request.broker_id = BrokerId(self.settings.node_id);
                    request.broker_epoch = epoch;
                    self.admin_attempt(
                        |_| request,
                        |c, r, v| async move { serve_allocate_producer_ids(&c, &r, v).await },
                    )
                    .await
                    .and_then(|r| {
                        result_of(r.error_code, None)
                            .map(|()| (r.producer_id_start.0, r.producer_id_len))
                    })
                }
            };
            // A stale epoch clears once the broker registers again.
            let again =
                |e: &ControllerError| retriable(e) || e.code == ResponseError::StaleBrokerEpoch;
            match result {
                Err(e) if again(&e) && deadline.pause().await => {}
                result => return result,
            }
        }
    }
}

fn create_topics_request(topics: &[&NewTopic], validate_only: bool) -> CreateTopicsRequest {
    let mut request = CreateTopicsRequest::default();
    request.timeout_ms = REQUEST_TIMEOUT_MS;
    request.validate_only = validate_only;
    request.topics = topics
        .iter()
        .map(|t| {
            let mut topic = CreatableTopic::default();
            topic.name = topic_name(&t.name);
            topic.num_partitions = t.num_partitions;
            topic.replication_factor = t.replication_factor;
            topic.assignments = t
                .assignments
                .iter()
                .map(|(index, replicas)| {
                    let mut a = CreatableReplicaAssignment::default();
                    a.partition_index = *index;
                    a.broker_ids = replicas.iter().map(|b| BrokerId(*b)).collect();
                    a
                })
                .collect();
            topic.configs = t
                .configs
                .iter()
                .map(|(key, value)| {
                    let mut c = CreatableTopicConfig::default();
                    c.name = StrBytes::from_string(key.clone());
                    c.value = value.clone().map(StrBytes::from_string);
                    c
                })
                .collect();
            topic
        })
        .collect();
    request
}

fn created_of(r: &CreatableTopicResult) -> Result<CreatedTopic, ControllerError> {
    result_of(r.error_code, r.error_message.as_ref()).map(|()| CreatedTopic {
        topic_id: r.topic_id,
        num_partitions: r.num_partitions,
        replication_factor: r.replication_factor,
    })
}

fn delete_topics_request(names: &[&String], version: i16) -> DeleteTopicsRequest {
    let mut request = DeleteTopicsRequest::default();
    request.timeout_ms = REQUEST_TIMEOUT_MS;
    if version >= 6 {
        request.topics = names
            .iter()
            .map(|n| {
                let mut t = DeleteTopicState::default();
                t.name = Some(topic_name(n));
                t
            })
            .collect();
    } else {
        request.topic_names = names.iter().map(|n| topic_name(n)).collect();
    }
    request
}

fn create_partitions_request(
    name: &str,
    count: i32,
    assignments: Option<&[Vec<i32>]>,
    validate_only: bool,
) -> CreatePartitionsRequest {
    let mut topic = CreatePartitionsTopic::default();
    topic.name = topic_name(name);
    topic.count = count;
    topic.assignments = assignments.map(|a| {
        a.iter()
            .map(|replicas| {
                let mut assignment = CreatePartitionsAssignment::default();
                assignment.broker_ids = replicas.iter().map(|b| BrokerId(*b)).collect();
                assignment
            })
            .collect()
    });
    let mut request = CreatePartitionsRequest::default();
    request.topics = vec![topic];
    request.timeout_ms = REQUEST_TIMEOUT_MS;
    request.validate_only = validate_only;
    request
}

fn alter_topic_configs_request(name: &str, ops: &[ConfigOp]) -> IncrementalAlterConfigsRequest {
    let mut resource = AlterConfigsResource::default();
    resource.resource_type = CONFIG_RESOURCE_TOPIC;
    resource.resource_name = StrBytes::from_string(name.to_owned());
    resource.configs = ops
        .iter()
        .map(|op| {
            let mut c = AlterableConfig::default();
            match op {
                ConfigOp::Set(key, value) => {
                    c.name = StrBytes::from_string(key.clone());
                    c.config_operation = OP_SET;
                    c.value = Some(StrBytes::from_string(value.clone()));
                }
                ConfigOp::Delete(key) => {
                    c.name = StrBytes::from_string(key.clone());
                    c.config_operation = OP_DELETE;
                    c.value = None;
                }
            }
            c
        })
        .collect();
    let mut request = IncrementalAlterConfigsRequest::default();
    request.resources = vec![resource];
    request
}

/// CreateTopics on the controller.
pub(super) async fn serve_create_topics(
    controller: &Controller<Quorum>,
    request: &CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let topics: Vec<NewTopic> = request
        .topics
        .iter()
        .map(|t| NewTopic {
            name: t.name.0.to_string(),
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: t
                .assignments
                .iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.iter().map(|b| b.0).collect(),
                    )
                })
                .collect(),
            configs: t
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect(),
        })
        .collect();
    let results = controller
        .create_topics(&topics, request.validate_only)
        .await;
    let mut response = CreateTopicsResponse::default();
    response.topics = results
        .into_iter()
        .map(|(name, result)| {
            let mut r = CreatableTopicResult::default();
            r.name = topic_name(&name);
            match result {
                Ok(created) => {
                    if version >= 7 {
                        r.topic_id = created.topic_id;
                    }
                    if version >= 5 {
                        r.num_partitions = created.num_partitions;
                        r.replication_factor = created.replication_factor;
                    }
                }
                Err(e) => (r.error_code, r.error_message) = wire_error(&e),
            }
            r
        })
        .collect();
    response
}

/// DeleteTopics on the controller: by name (v1-6) or by id (v6).
pub(super) async fn serve_delete_topics(
    controller: &Controller<Quorum>,
    request: &DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    // Each requested topic's name, or the error that it has none.
    let image = controller.image();
    let wanted: Vec<(Uuid, Result<String, ControllerError>)> = if version >= 6 {
        request
            .topics
            .iter()
            .map(|t| match &t.name {
                Some(name) => (t.topic_id, Ok(name.0.to_string())),
                None => (
                    t.topic_id,
                    image
                        .topic(t.topic_id)
                        .map(|t| t.name.clone())
                        .ok_or_else(|| {
                            ControllerError::new(
                                ResponseError::UnknownTopicId,
                                "This server does not host this topic ID.",
                            )
                        }),
                ),
            })
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| (Uuid::nil(), Ok(n.0.to_string())))
            .collect()
    };
    let names: Vec<String> = wanted
        .iter()
        .filter_map(|(_, n)| n.as_ref().ok().cloned())
        .collect();
    let mut deleted = controller.delete_topics(&names).await.into_iter();
    let mut response = DeleteTopicsResponse::default();
    response.responses = wanted
        .into_iter()
        .map(|(id, name)| {
            let mut r = DeletableTopicResult::default();
            let result = match name {
                Ok(name) => {
                    r.name = Some(topic_name(&name));
                    deleted.next().map_or_else(
                        || {
                            Err(ControllerError::new(
                                ResponseError::UnknownServerError,
                                "no result",
                            ))
                        },
                        |(_, result)| result,
                    )
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(topic_id) if version >= 6 => r.topic_id = topic_id,
                Ok(_) => {}
                Err(e) => {
                    if version >= 6 {
                        r.topic_id = id;
                    }
                    r.error_code = e.code.code();
                    if version >= 5 {
                        r.error_message = Some(StrBytes::from_string(e.message));
                    }
                }
            }
            r
        })
        .collect();
    response
}

/// CreatePartitions on the controller, one topic after another.
pub(super) async fn serve_create_partitions(
    controller: &Controller<Quorum>,
    request: &CreatePartitionsRequest,
    _version: i16,
) -> CreatePartitionsResponse {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &request.topics {
        *seen.entry(t.name.0.as_str()).or_default() += 1;
    }
    let mut response = CreatePartitionsResponse::default();
    for t in &request.topics {
        let name = t.name.0.as_str();
        let result = if seen.get(name).copied().unwrap_or(0) > 1 {
            Err(ControllerError::new(
                ResponseError::InvalidRequest,
                "Duplicate topic name.",
            ))
        } else {
            let assignments: Option<Vec<Vec<i32>>> = t.assignments.as_ref().map(|a| {
                a.iter()
                    .map(|r| r.broker_ids.iter().map(|b| b.0).collect())
                    .collect()
            });
            controller
                .create_partitions(name, t.count, assignments.as_deref(), request.validate_only)
                .await
        };
        let mut r = CreatePartitionsTopicResult::default();
        r.name = t.name.clone();
        if let Err(e) = result {
            (r.error_code, r.error_message) = wire_error(&e);
        }
        response.results.push(r);
    }
    response
}

/// IncrementalAlterConfigs on the controller: SET and DELETE on topics.
pub(super) async fn serve_incremental_alter_configs(
    controller: &Controller<Quorum>,
    request: &IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let mut response = IncrementalAlterConfigsResponse::default();
    for resource in &request.resources {
        let result = match topic_ops(resource) {
            Ok(ops) => {
                controller
                    .alter_topic_configs(&resource.resource_name, &ops, request.validate_only)
                    .await
            }
            Err(e) => Err(e),
        };
        let mut r = AlterConfigsResourceResponse::default();
        r.resource_type = resource.resource_type;
        r.resource_name = resource.resource_name.clone();
        if let Err(e) = result {
            (r.error_code, r.error_message) = wire_error(&e);
        }
        response.responses.push(r);
    }
    response
}

/// A resource's operations, if it is a topic and they are SETs with a
/// value and DELETEs.
fn topic_ops(resource: &AlterConfigsResource) -> Result<Vec<ConfigOp>, ControllerError> {
    let invalid = |m: String| ControllerError::new(ResponseError::InvalidRequest, m);
    if resource.resource_type != CONFIG_RESOURCE_TOPIC {
        return Err(invalid(format!(
            "the controller alters topic configs only, not resources of type {}",
            resource.resource_type
        )));
    }
    resource
        .configs
        .iter()
        .map(|c| match (c.config_operation, &c.value) {
            (OP_SET, Some(value)) => Ok(ConfigOp::Set(c.name.to_string(), value.to_string())),
            (OP_SET, None) => Err(invalid(format!(
                "Null value not supported for : {}",
                c.name
            ))),
            (OP_DELETE, _) => Ok(ConfigOp::Delete(c.name.to_string())),
            (op, _) => Err(invalid(format!(
                "config operation {op} on {} is not supported (SET and DELETE are)",
                c.name
            ))),
        })
        .collect()
}

/// AllocateProducerIds on the controller.
pub(super) async fn serve_allocate_producer_ids(
    controller: &Controller<Quorum>,
    request: &AllocateProducerIdsRequest,
    _version: i16,
) -> AllocateProducerIdsResponse {
    let mut response = AllocateProducerIdsResponse::default();
    match controller
        .allocate_producer_ids(request.broker_id.0, request.broker_epoch)
        .await
    {
        Ok(block) => {
            response.producer_id_start = block.first.into();
            response.producer_id_len = block.len;
        }
        Err(e) => {
            tracing::info!(broker = request.broker_id.0, "producer ids refused: {e}");
            response.error_code = e.code.code();
            response.producer_id_start = (-1).into();
        }
    }
    response
}

/// One ISR change a partition leader asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

impl ClusterNode {
    /// AlterPartition via the active controller, one attempt: each
    /// change's outcome, in order (the image brings accepted ones).
    pub async fn alter_partition(
        &self,
        changes: &[IsrChange],
    ) -> Result<Vec<Result<(), ControllerError>>, ControllerError> {
        let epoch = self.broker_epoch().ok_or_else(|| {
            ControllerError::new(
                ResponseError::StaleBrokerEpoch,
                "this broker has not registered with the controller yet",
            )
        })?;
        let image = self.image();
        let node_id = self.settings.node_id;
        let build = |version: i16| {
            let mut request = AlterPartitionRequest::default();
            request.broker_id = BrokerId(node_id);
            request.broker_epoch = epoch;
            let mut topics: Vec<alter_partition_request::TopicData> = Vec::new();
            for change in changes {
                let mut p = alter_partition_request::PartitionData::default();
                p.partition_index = change.partition;
                p.leader_epoch = change.leader_epoch;
                p.partition_epoch = change.partition_epoch;
                if version >= 3 {
                    p.new_isr_with_epochs = change
                        .isr
                        .iter()
                        .map(|b| {
                            let mut s = alter_partition_request::BrokerState::default();
                            s.broker_id = BrokerId(*b);
                            s.broker_epoch = image.broker(*b).map_or(-1, |r| r.epoch);
                            s
                        })
                        .collect();
                } else {
                    p.new_isr = change.isr.iter().map(|b| BrokerId(*b)).collect();
                }
                match topics.iter_mut().find(|t| t.topic_id == change.topic_id) {
                    Some(t) => t.partitions.push(p),
                    None => {
                        let mut t = alter_partition_request::TopicData::default();
                        t.topic_id = change.topic_id;
                        t.partitions.push(p);
                        topics.push(t);
                    }
                }
            }
            request.topics = topics;
            request
        };
        let response = self
            .admin_attempt(build, |c, r, v| async move {
                serve_alter_partition(&c, &r, v).await
            })
            .await?;
        result_of(response.error_code, None)?;
        Ok(changes
            .iter()
            .map(|change| {
                let code = response
                    .topics
                    .iter()
                    .filter(|t| t.topic_id == change.topic_id)
                    .flat_map(|t| &t.partitions)
                    .find(|p| p.partition_index == change.partition)
                    .map_or(ResponseError::UnknownTopicOrPartition.code(), |p| {
                        p.error_code
                    });
                result_of(code, None)
            })
            .collect())
    }
}

/// AlterPartition on the controller.
pub(super) async fn serve_alter_partition(
    controller: &Controller<Quorum>,
    request: &AlterPartitionRequest,
    version: i16,
) -> AlterPartitionResponse {
    let mut data = Vec::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            let new_isr = if version >= 3 {
                p.new_isr_with_epochs
                    .iter()
                    .map(|s| IsrMember {
                        broker_id: s.broker_id.0,
                        broker_epoch: s.broker_epoch,
                    })
                    .collect()
            } else {
                p.new_isr
                    .iter()
                    .map(|b| IsrMember {
                        broker_id: b.0,
                        broker_epoch: -1,
                    })
                    .collect()
            };
            data.push(AlterPartitionData {
                topic_id: topic.topic_id,
                partition_index: p.partition_index,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
                new_isr,
                leader_recovery_state: LeaderRecoveryState::from_value(p.leader_recovery_state)
                    .unwrap_or_default(),
            });
        }
    }
    let mut response = AlterPartitionResponse::default();
    let outcomes = match controller
        .alter_partition(request.broker_id.0, request.broker_epoch, &data)
        .await
    {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::info!(broker = request.broker_id.0, "AlterPartition refused: {e}");
            response.error_code = e.code.code();
            return response;
        }
    };
    for (d, outcome) in data.iter().zip(outcomes) {
        let mut p = alter_partition_response::PartitionData::default();
        p.partition_index = d.partition_index;
        match outcome {
            Ok(o) => {
                p.error_code = if o.new_leader_elected {
                    ResponseError::NewLeaderElected.code()
                } else {
                    0
                };
                p.leader_id = BrokerId(o.partition.leader);
                p.leader_epoch = o.partition.leader_epoch;
                p.isr = o.partition.isr.iter().map(|b| BrokerId(*b)).collect();
                p.leader_recovery_state = o.partition.leader_recovery_state.value();
                p.partition_epoch = o.partition.partition_epoch;
            }
            Err(e) => {
                tracing::info!(
                    broker = request.broker_id.0,
                    partition = d.partition_index,
                    "ISR change refused: {e}"
                );
                p.error_code = e.code.code();
                p.leader_id = BrokerId(-1);
            }
        }
        match response
            .topics
            .iter_mut()
            .find(|t| t.topic_id == d.topic_id)
        {
            Some(t) => t.partitions.push(p),
            None => {
                let mut t = alter_partition_response::TopicData::default();
                t.topic_id = d.topic_id;
                t.partitions.push(p);
                response.topics.push(t);
            }
        }
    }
    response
}
