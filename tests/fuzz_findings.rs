//! What the fuzz targets (`fuzz/`) found, replayed against the real binary
//! so CI checks them without the fuzzer. Each test names the behaviour the
//! finding broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestBroker;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn topic(n: &str, partitions: i32) -> CreatableTopic {
    let mut t = CreatableTopic::default();
    t.name = name(n);
    t.num_partitions = partitions;
    t.replication_factor = 1;
    t
}

/// Found by the `request` target: a CreateTopics asking for 589,824
/// partitions kept the broker busy creating directories for minutes. Kafka
/// refuses a request whose topics add up to more than 10,000 partitions, all
/// of them with POLICY_VIOLATION, and creates none.
#[test]
fn refuses_more_than_ten_thousand_partitions_in_one_create_topics() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    let mut request = CreateTopicsRequest::default();
    request.topics = vec![topic("many-a", 5_000), topic("many-b", 5_001)];
    request.timeout_ms = 30_000;
    let response: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 7, &request);
    assert_eq!(response.topics.len(), 2);
    for t in &response.topics {
        assert_eq!(
            t.error_code,
            ResponseError::PolicyViolation.code(),
            "{:?}",
            t.name
        );
        assert_eq!(
            t.error_message.as_deref(),
            Some("Excessively large number of partitions per request.")
        );
    }

    // Neither topic exists.
    let mut metadata = MetadataRequest::default();
    metadata.allow_auto_topic_creation = false;
    metadata.topics = Some(
        ["many-a", "many-b"]
            .iter()
            .map(|n| {
                let mut t = MetadataRequestTopic::default();
                t.name = Some(name(n));
                t
            })
            .collect(),
    );
    let response: MetadataResponse = client.call(ApiKey::Metadata, 12, &metadata);
    for t in &response.topics {
        assert_eq!(
            t.error_code,
            ResponseError::UnknownTopicOrPartition.code(),
            "{:?}",
            t.name
        );
    }

    // At the limit, the request is served.
    request.topics = vec![topic("many-c", 9_999), topic("many-d", 1)];
    request.validate_only = true;
    let response: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 7, &request);
    for t in &response.topics {
        assert_eq!(t.error_code, 0, "{:?}", t.name);
    }
}
