//! Admin operations on a [`ClusterClient`]: topics, offsets, configs and
//! consumer groups, each sent where Kafka's admin client sends it and
//! retried on retriable errors.

use std::collections::BTreeMap;

use base64::Engine;
use bytes::Buf;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::{
    BrokerId, ConsumerProtocolAssignment, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteGroupsRequest, DeleteTopicsRequest, DescribeConfigsRequest, DescribeGroupsRequest,
    GroupId, IncrementalAlterConfigsRequest, ListGroupsRequest, ListOffsetsRequest,
    MetadataResponse, OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use crate::{is_retriable_code, ClientError, ClusterClient};

/// How long the broker may take over a topic change.
const ADMIN_TIMEOUT_MS: i32 = 30_000;

/// ListOffsets' special timestamps.
pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;
/// ListOffsets' answer when no record has a timestamp that new.
pub const NO_OFFSET: i64 = -1;

/// OffsetCommit v10 names topics by id; this client names them.
const OFFSET_COMMIT_MAX_VERSION: i16 = 8;

/// Config resource types (DescribeConfigs, IncrementalAlterConfigs).
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// A Kafka topic id as Kafka's tools print it (URL-safe base64, no padding).
pub fn topic_id_string(id: &[u8; 16]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

/// Kafka's name for a config source code (`ConfigEntry.ConfigSource`).
pub fn config_source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}

/// One partition as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline: Vec<i32>,
    pub error_code: i16,
}

/// One topic as Metadata describes it, partitions in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub id: String,
    pub internal: bool,
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    /// The replication factor: the replica count of the first partition.
    pub fn replication_factor(&self) -> usize {
        self.partitions.first().map_or(0, |p| p.replicas.len())
    }
}

/// The topics of a Metadata answer, by name. A topic the answer reports
/// with an error (unknown, being created) is left out.
pub fn topics_of(response: &MetadataResponse) -> BTreeMap<String, TopicInfo> {
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    response
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .filter_map(|t| {
            let name = t.name.as_ref()?.0.to_string();
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: ids(&p.replica_nodes),
                    isr: ids(&p.isr_nodes),
                    offline: ids(&p.offline_replicas),
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            let info = TopicInfo {
                name: name.clone(),
                id: topic_id_string(t.topic_id.as_bytes()),
                internal: t.is_internal,
                partitions,
            };
            Some((name, info))
        })
        .collect()
}

/// One config entry as DescribeConfigs describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
    pub sensitive: bool,
    pub read_only: bool,
    /// Where the value could come from, most specific first: name, value
    /// and source of each (DescribeConfigs' synonyms).
    pub synonyms: Vec<ConfigSynonym>,
}

/// A config synonym: the same setting under the name and source it has at
/// one level (topic, broker, default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    pub name: String,
    pub value: Option<String>,
    pub source: i8,
}

/// A group as ListGroups lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    pub group: String,
    pub protocol_type: String,
    pub state: String,
    pub coordinator: i32,
}

/// A member of a group as DescribeGroups describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    /// The partitions assigned to it, when the group uses the consumer protocol.
    pub assignment: Vec<(String, i32)>,
}

/// A group as DescribeGroups describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub coordinator: i32,
    pub members: Vec<GroupMember>,
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn text(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|m| m.to_string())
}

impl ClusterClient {
    /// The topics named (all when `None`), described by Metadata. Unknown
    /// names among `topics` are an error.
    pub async fn describe_topics(
        &mut self,
        topics: Option<&[String]>,
    ) -> Result<BTreeMap<String, TopicInfo>, ClientError> {
        self.with_retries(async |c| c.describe_topics_once(topics).await)
            .await
    }

    /// [`ClusterClient::describe_topics`] without retries, for operations
    /// that retry as a whole.
    pub async fn describe_topics_once(
        &mut self,
        topics: Option<&[String]>,
    ) -> Result<BTreeMap<String, TopicInfo>, ClientError> {
        let response = self.metadata(topics).await?;
        for t in &response.topics {
            let topic = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            if t.error_code == 3 {
                return Err(unknown_topic(&topic));
            }
            ClientError::check(t.error_code, None, || {
                format!("could not describe topic '{topic}'")
            })?;
        }
        Ok(topics_of(&response))
    }

