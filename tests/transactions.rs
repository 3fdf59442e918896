//! Transactions over TCP: every transaction API at every advertised
//! version, markers and the last stable offset in read_committed fetches
//! and ListOffsets, refused produces, fencing errors by version, pending
//! transactional offsets, and state surviving a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::{produce_batch, Client, TestBroker};
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use wharf_protocol::batch::{build_batch_with, BatchOptions, NewRecord};

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn txn_id(s: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(s.to_string()))
}

fn create_topic(client: &mut Client, topic: &str) {
    let mut t = CreatableTopic::default();
    t.name = name(topic);
    t.num_partitions = 1;
    t.replication_factor = 1;
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t];
    let resp: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 5, &req);
    assert_eq!(resp.topics[0].error_code, 0);
}

fn init(client: &mut Client, id: &str, version: i16) -> (i16, i64, i16) {
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = Some(txn_id(id));
    req.transaction_timeout_ms = 60_000;
    req.producer_id = ProducerId(-1);
    req.producer_epoch = -1;
    let resp: InitProducerIdResponse = client.call(ApiKey::InitProducerId, version, &req);
    (resp.error_code, resp.producer_id.0, resp.producer_epoch)
}

/// AddPartitionsToTxn v3 for partition 0 of `topic`: the partition's code.
fn add_partition(client: &mut Client, id: &str, pid: i64, epoch: i16, topic: &str) -> i16 {
    let mut t = AddPartitionsToTxnTopic::default();
    t.name = name(topic);
    t.partitions = vec![0];
    let mut req = AddPartitionsToTxnRequest::default();
    req.v3_and_below_transactional_id = txn_id(id);
    req.v3_and_below_producer_id = ProducerId(pid);
    req.v3_and_below_producer_epoch = epoch;
    req.v3_and_below_topics = vec![t];
    let resp: AddPartitionsToTxnResponse = client.call(ApiKey::AddPartitionsToTxn, 3, &req);
    resp.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

fn end_txn(client: &mut Client, id: &str, pid: i64, epoch: i16, commit: bool, v: i16) -> i16 {
    let mut req = EndTxnRequest::default();
    req.transactional_id = txn_id(id);
    req.producer_id = ProducerId(pid);
    req.producer_epoch = epoch;
    req.committed = commit;
    let resp: EndTxnResponse = client.call(ApiKey::EndTxn, v, &req);
    resp.error_code
}

fn txn_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..n).map(|i| format!("t{seq}-{i}").into_bytes()).collect();
    let records: Vec<_> = values
        .iter()
        .map(|v| NewRecord {
            key: None,
            value: Some(v),
            timestamp: 1_700_000_000_000,
            headers: Vec::new(),
        })
        .collect();
    let options = BatchOptions {
        transactional: true,
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        ..BatchOptions::default()
    };
    build_batch_with(0, &records, &options).unwrap()
}

/// A Fetch v11 of partition 0 from offset 0.
fn fetch(client: &mut Client, topic: &str, isolation: i8) -> fetch_response::PartitionData {
    let mut p = FetchPartition::default();
    p.partition = 0;
    p.fetch_offset = 0;
    p.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    t.topic = name(topic);
    t.partitions = vec![p];
    let mut req = FetchRequest::default();
    req.max_wait_ms = 0;
    req.max_bytes = 1 << 20;
    req.isolation_level = isolation;
    req.topics = vec![t];
    let resp: FetchResponse = client.call(ApiKey::Fetch, 11, &req);
    resp.responses[0].partitions[0].clone()
}

fn batch_count(records: &Option<Bytes>) -> usize {
    wharf_protocol::batch::batches(records.as_deref().unwrap_or_default()).count()
}

fn latest(client: &mut Client, topic: &str, isolation: i8) -> i64 {
    let mut p = ListOffsetsPartition::default();
    p.partition_index = 0;
    p.timestamp = -1;
    let mut t = ListOffsetsTopic::default();
    t.name = name(topic);
    t.partitions = vec![p];
    let mut req = ListOffsetsRequest::default();
    req.isolation_level = isolation;
    req.topics = vec![t];
    let resp: ListOffsetsResponse = client.call(ApiKey::ListOffsets, 5, &req);
    resp.topics[0].partitions[0].offset
}

