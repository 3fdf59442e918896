//! Valid requests of every API the registry serves, at every version it
//! serves, encoded with `kafka-protocol`: the seed corpus, so the fuzzer
//! starts past the decoders. Requests name the harness's topic and group
//! (`TOPIC`, `GROUP`) so they reach the broker's real work, not only its
//! "unknown topic" answers.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use wharf::registry::APIS;
use wharf_protocol::frame::size_prefix;
use wharf_protocol::header::request_header_version;

pub const TOPIC: &str = "fuzz";
pub const GROUP: &str = "fuzz-group";
pub const TXN: &str = "fuzz-txn";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn topic() -> TopicName {
    TopicName(s(TOPIC))
}

fn group() -> GroupId {
    GroupId(s(GROUP))
}

/// A v2 batch of two uncompressed records.
pub fn record_batch() -> Bytes {
    let records: Vec<Record> = (0..2)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: -1,
            timestamp: 1_700_000_000_000 + i,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from_static(b"fuzz value")),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    // An encoder failure here is a bug in the seed tool itself.
    RecordBatchEncoder::encode(&mut out, &records, &options).expect("record batch encodes");
    out.freeze()
}

/// A size-prefixed request frame: header (at the version the server reads
/// for this key and version) then body.
fn frame<T: Encodable + HeaderVersion>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Option<Vec<u8>> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(s("wharf-fuzz")));
    let mut out = BytesMut::new();
    header
        .encode(&mut out, request_header_version(key, version))
        .ok()?;
    body.encode(&mut out, version).ok()?;
    let mut framed = size_prefix(out.len()).to_vec();
    framed.extend_from_slice(&out);
    Some(framed)
}

/// Encodes the first candidate the version can carry (`kafka-protocol`
/// refuses to encode a field the version lacks), else the default body.
fn first<T: Encodable + HeaderVersion + Default>(
    key: ApiKey,
    version: i16,
    candidates: Vec<T>,
) -> Option<Vec<u8>> {
    candidates
        .iter()
        .find_map(|body| frame(key, version, version.into(), body))
        .or_else(|| frame(key, version, version.into(), &T::default()))
}

/// Produce v0-v2 (hand-encoded: the codec starts at v3): acks 1, one
/// partition of the harness's topic.
fn legacy_produce(version: i16) -> Vec<u8> {
    let mut body = BytesMut::new();
    let key = (ApiKey::Produce as i16).to_be_bytes();
    body.put_slice(&key);
    body.put_i16(version);
    body.put_i32(i32::from(version));
    body.put_i16(10);
    body.put_slice(b"wharf-fuzz");
    body.put_i16(1);
    body.put_i32(30_000);
    body.put_i32(1);
    body.put_i16(TOPIC.len() as i16);
    body.put_slice(TOPIC.as_bytes());
    body.put_i32(1);
    body.put_i32(0);
    let records = record_batch();
    body.put_i32(records.len() as i32);
    body.put_slice(&records);
    let mut framed = size_prefix(body.len()).to_vec();
    framed.extend_from_slice(&body);
    framed
}