    /// CreateTopics of one topic, sent to the controller.
    pub async fn create_topic(
        &mut self,
        topic: &str,
        partitions: i32,
        replication_factor: i16,
        configs: &[(String, String)],
    ) -> Result<(), ClientError> {
        let mut t = CreatableTopic::default();
        t.name = name(topic);
        t.num_partitions = partitions;
        t.replication_factor = replication_factor;
        t.configs = configs
            .iter()
            .map(|(k, v)| {
                let mut c = CreatableTopicConfig::default();
                c.name = StrBytes::from_string(k.clone());
                c.value = Some(StrBytes::from_string(v.clone()));
                c
            })
            .collect();
        let mut request = CreateTopicsRequest::default();
        request.topics = vec![t];
        request.timeout_ms = ADMIN_TIMEOUT_MS;
        self.with_retries(async |c| {
            let response = c.call_controller(&request).await?;
            for r in &response.topics {
                ClientError::check(r.error_code, r.error_message.as_deref(), || {
                    format!("could not create topic '{topic}'")
                })?;
            }
            Ok(())
        })
        .await
    }

    /// DeleteTopics of one topic by name, sent to the controller.
    pub async fn delete_topic(&mut self, topic: &str) -> Result<(), ClientError> {
        let mut request = DeleteTopicsRequest::default();
        let version = self
            .any_connection()
            .await?
            .version_of::<DeleteTopicsRequest>()
            .unwrap_or(1);
        if version >= 6 {
            let mut state =
                kafka_protocol::messages::delete_topics_request::DeleteTopicState::default();
            state.name = Some(name(topic));
            request.topics = vec![state];
        } else {
            request.topic_names = vec![name(topic)];
        }
        request.timeout_ms = ADMIN_TIMEOUT_MS;
        self.with_retries(async |c| {
            let response = c.call_controller(&request).await?;
            for r in &response.responses {
                ClientError::check(r.error_code, r.error_message.as_deref(), || {
                    format!("could not delete topic '{topic}'")
                })?;
            }
            Ok(())
        })
        .await
    }

    /// CreatePartitions: grows `topic` to `count` partitions.
    pub async fn create_partitions(&mut self, topic: &str, count: i32) -> Result<(), ClientError> {
        let mut t = CreatePartitionsTopic::default();
        t.name = name(topic);
        t.count = count;
        t.assignments = None;
        let mut request = CreatePartitionsRequest::default();
        request.topics = vec![t];
        request.timeout_ms = ADMIN_TIMEOUT_MS;
        self.with_retries(async |c| {
            let response = c.call_controller(&request).await?;
            for r in &response.results {
                ClientError::check(r.error_code, r.error_message.as_deref(), || {
                    format!("could not add partitions to topic '{topic}'")
                })?;
            }
            Ok(())
        })
        .await
    }

    /// ListOffsets at `timestamp` (`EARLIEST`, `LATEST` or a time in ms) for
    /// every partition of `topic` that has a leader, each asked of its
    /// leader. Returns the offset per partition.
    pub async fn list_offsets(
        &mut self,
        topic: &str,
        timestamp: i64,
        isolation_level: i8,
    ) -> Result<BTreeMap<i32, i64>, ClientError> {
        self.with_retries(async |c| {
            let topics = c.describe_topics_once(Some(&[topic.to_string()])).await?;
            let info = topics.get(topic).ok_or_else(|| unknown_topic(topic))?;
            let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
            // A partition without a leader (offline) has no offsets to
            // give; it is left out of the answer.
            for p in info.partitions.iter().filter(|p| p.leader >= 0) {
                by_leader.entry(p.leader).or_default().push(p.partition);
            }
            let mut offsets = BTreeMap::new();
            for (leader, partitions) in by_leader {
                let mut t = ListOffsetsTopic::default();
                t.name = name(topic);
                t.partitions = partitions
                    .iter()
                    .map(|&p| {
                        let mut lp = ListOffsetsPartition::default();
                        lp.partition_index = p;
                        lp.current_leader_epoch = -1;
                        lp.timestamp = timestamp;
                        lp
                    })
                    .collect();
                let mut request = ListOffsetsRequest::default();
                request.replica_id = BrokerId(-1);
                request.isolation_level = isolation_level;
                request.topics = vec![t];
                let response = c.call_node(leader, &request).await?;
                for t in &response.topics {
                    for p in &t.partitions {
                        ClientError::check(p.error_code, None, || {
                            format!("could not list offsets of {topic}-{}", p.partition_index)
                        })?;
                        offsets.insert(p.partition_index, p.offset);
                    }
                }
            }
            Ok(offsets)
        })
        .await
    }