fn describe(client: &mut Client, id: &str) -> describe_transactions_response::TransactionState {
    let mut req = DescribeTransactionsRequest::default();
    req.transactional_ids = vec![txn_id(id)];
    let resp: DescribeTransactionsResponse = client.call(ApiKey::DescribeTransactions, 0, &req);
    resp.transaction_states[0].clone()
}

#[test]
fn find_coordinator_answers_for_transactional_ids() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    for v in 1..=3 {
        let mut req = FindCoordinatorRequest::default();
        req.key = StrBytes::from_static_str("tx");
        req.key_type = 1;
        let resp: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, v, &req);
        assert_eq!(resp.error_code, 0, "v{v}");
        assert_eq!(resp.port, i32::from(broker.addr.port()));
    }
    for v in 4..=6 {
        let mut req = FindCoordinatorRequest::default();
        req.key_type = 1;
        req.coordinator_keys = vec![
            StrBytes::from_static_str("a"),
            StrBytes::from_static_str("b"),
        ];
        let resp: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, v, &req);
        assert_eq!(resp.coordinators.len(), 2, "v{v}");
        assert!(resp.coordinators.iter().all(|c| c.error_code == 0), "v{v}");
    }
}

#[test]
fn every_transaction_api_version_round_trips() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    create_topic(&mut client, "t");
    for v in 0..=5 {
        let (code, pid, epoch) = init(&mut client, &format!("init{v}"), v);
        assert_eq!((code, epoch), (0, 0), "InitProducerId v{v}");
        assert!(pid >= 0);
    }
    let (_, pid, epoch) = init(&mut client, "main", 4);
    for v in 0..=5 {
        let mut t = AddPartitionsToTxnTopic::default();
        t.name = name("t");
        t.partitions = vec![0];
        let mut req = AddPartitionsToTxnRequest::default();
        if v < 4 {
            req.v3_and_below_transactional_id = txn_id("main");
            req.v3_and_below_producer_id = ProducerId(pid);
            req.v3_and_below_producer_epoch = epoch;
            req.v3_and_below_topics = vec![t];
        } else {
            let mut tx = AddPartitionsToTxnTransaction::default();
            tx.transactional_id = txn_id("main");
            tx.producer_id = ProducerId(pid);
            tx.producer_epoch = epoch;
            tx.verify_only = v == 5;
            tx.topics = vec![t];
            req.transactions = vec![tx];
        }
        let resp: AddPartitionsToTxnResponse = client.call(ApiKey::AddPartitionsToTxn, v, &req);
        let results = if v < 4 {
            resp.results_by_topic_v3_and_below
        } else {
            resp.results_by_transaction[0].topic_results.clone()
        };
        assert_eq!(
            results[0].results_by_partition[0].partition_error_code, 0,
            "v{v}"
        );
    }
    for v in 0..=4 {
        let mut req = AddOffsetsToTxnRequest::default();
        req.transactional_id = txn_id("main");
        req.producer_id = ProducerId(pid);
        req.producer_epoch = epoch;
        req.group_id = GroupId(StrBytes::from_static_str("g"));
        let resp: AddOffsetsToTxnResponse = client.call(ApiKey::AddOffsetsToTxn, v, &req);
        assert_eq!(resp.error_code, 0, "AddOffsetsToTxn v{v}");
    }
    for v in 0..=5 {
        let mut p = TxnOffsetCommitRequestPartition::default();
        p.partition_index = 0;
        p.committed_offset = i64::from(v);
        p.committed_leader_epoch = -1;
        let mut t = TxnOffsetCommitRequestTopic::default();
        t.name = name("t");
        t.partitions = vec![p];
        let mut req = TxnOffsetCommitRequest::default();
        req.transactional_id = txn_id("main");
        req.group_id = GroupId(StrBytes::from_static_str("g"));
        req.producer_id = ProducerId(pid);
        req.producer_epoch = epoch;
        req.generation_id = -1;
        req.topics = vec![t];
        let resp: TxnOffsetCommitResponse = client.call(ApiKey::TxnOffsetCommit, v, &req);
        assert_eq!(
            resp.topics[0].partitions[0].error_code, 0,
            "TxnOffsetCommit v{v}"
        );
    }
    for v in 0..=2 {
        let mut req = ListTransactionsRequest::default();
        if v >= 1 {
            req.duration_filter = -1;
        }
        req.state_filters = vec![StrBytes::from_static_str("Ongoing")];
        let resp: ListTransactionsResponse = client.call(ApiKey::ListTransactions, v, &req);
        assert_eq!(resp.error_code, 0, "ListTransactions v{v}");
        let ids: Vec<_> = resp
            .transaction_states
            .iter()
            .map(|s| s.transactional_id.0.to_string())
            .collect();
        assert_eq!(ids, vec!["main".to_string()], "ListTransactions v{v}");
    }
    let d = describe(&mut client, "main");
    assert_eq!((d.error_code, &*d.transaction_state), (0, "Ongoing"));
    assert_eq!(d.topics.len(), 2, "t and __consumer_offsets");
    let mut req = DescribeProducersRequest::default();
    let mut t = TopicRequest::default();
    t.name = name("t");
    t.partition_indexes = vec![0];
    req.topics = vec![t];
    let resp: DescribeProducersResponse = client.call(ApiKey::DescribeProducers, 0, &req);
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    for v in 0..=4 {
        let code = end_txn(&mut client, "main", pid, epoch, true, v);
        assert_eq!(code, 0, "EndTxn v{v}");
    }
    let d = describe(&mut client, "main");
    assert_eq!(&*d.transaction_state, "CompleteCommit");
    let mut marker = WritableTxnMarker::default();
    marker.producer_id = ProducerId(pid);
    marker.producer_epoch = epoch;
    marker.transaction_result = false;
    let mut mt = WritableTxnMarkerTopic::default();
    mt.name = name("t");
    mt.partition_indexes = vec![0, 7];
    marker.topics = vec![mt];
    let mut req = WriteTxnMarkersRequest::default();
    req.markers = vec![marker];
    let resp: WriteTxnMarkersResponse = client.call(ApiKey::WriteTxnMarkers, 1, &req);
    let codes: Vec<i16> = resp.markers[0].topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(
        codes,
        vec![0, ResponseError::UnknownTopicOrPartition.code()]
    );
}

