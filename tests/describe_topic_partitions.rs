//! DescribeTopicPartitions (KIP-966) over TCP: topics sorted by name,
//! pages of at most the asked-for partitions with a cursor to the next,
//! unknown topics and bad cursors answered with Kafka's errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{create_topic, topic_name, Client, TestBroker};
use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
use kafka_protocol::messages::{
    ApiKey, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
};
use kafka_protocol::ResponseError;

fn describe(
    client: &mut Client,
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> DescribeTopicPartitionsResponse {
    let mut req = DescribeTopicPartitionsRequest::default();
    req.topics = topics
        .iter()
        .map(|t| {
            let mut r = TopicRequest::default();
            r.name = topic_name(t);
            r
        })
        .collect();
    req.response_partition_limit = limit;
    req.cursor = cursor.map(|(t, p)| {
        let mut c = Cursor::default();
        c.topic_name = topic_name(t);
        c.partition_index = p;
        c
    });
    client.call(ApiKey::DescribeTopicPartitions, 0, &req)
}

/// (topic, error, partitions) of each answered topic, and the cursor.
#[allow(clippy::type_complexity)]
fn summary(
    r: &DescribeTopicPartitionsResponse,
) -> (Vec<(String, i16, Vec<i32>)>, Option<(String, i32)>) {
    let topics = r
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().unwrap().0.to_string(),
                t.error_code,
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let cursor = r
        .next_cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    (topics, cursor)
}

fn s(x: &str) -> String {
    x.to_string()
}

#[test]
fn pages_through_topics_sorted_by_name() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    for (name, partitions) in [("dtp-c", 1), ("dtp-a", 3), ("dtp-b", 2)] {
        assert_eq!(
            create_topic(&mut client, name, partitions).topics[0].error_code,
            0
        );
    }

    // A page cut inside a topic names its next partition.
    let page = describe(&mut client, &["dtp-c", "dtp-b", "dtp-a"], 4, None);
    assert_eq!(
        summary(&page),
        (
            vec![(s("dtp-a"), 0, vec![0, 1, 2]), (s("dtp-b"), 0, vec![0])],
            Some((s("dtp-b"), 1))
        )
    );
    let a = &page.topics[0];
    assert!(!a.topic_id.is_nil() && !a.is_internal);
    let p = &a.partitions[0];
    assert_eq!(i32::from(p.leader_id), 1);
    assert!(p.leader_epoch >= 0);
    assert_eq!(
        p.replica_nodes
            .iter()
            .map(|&b| i32::from(b))
            .collect::<Vec<_>>(),
        vec![1]
    );
    assert_eq!(
        p.isr_nodes
            .iter()
            .map(|&b| i32::from(b))
            .collect::<Vec<_>>(),
        vec![1]
    );
    assert!(p.eligible_leader_replicas.is_none() && p.offline_replicas.is_empty());

    // The next page starts at the cursor and ends with the last topic.
    let next = describe(
        &mut client,
        &["dtp-c", "dtp-b", "dtp-a"],
        4,
        Some(("dtp-b", 1)),
    );
    assert_eq!(
        summary(&next),
        (
            vec![(s("dtp-b"), 0, vec![1]), (s("dtp-c"), 0, vec![0])],
            None
        )
    );

    // Full exactly at a topic's end: the cursor names the next topic.
    let exact = describe(&mut client, &["dtp-a", "dtp-b"], 3, None);
    assert_eq!(
        summary(&exact),
        (vec![(s("dtp-a"), 0, vec![0, 1, 2])], Some((s("dtp-b"), 0)))
    );

    // No topics named: all of them (here only these three).
    let all = describe(&mut client, &[], 2000, None);
    let names: Vec<String> = summary(&all).0.into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(names, vec![s("dtp-a"), s("dtp-b"), s("dtp-c")]);
    assert!(all.next_cursor.is_none());

    // A limit below one still makes progress, one partition a page.
    let one = describe(&mut client, &["dtp-a"], 0, None);
    assert_eq!(
        summary(&one),
        (vec![(s("dtp-a"), 0, vec![0])], Some((s("dtp-a"), 1)))
    );
}

#[test]
fn unknown_topics_and_bad_cursors_get_kafka_errors() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    assert_eq!(
        create_topic(&mut client, "known", 2).topics[0].error_code,
        0
    );

    let r = describe(&mut client, &["missing", "known"], 100, None);
    assert_eq!(
        summary(&r),
        (
            vec![
                (s("known"), 0, vec![0, 1]),
                (
                    s("missing"),
                    ResponseError::UnknownTopicOrPartition.code(),
                    vec![]
                ),
            ],
            None
        )
    );
    assert!(r.topics[1].topic_id.is_nil());

    let invalid = ResponseError::InvalidRequest.code();
    // The cursor's topic must be one of those asked for...
    let r = describe(&mut client, &["known"], 100, Some(("other", 0)));
    assert_eq!(summary(&r), (vec![(s("known"), invalid, vec![])], None));
    // ...and its partition not negative.
    let r = describe(&mut client, &["known"], 100, Some(("known", -1)));
    assert_eq!(summary(&r), (vec![(s("known"), invalid, vec![])], None));
    // The connection is still served.
    let r = describe(&mut client, &["known"], 100, Some(("known", 1)));
    assert_eq!(summary(&r), (vec![(s("known"), 0, vec![1])], None));
}