    /// DescribeConfigs of one resource (`RESOURCE_TOPIC` or
    /// `RESOURCE_BROKER`). A broker's configs are asked of that broker, a
    /// topic's of any broker, as Kafka's admin client does.
    pub async fn describe_configs(
        &mut self,
        resource_type: i8,
        resource: &str,
    ) -> Result<Vec<ConfigEntry>, ClientError> {
        let mut r = DescribeConfigsResource::default();
        r.resource_type = resource_type;
        r.resource_name = StrBytes::from_string(resource.to_string());
        r.configuration_keys = None;
        let mut request = DescribeConfigsRequest::default();
        request.resources = vec![r];
        request.include_synonyms = true;
        let broker = (resource_type == RESOURCE_BROKER)
            .then(|| resource.parse::<i32>())
            .transpose()
            .map_err(|_| ClientError::Invalid(format!("broker id {resource:?} is not a number")))?;
        self.with_retries(async |c| {
            let response = match broker {
                Some(id) => c.call_node(id, &request).await?,
                None => c.call_any(&request).await?,
            };
            let mut entries = Vec::new();
            for result in &response.results {
                ClientError::check(result.error_code, result.error_message.as_deref(), || {
                    format!(
                        "could not describe the configs of {}",
                        resource_label(resource_type, resource)
                    )
                })?;
                entries.extend(result.configs.iter().map(|e| {
                    ConfigEntry {
                        name: e.name.to_string(),
                        value: text(&e.value),
                        source: e.config_source,
                        sensitive: e.is_sensitive,
                        read_only: e.read_only,
                        synonyms: e
                            .synonyms
                            .iter()
                            .map(|s| ConfigSynonym {
                                name: s.name.to_string(),
                                value: text(&s.value),
                                source: s.source,
                            })
                            .collect(),
                    }
                }));
            }
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(entries)
        })
        .await
    }

    /// IncrementalAlterConfigs of one resource: `set` (SET) and `delete`
    /// (DELETE, back to the default).
    pub async fn alter_configs(
        &mut self,
        resource_type: i8,
        resource: &str,
        set: &[(String, String)],
        delete: &[String],
    ) -> Result<(), ClientError> {
        let mut r = AlterConfigsResource::default();
        r.resource_type = resource_type;
        r.resource_name = StrBytes::from_string(resource.to_string());
        for (k, v) in set {
            let mut c = AlterableConfig::default();
            c.name = StrBytes::from_string(k.clone());
            c.config_operation = 0;
            c.value = Some(StrBytes::from_string(v.clone()));
            r.configs.push(c);
        }
        for k in delete {
            let mut c = AlterableConfig::default();
            c.name = StrBytes::from_string(k.clone());
            c.config_operation = 1;
            c.value = None;
            r.configs.push(c);
        }
        let mut request = IncrementalAlterConfigsRequest::default();
        request.resources = vec![r];
        let broker = (resource_type == RESOURCE_BROKER)
            .then(|| resource.parse::<i32>())
            .transpose()
            .map_err(|_| ClientError::Invalid(format!("broker id {resource:?} is not a number")))?;
        self.with_retries(async |c| {
            let response = match broker {
                Some(id) => c.call_node(id, &request).await?,
                None => c.call_any(&request).await?,
            };
            for r in &response.responses {
                ClientError::check(r.error_code, r.error_message.as_deref(), || {
                    format!(
                        "could not alter the configs of {}",
                        resource_label(resource_type, resource)
                    )
                })?;
            }
            Ok(())
        })
        .await
    }