#[test]
fn read_committed_fetch_stops_at_the_open_transaction_and_lists_aborted_ones() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    create_topic(&mut client, "rc");
    let (_, pid, epoch) = init(&mut client, "rc-tx", 4);
    assert_eq!(add_partition(&mut client, "rc-tx", pid, epoch, "rc"), 0);
    assert_eq!(
        produce_batch(&mut client, "rc", 0, txn_batch(pid, epoch, 0, 2)),
        (0, 0)
    );

    let open = fetch(&mut client, "rc", 1);
    assert_eq!((open.high_watermark, open.last_stable_offset), (2, 0));
    assert_eq!(batch_count(&open.records), 0);
    assert_eq!(open.aborted_transactions.as_deref(), Some(&[][..]));
    let uncommitted = fetch(&mut client, "rc", 0);
    assert_eq!(batch_count(&uncommitted.records), 1);
    assert_eq!(uncommitted.aborted_transactions, None);
    assert_eq!(latest(&mut client, "rc", 1), 0);
    assert_eq!(latest(&mut client, "rc", 0), 2);
    let producers = describe_producers(&mut client, "rc");
    assert_eq!(producers.len(), 1);
    assert_eq!(producers[0].producer_id.0, pid);
    assert_eq!(producers[0].last_sequence, 1);
    assert_eq!(producers[0].current_txn_start_offset, 0);

    assert_eq!(end_txn(&mut client, "rc-tx", pid, epoch, false, 3), 0);
    let done = fetch(&mut client, "rc", 1);
    // Two records and the ABORT marker.
    assert_eq!((done.high_watermark, done.last_stable_offset), (3, 3));
    assert_eq!(
        batch_count(&done.records),
        2,
        "data batch and control batch"
    );
    let aborted = done.aborted_transactions.unwrap();
    assert_eq!(aborted.len(), 1);
    assert_eq!(
        (aborted[0].producer_id.0, aborted[0].first_offset),
        (pid, 0)
    );
    assert_eq!(latest(&mut client, "rc", 1), 3);
    assert_eq!(
        describe_producers(&mut client, "rc")[0].current_txn_start_offset,
        -1
    );
}