/// One valid request of `key` at `version`, framed.
pub fn request(key: ApiKey, version: i16) -> Option<Vec<u8>> {
    let by_id = |v: i16, min: i16| v >= min;
    match key {
        ApiKey::Produce if version < 3 => Some(legacy_produce(version)),
        ApiKey::Produce => {
            let partition = produce_request::PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(record_batch()));
            let mut t =
                produce_request::TopicProduceData::default().with_partition_data(vec![partition]);
            if !by_id(version, 13) {
                t = t.with_name(topic());
            }
            first(
                key,
                version,
                vec![ProduceRequest::default()
                    .with_acks(-1)
                    .with_timeout_ms(1000)
                    .with_topic_data(vec![t])],
            )
        }
        ApiKey::Fetch => {
            let p = fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20);
            let mut t = fetch_request::FetchTopic::default().with_partitions(vec![p]);
            if !by_id(version, 13) {
                t = t.with_topic(topic());
            }
            let base = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(500)
                .with_min_bytes(1)
                .with_topics(vec![t]);
            first(
                key,
                version,
                vec![
                    base.clone().with_max_bytes(1 << 20).with_session_epoch(-1),
                    base,
                ],
            )
        }
        ApiKey::ListOffsets => {
            let t = list_offsets_request::ListOffsetsTopic::default()
                .with_name(topic())
                .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1)]);
            first(
                key,
                version,
                vec![ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(vec![t])],
            )
        }
        ApiKey::Metadata => {
            let t = MetadataRequestTopic::default().with_name(Some(topic()));
            let base = MetadataRequest::default().with_topics(Some(vec![t]));
            first(
                key,
                version,
                vec![
                    base.clone()
                        .with_allow_auto_topic_creation(true)
                        .with_include_topic_authorized_operations(true),
                    base.clone().with_allow_auto_topic_creation(true),
                    base,
                ],
            )
        }
        ApiKey::OffsetCommit => {
            let t = offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(topic())
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1)
                        .with_committed_metadata(Some(s("m"))),
                ]);
            let base = OffsetCommitRequest::default()
                .with_group_id(group())
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![t]);
            first(
                key,
                version,
                vec![base.clone().with_retention_time_ms(-1), base],
            )
        }
        ApiKey::OffsetFetch => {
            let topics = vec![offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(topic())
                .with_partition_indexes(vec![0, 1])];
            let groups = vec![OffsetFetchRequestGroup::default()
                .with_group_id(group())
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopics::default()
                        .with_name(topic())
                        .with_partition_indexes(vec![0, 1]),
                ]))];
            first(
                key,
                version,
                vec![
                    OffsetFetchRequest::default().with_groups(groups),
                    OffsetFetchRequest::default()
                        .with_group_id(group())
                        .with_topics(Some(topics)),
                ],
            )
        }
        ApiKey::FindCoordinator => first(
            key,
            version,
            vec![
                FindCoordinatorRequest::default().with_coordinator_keys(vec![s(GROUP)]),
                FindCoordinatorRequest::default().with_key(s(GROUP)),
            ],
        ),
        ApiKey::JoinGroup => {
            let base = JoinGroupRequest::default()
                .with_group_id(group())
                .with_session_timeout_ms(10_000)
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(Bytes::from_static(&[
                        0, 1, 0, 0, 0, 1, 0, 4, b'f', b'u', b'z', b'z', 0, 0, 0, 0,
                    ]))]);
            first(
                key,
                version,
                vec![
                    base.clone()
                        .with_rebalance_timeout_ms(10_000)
                        .with_reason(Some(s("fuzz"))),
                    base.clone().with_rebalance_timeout_ms(10_000),
                    base,
                ],
            )
        }
        ApiKey::Heartbeat => first(
            key,
            version,
            vec![HeartbeatRequest::default()
                .with_group_id(group())
                .with_generation_id(1)
                .with_member_id(s("member"))],
        ),
        ApiKey::LeaveGroup => first(
            key,
            version,
            vec![
                LeaveGroupRequest::default()
                    .with_group_id(group())
                    .with_members(vec![MemberIdentity::default().with_member_id(s("member"))]),
                LeaveGroupRequest::default()
                    .with_group_id(group())
                    .with_member_id(s("member")),
            ],
        ),
        ApiKey::SyncGroup => {
            let base = SyncGroupRequest::default()
                .with_group_id(group())
                .with_generation_id(1)
                .with_member_id(s("member"))
                .with_assignments(vec![SyncGroupRequestAssignment::default()
                    .with_member_id(s("member"))
                    .with_assignment(Bytes::from_static(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0]))]);
            first(
                key,
                version,
                vec![
                    base.clone()
                        .with_protocol_type(Some(s("consumer")))
                        .with_protocol_name(Some(s("range"))),
                    base,
                ],
            )
        }
        ApiKey::DescribeGroups => first(
            key,
            version,
            vec![
                DescribeGroupsRequest::default()
                    .with_groups(vec![group()])
                    .with_include_authorized_operations(true),
                DescribeGroupsRequest::default().with_groups(vec![group()]),
            ],
        ),
        ApiKey::ListGroups => first(
            key,
            version,
            vec![
                ListGroupsRequest::default()
                    .with_states_filter(vec![s("Stable")])
                    .with_types_filter(vec![s("classic")]),
                ListGroupsRequest::default().with_states_filter(vec![s("Stable")]),
            ],
        ),
        ApiKey::ApiVersions => first(
            key,
            version,
            vec![ApiVersionsRequest::default()
                .with_client_software_name(s("wharf-fuzz"))
                .with_client_software_version(s("1"))],
        ),
        ApiKey::CreateTopics => {
            let t = CreatableTopic::default()
                .with_name(TopicName(s("fuzz-created")))
                .with_num_partitions(2)
                .with_replication_factor(1)
                .with_configs(vec![CreatableTopicConfig::default()
                    .with_name(s("cleanup.policy"))
                    .with_value(Some(s("compact")))]);
            first(
                key,
                version,
                vec![CreateTopicsRequest::default()
                    .with_topics(vec![t])
                    .with_timeout_ms(1000)],
            )
        }
        ApiKey::DeleteTopics => first(
            key,
            version,
            vec![
                DeleteTopicsRequest::default().with_topics(vec![
                    DeleteTopicState::default().with_name(Some(TopicName(s("fuzz-created"))))
                ]),
                DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s("fuzz-created"))]),
            ],
        ),
        ApiKey::DeleteRecords => first(
            key,
            version,
            vec![
                DeleteRecordsRequest::default().with_topics(vec![DeleteRecordsTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![DeleteRecordsPartition::default()
                        .with_partition_index(1)
                        .with_offset(1)])]),
            ],
        ),
        ApiKey::InitProducerId => first(
            key,
            version,
            vec![
                InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(s(TXN))))
                    .with_transaction_timeout_ms(60_000)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
                InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(s(TXN))))
                    .with_transaction_timeout_ms(60_000),
            ],
        ),
        ApiKey::AddPartitionsToTxn => {
            let topics = vec![AddPartitionsToTxnTopic::default()
                .with_name(topic())
                .with_partitions(vec![0])];
            first(
                key,
                version,
                vec![
                    AddPartitionsToTxnRequest::default().with_transactions(vec![
                        AddPartitionsToTxnTransaction::default()
                            .with_transactional_id(TransactionalId(s(TXN)))
                            .with_producer_id(ProducerId(0))
                            .with_topics(topics.clone()),
                    ]),
                    AddPartitionsToTxnRequest::default()
                        .with_v3_and_below_transactional_id(TransactionalId(s(TXN)))
                        .with_v3_and_below_producer_id(ProducerId(0))
                        .with_v3_and_below_topics(topics),
                ],
            )
        }
        ApiKey::AddOffsetsToTxn => first(
            key,
            version,
            vec![AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s(TXN)))
                .with_producer_id(ProducerId(0))
                .with_group_id(group())],
        ),
        ApiKey::EndTxn => first(
            key,
            version,
            vec![EndTxnRequest::default()
                .with_transactional_id(TransactionalId(s(TXN)))
                .with_producer_id(ProducerId(0))
                .with_committed(true)],
        ),
        ApiKey::WriteTxnMarkers => first(
            key,
            version,
            vec![
                WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                    .with_producer_id(ProducerId(0))
                    .with_transaction_result(true)
                    .with_topics(vec![WritableTxnMarkerTopic::default()
                        .with_name(topic())
                        .with_partition_indexes(vec![0])])]),
            ],
        ),
        ApiKey::TxnOffsetCommit => {
            let t = TxnOffsetCommitRequestTopic::default()
                .with_name(topic())
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(1)]);
            let base = TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s(TXN)))
                .with_group_id(group())
                .with_producer_id(ProducerId(0))
                .with_topics(vec![t]);
            first(
                key,
                version,
                vec![base.clone().with_generation_id(-1), base],
            )
        }
        ApiKey::DescribeConfigs => first(
            key,
            version,
            vec![
                DescribeConfigsRequest::default()
                    .with_resources(vec![DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s(TOPIC))])
                    .with_include_synonyms(true)
                    .with_include_documentation(true),
                DescribeConfigsRequest::default()
                    .with_resources(vec![DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s(TOPIC))])
                    .with_include_synonyms(true),
                DescribeConfigsRequest::default().with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(4)
                        .with_resource_name(s("1")),
                ]),
            ],
        ),
        ApiKey::AlterConfigs => first(
            key,
            version,
            vec![AlterConfigsRequest::default().with_resources(vec![
                alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s(TOPIC))
                    .with_configs(vec![alter_configs_request::AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s("86400000")))]),
            ])],
        ),
        ApiKey::DeleteGroups => first(
            key,
            version,
            vec![DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("fuzz-gone"))])],
        ),
        ApiKey::IncrementalAlterConfigs => first(
            key,
            version,
            vec![
                IncrementalAlterConfigsRequest::default().with_resources(vec![
                    incremental_alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s(TOPIC))
                        .with_configs(vec![
                            incremental_alter_configs_request::AlterableConfig::default()
                                .with_name(s("segment.bytes"))
                                .with_config_operation(0)
                                .with_value(Some(s("1048576"))),
                        ]),
                ]),
            ],
        ),
        ApiKey::OffsetDelete => first(
            key,
            version,
            vec![OffsetDeleteRequest::default()
                .with_group_id(group())
                .with_topics(vec![OffsetDeleteRequestTopic::default()
                    .with_name(topic())
                    .with_partitions(vec![
                        OffsetDeleteRequestPartition::default().with_partition_index(0)
                    ])])],
        ),
        ApiKey::DescribeCluster => first(
            key,
            version,
            vec![
                DescribeClusterRequest::default()
                    .with_include_cluster_authorized_operations(true)
                    .with_endpoint_type(1),
                DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
            ],
        ),
        ApiKey::DescribeProducers => first(
            key,
            version,
            vec![DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(topic())
                    .with_partition_indexes(vec![0, 1, 2]),
            ])],
        ),
        ApiKey::DescribeTransactions => first(
            key,
            version,
            vec![DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(s(TXN))])],
        ),
        ApiKey::ListTransactions => first(
            key,
            version,
            vec![
                ListTransactionsRequest::default()
                    .with_state_filters(vec![s("Ongoing")])
                    .with_duration_filter(-1)
                    .with_transactional_id_pattern(Some(s("fuzz.*"))),
                ListTransactionsRequest::default()
                    .with_state_filters(vec![s("Ongoing")])
                    .with_duration_filter(-1),
                ListTransactionsRequest::default().with_state_filters(vec![s("Ongoing")]),
            ],
        ),
        _ => None,
    }
}