    /// ListGroups of every broker (each lists the groups it coordinates).
    pub async fn list_groups(&mut self) -> Result<Vec<ListedGroup>, ClientError> {
        let brokers: Vec<i32> = self.brokers().keys().copied().collect();
        let mut groups = Vec::new();
        for broker in brokers {
            let response = self
                .with_retries(async |c| {
                    let response = c.call_node(broker, &ListGroupsRequest::default()).await?;
                    ClientError::check(response.error_code, None, || {
                        format!("could not list the groups of broker {broker}")
                    })?;
                    Ok(response)
                })
                .await?;
            groups.extend(response.groups.iter().map(|g| ListedGroup {
                group: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
                coordinator: broker,
            }));
        }
        groups.sort_by(|a, b| a.group.cmp(&b.group));
        groups.dedup_by(|a, b| a.group == b.group);
        Ok(groups)
    }

    /// DescribeGroups of `group`, asked of its coordinator.
    pub async fn describe_group(&mut self, group: &str) -> Result<GroupDescription, ClientError> {
        let mut request = DescribeGroupsRequest::default();
        request.groups = vec![GroupId(StrBytes::from_string(group.to_string()))];
        self.with_retries(async |c| {
            let coordinator = c.coordinator(group).await?;
            let response = c.call_node(coordinator, &request).await?;
            let g = response.groups.first().ok_or_else(|| {
                ClientError::Invalid(format!("no description of group '{group}' in the answer"))
            })?;
            ClientError::check(g.error_code, g.error_message.as_deref(), || {
                format!("could not describe group '{group}'")
            })?;
            let consumer = g.protocol_type.as_str() == "consumer";
            let members = g
                .members
                .iter()
                .map(|m| GroupMember {
                    member_id: m.member_id.to_string(),
                    client_id: m.client_id.to_string(),
                    host: m.client_host.to_string(),
                    assignment: if consumer {
                        decode_assignment(&m.member_assignment)
                    } else {
                        Vec::new()
                    },
                })
                .collect();
            Ok(GroupDescription {
                group: group.to_string(),
                state: g.group_state.to_string(),
                protocol_type: g.protocol_type.to_string(),
                protocol: g.protocol_data.to_string(),
                coordinator,
                members,
            })
        })
        .await
    }

    /// The committed offsets of `group` (OffsetFetch of all its
    /// partitions), by topic and partition.
    pub async fn committed_offsets(
        &mut self,
        group: &str,
    ) -> Result<BTreeMap<(String, i32), i64>, ClientError> {
        let mut request = OffsetFetchRequest::default();
        request.group_id = GroupId(StrBytes::from_string(group.to_string()));
        request.topics = None;
        self.with_retries(async |c| {
            let coordinator = c.coordinator(group).await?;
            let response = c.call_node_capped(coordinator, &request, 7).await?;
            ClientError::check(response.error_code, None, || {
                format!("could not fetch the offsets of group '{group}'")
            })?;
            let mut offsets = BTreeMap::new();
            for t in &response.topics {
                for p in &t.partitions {
                    ClientError::check(p.error_code, None, || {
                        format!("could not fetch the offsets of group '{group}'")
                    })?;
                    if p.committed_offset >= 0 {
                        offsets.insert(
                            (t.name.0.to_string(), p.partition_index),
                            p.committed_offset,
                        );
                    }
                }
            }
            Ok(offsets)
        })
        .await
    }