fn describe_producers(
    client: &mut Client,
    topic: &str,
) -> Vec<describe_producers_response::ProducerState> {
    let mut t = TopicRequest::default();
    t.name = name(topic);
    t.partition_indexes = vec![0];
    let mut req = DescribeProducersRequest::default();
    req.topics = vec![t];
    let resp: DescribeProducersResponse = client.call(ApiKey::DescribeProducers, 0, &req);
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    resp.topics[0].partitions[0].active_producers.clone()
}

#[test]
fn transactional_produce_needs_the_partition_in_the_transaction() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    create_topic(&mut client, "np");
    let (_, pid, epoch) = init(&mut client, "np-tx", 4);
    let (code, _) = produce_batch(&mut client, "np", 0, txn_batch(pid, epoch, 0, 1));
    assert_eq!(code, ResponseError::InvalidTxnState.code());
    let (code, _) = produce_batch(&mut client, "np", 0, txn_batch(pid + 1000, 0, 0, 1));
    assert_eq!(code, ResponseError::InvalidProducerIdMapping.code());
}

#[test]
fn new_init_fences_the_old_producer_with_the_error_of_each_version() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    create_topic(&mut client, "fe");
    let (_, pid, epoch) = init(&mut client, "fe-tx", 4);
    assert_eq!(add_partition(&mut client, "fe-tx", pid, epoch, "fe"), 0);
    assert_eq!(
        produce_batch(&mut client, "fe", 0, txn_batch(pid, epoch, 0, 1)),
        (0, 0)
    );
    let (code, pid2, epoch2) = init(&mut client, "fe-tx", 4);
    assert_eq!((code, pid2), (0, pid));
    assert_eq!(
        epoch2,
        epoch + 2,
        "one bump to abort, one for the new producer"
    );
    // The open transaction was aborted by the fencing.
    let f = fetch(&mut client, "fe", 1);
    assert_eq!(f.last_stable_offset, 2);
    assert_eq!(f.aborted_transactions.unwrap().len(), 1);
    assert_eq!(
        end_txn(&mut client, "fe-tx", pid, epoch, true, 1),
        ResponseError::InvalidProducerEpoch.code()
    );
    assert_eq!(
        end_txn(&mut client, "fe-tx", pid, epoch, true, 2),
        ResponseError::ProducerFenced.code()
    );
    let (code, _) = produce_batch(&mut client, "fe", 0, txn_batch(pid, epoch, 1, 1));
    assert_eq!(code, ResponseError::InvalidProducerEpoch.code());
}

#[test]
fn too_long_transaction_timeout_is_refused() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = Some(txn_id("long"));
    req.transaction_timeout_ms = 900_001;
    let resp: InitProducerIdResponse = client.call(ApiKey::InitProducerId, 4, &req);
    assert_eq!(
        resp.error_code,
        ResponseError::InvalidTransactionTimeout.code()
    );
}

#[test]
fn require_stable_offset_fetch_sees_pending_offsets_as_unstable_until_commit() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    create_topic(&mut client, "st");
    let (_, pid, epoch) = init(&mut client, "st-tx", 4);
    let mut req = AddOffsetsToTxnRequest::default();
    req.transactional_id = txn_id("st-tx");
    req.producer_id = ProducerId(pid);
    req.producer_epoch = epoch;
    req.group_id = GroupId(StrBytes::from_static_str("sg"));
    let resp: AddOffsetsToTxnResponse = client.call(ApiKey::AddOffsetsToTxn, 3, &req);
    assert_eq!(resp.error_code, 0);
    let mut p = TxnOffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = 42;
    p.committed_leader_epoch = -1;
    let mut t = TxnOffsetCommitRequestTopic::default();
    t.name = name("st");
    t.partitions = vec![p];
    let mut req = TxnOffsetCommitRequest::default();
    req.transactional_id = txn_id("st-tx");
    req.group_id = GroupId(StrBytes::from_static_str("sg"));
    req.producer_id = ProducerId(pid);
    req.producer_epoch = epoch;
    req.generation_id = -1;
    req.topics = vec![t];
    let resp: TxnOffsetCommitResponse = client.call(ApiKey::TxnOffsetCommit, 3, &req);
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);

    let fetch_offset = |client: &mut Client, stable: bool| {
        let mut t = OffsetFetchRequestTopic::default();
        t.name = name("st");
        t.partition_indexes = vec![0];
        let mut req = OffsetFetchRequest::default();
        req.group_id = GroupId(StrBytes::from_static_str("sg"));
        req.topics = Some(vec![t]);
        req.require_stable = stable;
        let resp: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 7, &req);
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.committed_offset)
    };
    assert_eq!(
        fetch_offset(&mut client, true),
        (ResponseError::UnstableOffsetCommit.code(), -1)
    );
    assert_eq!(fetch_offset(&mut client, false), (0, -1));
    assert_eq!(end_txn(&mut client, "st-tx", pid, epoch, true, 3), 0);
    assert_eq!(fetch_offset(&mut client, true), (0, 42));
}