/// Every served API at every served version, plus one version past the
/// newest (refused, or for ApiVersions answered in v0): (name, frame).
pub fn all_requests() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for api in APIS {
        for version in api.min_version..=api.max_version {
            if let Some(frame) = request(api.key, version) {
                out.push((format!("{:?}-v{version}", api.key), frame));
            }
        }
        // Past the newest version the codec may not encode; ApiVersions
        // (whose v0 answer is the interesting one) encodes as v3.
        if api.key == ApiKey::ApiVersions {
            if let Some(mut frame) = request(api.key, 3) {
                let past = (api.max_version + 1).to_be_bytes();
                frame[6..8].copy_from_slice(&past);
                out.push((format!("{:?}-v{}", api.key, api.max_version + 1), frame));
            }
        }
    }
    out
}

/// A topic with records and a consumer group with a member, made once when
/// the harness opens: (request frames, served in order).
pub fn setup_stream() -> Vec<Vec<u8>> {
    let create = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic())
            .with_num_partitions(3)
            .with_replication_factor(1)])
        .with_timeout_ms(1000);
    [
        frame(ApiKey::CreateTopics, 7, 1, &create),
        request(ApiKey::Produce, 9),
        request(ApiKey::OffsetCommit, 8),
        request(ApiKey::InitProducerId, 4),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Sequences worth a seed of their own: the same connection joining a group
/// and syncing, a transaction from producer id to commit.
pub fn sequences() -> Vec<(String, Vec<u8>)> {
    let seq = |name: &str, parts: &[(ApiKey, i16)]| {
        let mut stream = Vec::new();
        for &(key, version) in parts {
            stream.extend(request(key, version)?);
        }
        Some((name.to_string(), stream))
    };
    [
        seq(
            "seq-join-sync-heartbeat-leave",
            &[
                (ApiKey::JoinGroup, 9),
                (ApiKey::SyncGroup, 5),
                (ApiKey::Heartbeat, 4),
                (ApiKey::LeaveGroup, 5),
            ],
        ),
        seq(
            "seq-transaction",
            &[
                (ApiKey::InitProducerId, 5),
                (ApiKey::AddPartitionsToTxn, 3),
                (ApiKey::Produce, 9),
                (ApiKey::AddOffsetsToTxn, 3),
                (ApiKey::TxnOffsetCommit, 3),
                (ApiKey::EndTxn, 3),
            ],
        ),
        seq(
            "seq-create-produce-fetch-delete",
            &[
                (ApiKey::CreateTopics, 7),
                (ApiKey::Produce, 9),
                (ApiKey::Fetch, 12),
                (ApiKey::ListOffsets, 8),
                (ApiKey::DeleteRecords, 2),
                (ApiKey::DeleteTopics, 6),
            ],
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}