    /// OffsetCommit of `offsets` (the next offset to read, by topic and
    /// partition) for `group` from outside any generation (generation -1,
    /// no member id), as Kafka's admin client commits for an empty group.
    pub async fn commit_group_offsets(
        &mut self,
        group: &str,
        offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<(), ClientError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut by_topic: BTreeMap<&str, Vec<(i32, i64)>> = BTreeMap::new();
        for ((topic, partition), &offset) in offsets {
            by_topic
                .entry(topic)
                .or_default()
                .push((*partition, offset));
        }
        let mut request = OffsetCommitRequest::default();
        request.group_id = GroupId(StrBytes::from_string(group.to_string()));
        request.generation_id_or_member_epoch = -1;
        request.topics = by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                let mut t = OffsetCommitRequestTopic::default();
                t.name = name(topic);
                t.partitions = partitions
                    .into_iter()
                    .map(|(p, o)| {
                        let mut op = OffsetCommitRequestPartition::default();
                        op.partition_index = p;
                        op.committed_offset = o;
                        op.committed_leader_epoch = -1;
                        op
                    })
                    .collect();
                t
            })
            .collect();
        self.send_offset_commit(group, &request).await
    }

    /// Sends `request` (an OffsetCommit for `group`) to the group's
    /// coordinator, with retries; any partition's error is the error.
    pub(crate) async fn send_offset_commit(
        &mut self,
        group: &str,
        request: &OffsetCommitRequest,
    ) -> Result<(), ClientError> {
        self.with_retries(async |c| {
            let coordinator = c.coordinator(group).await?;
            let response = c
                .call_node_capped(coordinator, request, OFFSET_COMMIT_MAX_VERSION)
                .await?;
            for t in &response.topics {
                for p in &t.partitions {
                    ClientError::check(p.error_code, None, || {
                        format!(
                            "could not commit the offset of {}-{} for group '{group}'",
                            t.name.0, p.partition_index
                        )
                    })?;
                }
            }
            Ok(())
        })
        .await
    }

    /// OffsetDelete of `partitions` (topic, partition) for `group`, asked of
    /// its coordinator. A group-level error is an `Err`; otherwise the
    /// error code of each partition (0 when its offset was deleted).
    pub async fn delete_group_offsets(
        &mut self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<BTreeMap<(String, i32), i16>, ClientError> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in partitions {
            by_topic.entry(topic).or_default().push(*partition);
        }
        let mut request = OffsetDeleteRequest::default();
        request.group_id = GroupId(StrBytes::from_string(group.to_string()));
        request.topics = by_topic
            .into_iter()
            .map(|(topic, partitions)| {
                let mut t = OffsetDeleteRequestTopic::default();
                t.name = name(topic);
                t.partitions = partitions
                    .into_iter()
                    .map(|p| {
                        let mut dp = OffsetDeleteRequestPartition::default();
                        dp.partition_index = p;
                        dp
                    })
                    .collect();
                t
            })
            .collect();
        self.with_retries(async |c| {
            let coordinator = c.coordinator(group).await?;
            let response = c.call_node(coordinator, &request).await?;
            ClientError::check(response.error_code, None, || {
                format!("could not delete the offsets of group '{group}'")
            })?;
            let mut results = BTreeMap::new();
            for t in &response.topics {
                for p in &t.partitions {
                    // Coordination errors are retried like a group-level one.
                    if is_retriable_code(p.error_code) {
                        ClientError::check(p.error_code, None, || {
                            format!("could not delete the offsets of group '{group}'")
                        })?;
                    }
                    results.insert((t.name.0.to_string(), p.partition_index), p.error_code);
                }
            }
            Ok(results)
        })
        .await
    }

    /// DeleteGroups of `group`, asked of its coordinator.
    pub async fn delete_group(&mut self, group: &str) -> Result<(), ClientError> {
        let mut request = DeleteGroupsRequest::default();
        request.groups_names = vec![GroupId(StrBytes::from_string(group.to_string()))];
        self.with_retries(async |c| {
            let coordinator = c.coordinator(group).await?;
            let response = c.call_node(coordinator, &request).await?;
            for r in &response.results {
                ClientError::check(r.error_code, None, || {
                    format!("could not delete group '{group}'")
                })?;
            }
            Ok(())
        })
        .await
    }
}

/// "topic 'x'" or "broker 1".
fn resource_label(resource_type: i8, resource: &str) -> String {
    if resource_type == RESOURCE_BROKER {
        format!("broker {resource}")
    } else {
        format!("topic '{resource}'")
    }
}

/// The error for a topic the cluster does not have.
pub fn unknown_topic(topic: &str) -> ClientError {
    ClientError::Broker {
        context: format!("topic '{topic}' does not exist"),
        code: 3,
        message: None,
    }
}

/// The partitions of a consumer-protocol assignment (empty when it does
/// not decode: another protocol's bytes).
pub fn decode_assignment(bytes: &[u8]) -> Vec<(String, i32)> {
    let mut buf = bytes::Bytes::copy_from_slice(bytes);
    if buf.remaining() < 2 {
        return Vec::new();
    }
    let version = buf.get_i16().clamp(0, 3);
    match ConsumerProtocolAssignment::decode(&mut buf, version) {
        Ok(a) => a
            .assigned_partitions
            .iter()
            .flat_map(|tp| tp.partitions.iter().map(|&p| (tp.topic.0.to_string(), p)))
            .collect(),
        Err(_) => Vec::new(),
    }
}