#[test]
fn transactions_and_aborted_ranges_survive_a_restart() {
    let mut broker = TestBroker::start();
    let mut client = broker.client();
    create_topic(&mut client, "rs");
    let (_, pid, epoch) = init(&mut client, "rs-tx", 4);
    assert_eq!(add_partition(&mut client, "rs-tx", pid, epoch, "rs"), 0);
    assert_eq!(
        produce_batch(&mut client, "rs", 0, txn_batch(pid, epoch, 0, 2)),
        (0, 0)
    );
    assert_eq!(end_txn(&mut client, "rs-tx", pid, epoch, false, 3), 0);
    assert_eq!(add_partition(&mut client, "rs-tx", pid, epoch, "rs"), 0);
    assert_eq!(
        produce_batch(&mut client, "rs", 0, txn_batch(pid, epoch, 2, 1)),
        (0, 3)
    );
    // The abort is in the segment's .txnindex: one 34-byte entry.
    let index = broker
        .dir
        .path()
        .join("rs-0")
        .join("00000000000000000000.txnindex");
    let bytes = std::fs::read(&index).unwrap();
    assert_eq!(bytes.len(), 34);
    assert_eq!(&bytes[2..10], &pid.to_be_bytes());
    // A lost index is rebuilt by recovery (the broker never reads it while
    // running, so losing it now is as losing it while down).
    std::fs::remove_file(&index).unwrap();
    drop(client);
    broker.restart(false);
    let mut client = broker.client();
    // The open transaction still holds the stable offset; the aborted one
    // is still listed.
    let f = fetch(&mut client, "rs", 1);
    assert_eq!((f.high_watermark, f.last_stable_offset), (4, 3));
    let aborted = f.aborted_transactions.unwrap();
    assert_eq!((aborted.len(), aborted[0].first_offset), (1, 0));
    // Answered, so recovery is done: the index is back.
    assert_eq!(std::fs::read(&index).unwrap(), bytes);
    let d = describe(&mut client, "rs-tx");
    assert_eq!((&*d.transaction_state, d.producer_id.0), ("Ongoing", pid));
    assert_eq!(end_txn(&mut client, "rs-tx", pid, epoch, true, 3), 0);
    assert_eq!(fetch(&mut client, "rs", 1).last_stable_offset, 5);
}

#[test]
fn broker_aborts_a_transaction_open_past_its_timeout() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    create_topic(&mut client, "to");
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = Some(txn_id("to-tx"));
    req.transaction_timeout_ms = 300;
    req.producer_id = ProducerId(-1);
    req.producer_epoch = -1;
    let resp: InitProducerIdResponse = client.call(ApiKey::InitProducerId, 4, &req);
    let (pid, epoch) = (resp.producer_id.0, resp.producer_epoch);
    assert_eq!(add_partition(&mut client, "to-tx", pid, epoch, "to"), 0);
    assert_eq!(
        produce_batch(&mut client, "to", 0, txn_batch(pid, epoch, 0, 1)),
        (0, 0)
    );
    assert_eq!(fetch(&mut client, "to", 1).last_stable_offset, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let d = describe(&mut client, "to-tx");
        if &*d.transaction_state == "CompleteAbort" {
            assert_eq!(d.producer_epoch, epoch + 1, "the abort bumps the epoch");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still {}",
            &*d.transaction_state
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let f = fetch(&mut client, "to", 1);
    assert_eq!(f.last_stable_offset, 2);
    assert_eq!(f.aborted_transactions.unwrap().len(), 1);
    assert_eq!(
        end_txn(&mut client, "to-tx", pid, epoch, true, 3),
        ResponseError::ProducerFenced.code()
    );
}
