//! Every API in the registry, at every version it advertises, answers a
//! well-formed request with a response the client codec decodes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{Client, TestBroker};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use wharf_protocol::batch::build_batch;
use wharf_protocol::compression::Compression;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn versions(client: &mut Client) -> Vec<(i16, i16, i16)> {
    let resp: ApiVersionsResponse =
        client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    resp.api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect()
}

fn range(all: &[(i16, i16, i16)], key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let (_, min, max) = all
        .iter()
        .find(|(k, _, _)| *k == key as i16)
        .copied()
        .unwrap();
    min..=max
}

fn topic_id(client: &mut Client, topic: &str) -> Uuid {
    let mut t = MetadataRequestTopic::default();
    t.name = Some(name(topic));
    let mut req = MetadataRequest::default();
    req.topics = Some(vec![t]);
    let resp: MetadataResponse = client.call(ApiKey::Metadata, 12, &req);
    resp.topics[0].topic_id
}

#[test]
fn every_advertised_version_round_trips() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    let all = versions(&mut client);

    for v in range(&all, ApiKey::ApiVersions) {
        let resp: ApiVersionsResponse =
            client.call(ApiKey::ApiVersions, v, &ApiVersionsRequest::default());
        assert_eq!(resp.error_code, 0, "ApiVersions v{v}");
        assert_eq!(resp.api_keys.len(), all.len());
    }

    for v in range(&all, ApiKey::CreateTopics) {
        let mut t = CreatableTopic::default();
        t.name = name(&format!("c{v}"));
        t.num_partitions = 2;
        t.replication_factor = 1;
        let mut req = CreateTopicsRequest::default();
        req.topics = vec![t];
        let resp: CreateTopicsResponse = client.call(ApiKey::CreateTopics, v, &req);
        assert_eq!(resp.topics[0].error_code, 0, "CreateTopics v{v}");
    }
    let id = topic_id(&mut client, "c7");

    for v in range(&all, ApiKey::Metadata) {
        let mut t = MetadataRequestTopic::default();
        t.name = Some(name("c7"));
        let mut req = MetadataRequest::default();
        req.topics = Some(vec![t]);
        req.include_topic_authorized_operations = v >= 8;
        req.include_cluster_authorized_operations = (8..=10).contains(&v);
        let resp: MetadataResponse = client.call(ApiKey::Metadata, v, &req);
        assert_eq!(resp.topics[0].error_code, 0, "Metadata v{v}");
        if v >= 8 {
            // No authorizer: every topic operation is allowed (READ=3, WRITE=4).
            let ops = resp.topics[0].topic_authorized_operations;
            assert_eq!(ops & 0b11000, 0b11000, "Metadata v{v} topic ops {ops:#x}");
        }
        if (8..=10).contains(&v) {
            // DESCRIBE=8 on the cluster.
            assert_ne!(
                resp.cluster_authorized_operations & (1 << 8),
                0,
                "Metadata v{v}"
            );
        }
        assert_eq!(resp.topics[0].partitions.len(), 2, "Metadata v{v}");
        assert_eq!(resp.brokers.len(), 1);
        if v >= 10 {
            assert_eq!(resp.topics[0].topic_id, id);
        }
    }

    let mut offset = 0;
    for v in range(&all, ApiKey::Produce).filter(|v| *v >= 3) {
        let records = build_batch(
            0,
            &[(None, Some(b"v"), 1000 + i64::from(v))],
            Compression::None,
        )
        .unwrap();
        let mut p = PartitionProduceData::default();
        p.index = 1;
        p.records = Some(Bytes::from(records));
        let mut t = TopicProduceData::default();
        if v >= 13 {
            t.topic_id = id;
        } else {
            t.name = name("c7");
        }
        t.partition_data = vec![p];
        let mut req = ProduceRequest::default();
        req.acks = 1;
        req.timeout_ms = 1000;
        req.topic_data = vec![t];
        let resp: ProduceResponse = client.call(ApiKey::Produce, v, &req);
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, offset), "Produce v{v}");
        offset += 1;
    }

    for v in range(&all, ApiKey::Fetch) {
        let mut p = FetchPartition::default();
        p.partition = 1;
        p.fetch_offset = 0;
        p.partition_max_bytes = 1 << 20;
        let mut t = FetchTopic::default();
        if v >= 13 {
            t.topic_id = id;
        } else {
            t.topic = name("c7");
        }
        t.partitions = vec![p];
        let mut req = FetchRequest::default();
        req.max_wait_ms = 0;
        req.max_bytes = 1 << 20;
        req.topics = vec![t];
        let resp: FetchResponse = client.call(ApiKey::Fetch, v, &req);
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "Fetch v{v}");
        assert_eq!(p.high_watermark, offset, "Fetch v{v}");
        assert!(!p.records.as_ref().unwrap().is_empty(), "Fetch v{v}");
    }

    for v in range(&all, ApiKey::ListOffsets) {
        let mut p = ListOffsetsPartition::default();
        p.partition_index = 1;
        p.timestamp = -1;
        let mut t = ListOffsetsTopic::default();
        t.name = name("c7");
        t.partitions = vec![p];
        let mut req = ListOffsetsRequest::default();
        req.topics = vec![t];
        let resp: ListOffsetsResponse = client.call(ApiKey::ListOffsets, v, &req);
        let p = &resp.topics[0].partitions[0];
        assert_eq!((p.error_code, p.offset), (0, offset), "ListOffsets v{v}");
    }

    for v in range(&all, ApiKey::DescribeCluster) {
        let resp: DescribeClusterResponse = client.call(
            ApiKey::DescribeCluster,
            v,
            &DescribeClusterRequest::default(),
        );
        assert_eq!(resp.error_code, 0, "DescribeCluster v{v}");
        assert_eq!(resp.brokers[0].port, i32::from(broker.addr.port()));
    }

    for v in range(&all, ApiKey::DeleteTopics) {
        let mut req = DeleteTopicsRequest::default();
        let topic = format!("c{}", v + 1);
        if v >= 6 {
            let mut state = DeleteTopicState::default();
            state.name = Some(name(&topic));
            req.topics = vec![state];
        } else {
            req.topic_names = vec![name(&topic)];
        }
        let resp: DeleteTopicsResponse = client.call(ApiKey::DeleteTopics, v, &req);
        assert_eq!(resp.responses[0].error_code, 0, "DeleteTopics v{v}");
    }
}
