//! `wharf-client` against the real binary: version negotiation, typed calls,
//! and what it reports when the peer misbehaves or is gone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::TestBroker;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use wharf_client::{ClientError, Connection, ConnectionOptions};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn negotiates_versions_and_calls_typed_requests() {
    let broker = TestBroker::start();
    runtime().block_on(async {
        let addr = broker.addr.to_string();
        let mut conn = Connection::connect(&addr, ConnectionOptions::default())
            .await
            .unwrap();
        let (min, max) = conn.versions().range(ApiKey::Metadata as i16).unwrap();
        assert!(min <= 1 && max >= 12, "{min}-{max}");
        let mut topic = CreatableTopic::default();
        topic.name = TopicName(StrBytes::from_static_str("via-client"));
        topic.num_partitions = 3;
        topic.replication_factor = 1;
        let mut create = CreateTopicsRequest::default();
        create.topics = vec![topic];
        create.timeout_ms = 5000;
        let created = conn.call(&create).await.unwrap();
        assert_eq!(created.topics[0].error_code, 0);
        let mut all = MetadataRequest::default();
        all.topics = None;
        let metadata = conn.call(&all).await.unwrap();
        let found = metadata
            .topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("via-client"))
            .unwrap();
        assert_eq!(found.partitions.len(), 3);
    });
}

#[test]
fn a_peer_that_is_gone_is_a_retriable_connect_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    runtime().block_on(async {
        let err = Connection::connect(&format!("127.0.0.1:{port}"), ConnectionOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Connect { .. }), "{err}");
        assert!(err.is_retriable());
    });
}

#[test]
fn a_silent_peer_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    runtime().block_on(async {
        let options = ConnectionOptions {
            request_timeout: Duration::from_millis(200),
            ..ConnectionOptions::default()
        };
        let err = Connection::connect(&addr, options).await.unwrap_err();
        assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    });
    drop(listener);
}
