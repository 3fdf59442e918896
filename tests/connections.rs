//! Hostile and careless connections: frames that claim more than they send,
//! clients that never read their answers, idle and half-sent connections,
//! too many sockets from one address. The broker's memory stays bounded,
//! such connections are closed, and a normal client is served throughout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{produce_batch, Client, TestBroker};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use wharf_protocol::batch::{self, build_batch};
use wharf_protocol::compression::Compression;

const MIB: u64 = 1024 * 1024;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn create_topic(client: &mut Client, topic: &str) {
    assert_eq!(create(client, topic), 0);
}

/// Creates `topic` unless it exists.
fn create_topic_if_missing(client: &mut Client, topic: &str) {
    let code = create(client, topic);
    assert!(code == 0 || code == 36, "CreateTopics error {code}");
}

/// The error code of creating `topic` with one partition.
fn create(client: &mut Client, topic: &str) -> i16 {
    let mut t = CreatableTopic::default();
    t.name = name(topic);
    t.num_partitions = 1;
    t.replication_factor = 1;
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![t];
    let resp: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 7, &req);
    resp.topics[0].error_code
}

/// A Fetch v12 of partition 0 of `topic` from `offset`, returning at once,
/// asking for up to 64 MiB.
fn fetch_request(topic: &str, offset: i64) -> FetchRequest {
    let mut p = FetchPartition::default();
    p.partition = 0;
    p.fetch_offset = offset;
    p.partition_max_bytes = 64 << 20;
    let mut t = FetchTopic::default();
    t.topic = name(topic);
    t.partitions = vec![p];
    let mut req = FetchRequest::default();
    req.max_wait_ms = 0;
    req.max_bytes = 64 << 20;
    req.topics = vec![t];
    req
}

/// A normal client on a fresh connection: creates `topic` if needed,
/// produces one record and reads it back.
fn round_trip(broker: &TestBroker, topic: &str) {
    let mut client = broker.client();
    create_topic_if_missing(&mut client, topic);
    let value = b"still served".to_vec();
    let records = build_batch(0, &[(None, Some(&value[..]), 1)], Compression::None).unwrap();
    let (error, offset) = produce_batch(&mut client, topic, 0, records);
    assert_eq!(error, 0);
    let resp: FetchResponse = client.call(ApiKey::Fetch, 12, &fetch_request(topic, offset));
    let partition = &resp.responses[0].partitions[0];
    assert_eq!(partition.error_code, 0);
    let records = partition.records.clone().unwrap();
    let (header, _) = batch::batches(&records).next().unwrap().unwrap();
    assert_eq!(header.base_offset(), offset);
}

/// True once the broker closes `stream` (end of stream or reset), reading and
/// discarding anything it sends; false if it is still open after `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

/// ApiVersions on `client`: true if answered.
fn api_versions(client: &mut Client) -> bool {
    client.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    client.read_frame().is_some()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

#[test]
fn frames_claiming_a_large_size_cost_memory_only_as_bytes_arrive() {
    let broker = TestBroker::start();
    round_trip(&broker, "live");
    let (rss_before, data_before) = (broker.rss_anon(), broker.vm_data());
    // Each claims a frame of 1 MiB + 1 byte and sends nothing more.
    let claim = ((1i32 << 20) + 1).to_be_bytes();
    let sockets: Vec<TcpStream> = (0..500)
        .map(|_| {
            let mut s = TcpStream::connect(broker.addr).unwrap();
            s.write_all(&claim).unwrap();
            s
        })
        .collect();
    // The broker has accepted and read them all by the time a later
    // connection is served; give their tasks a moment besides.
    round_trip(&broker, "live");
    std::thread::sleep(Duration::from_millis(500));
    round_trip(&broker, "live");
    let (rss_after, data_after) = (broker.rss_anon(), broker.vm_data());
    eprintln!(
        "500 connections each claiming 1 MiB + 1: RssAnon {:.1} -> {:.1} MiB, VmData {:.1} -> {:.1} MiB",
        mib(rss_before),
        mib(rss_after),
        mib(data_before),
        mib(data_after)
    );
    assert!(
        rss_after.saturating_sub(rss_before) < 64 * MIB,
        "RssAnon grew by {:.1} MiB",
        mib(rss_after - rss_before)
    );
    // Memory reserved but not yet touched is resident here only as pages
    // are written; where transparent huge pages are always on, touching the
    // first bytes of a reservation makes up to 2 MiB of it resident. So the
    // reservations themselves are bounded too.
    assert!(
        data_after.saturating_sub(data_before) < 128 * MIB,
        "VmData grew by {:.1} MiB",
        mib(data_after - data_before)
    );
    drop(sockets);
}

#[test]
fn clients_that_never_read_fetch_answers_pin_a_bounded_amount() {
    let broker = TestBroker::start_with(&["--queued-max-response-bytes", "16777216"]);
    let mut client = broker.client();
    create_topic(&mut client, "big");
    // 16 MiB in batches of 512 KiB, so each Fetch answer would be 16 MiB.
    let value = vec![b'x'; 512 * 1024];
    for _ in 0..32 {
        let records = build_batch(0, &[(None, Some(&value[..]), 1)], Compression::None).unwrap();
        assert_eq!(produce_batch(&mut client, "big", 0, records).0, 0);
    }
    round_trip(&broker, "live");
    let before = broker.rss_anon();
    // Each sends Fetches and never reads an answer.
    let mut readers = Vec::new();
    for _ in 0..20 {
        let mut c = broker.client();
        for _ in 0..3 {
            c.send(ApiKey::Fetch, 12, &fetch_request("big", 0));
        }
        readers.push(c);
    }
    std::thread::sleep(Duration::from_secs(2));
    // A normal consumer is still answered, and with its records.
    round_trip(&broker, "live");
    let after = broker.rss_anon();
    eprintln!(
        "RssAnon with 20 clients not reading 16 MiB Fetch answers: {:.1} -> {:.1} MiB",
        mib(before),
        mib(after)
    );
    assert!(
        after.saturating_sub(before) < 96 * MIB,
        "RssAnon grew by {:.1} MiB",
        mib(after - before)
    );
    // A consumer that reads gets the big topic too (if in smaller answers).
    let resp: FetchResponse = client.call(ApiKey::Fetch, 12, &fetch_request("big", 0));
    let records: Bytes = resp.responses[0].partitions[0].records.clone().unwrap();
    assert!(batch::batches(&records).count() >= 1);
    drop(readers);
}

#[test]
fn memory_for_unread_answers_does_not_grow_with_the_number_of_such_clients() {
    // 8 MiB, and as much again for first batches past it; batches of 6 MiB,
    // more than TCP's buffers take (about 4 MiB here) from a client that
    // does not read.
    let broker = TestBroker::start_with(&[
        "--queued-max-response-bytes",
        "8388608",
        "--message-max-bytes",
        "8388608",
    ]);
    let mut client = broker.client();
    create_topic(&mut client, "big");
    let value = vec![b'x'; 6 << 20];
    for _ in 0..4 {
        let records = build_batch(0, &[(None, Some(&value[..]), 1)], Compression::None).unwrap();
        assert_eq!(produce_batch(&mut client, "big", 0, records).0, 0);
    }
    round_trip(&broker, "live");
    let before = broker.rss_anon();
    // 40 clients not reading: one 6 MiB first batch each would be 240 MiB.
    let readers: Vec<Client> = (0..40)
        .map(|_| {
            let mut c = broker.client();
            c.send(ApiKey::Fetch, 12, &fetch_request("big", 0));
            c
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    // Still served: produces are answered, and Fetches too (without
    // records while the budget is spent).
    let mut fresh = broker.client();
    let value = b"still served".to_vec();
    let records = build_batch(0, &[(None, Some(&value[..]), 1)], Compression::None).unwrap();
    assert_eq!(produce_batch(&mut fresh, "big", 0, records).0, 0);
    let resp: FetchResponse = fresh.call(ApiKey::Fetch, 12, &fetch_request("big", 0));
    assert_eq!(resp.responses[0].partitions[0].error_code, 0);
    let after = broker.rss_anon();
    eprintln!(
        "RssAnon with 40 clients not reading Fetch answers of 6 MiB batches: {:.1} -> {:.1} MiB",
        mib(before),
        mib(after)
    );
    assert!(
        after.saturating_sub(before) < 48 * MIB,
        "RssAnon grew by {:.1} MiB",
        mib(after - before)
    );
    drop(readers);
}

#[test]
fn a_client_that_stops_reading_its_answer_is_closed_after_the_idle_time() {
    let broker = TestBroker::start_with(&["--connections-max-idle-ms", "1000"]);
    let mut client = broker.client();
    create_topic(&mut client, "big");
    let value = vec![b'x'; 512 * 1024];
    for _ in 0..32 {
        let records = build_batch(0, &[(None, Some(&value[..]), 1)], Compression::None).unwrap();
        assert_eq!(produce_batch(&mut client, "big", 0, records).0, 0);
    }
    // A 16 MiB answer, of which TCP's buffers hold only part, is never read.
    let mut stalled = broker.client();
    stalled.send(ApiKey::Fetch, 12, &fetch_request("big", 0));
    std::thread::sleep(Duration::from_secs(3));
    // The broker gave up in the middle of the answer: what arrives before
    // the end of the stream is less than the answer.
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    stalled
        .stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let closed = loop {
        match stalled.stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => received += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false
            }
            Err(_) => break true,
        }
    };
    eprintln!("a client that stopped reading got {received} bytes before the broker closed");
    assert!(closed, "the connection stayed open");
    assert!(received < 16 << 20, "the whole answer was written");
    round_trip(&broker, "live");
}

#[test]
fn request_bytes_budget_pauses_reading_rather_than_growing_memory() {
    let broker = TestBroker::start_with(&[
        "--queued-max-request-bytes",
        "16777216",
        "--max-request-size",
        "16777216",
    ]);
    round_trip(&broker, "live");
    let before = broker.rss_anon();
    // 16 clients each start a 16 MiB request and send 12 MiB of it: 192 MiB
    // if the broker read it all.
    let writers: Vec<_> = (0..16)
        .map(|_| {
            let addr = broker.addr;
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
                let mut frame = (16i32 << 20).to_be_bytes().to_vec();
                frame.resize(12 << 20, 0);
                // Blocks, then times out, once the broker stops reading.
                let _ = s.write_all(&frame);
                s
            })
        })
        .collect();
    let sockets: Vec<TcpStream> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    // Small requests still get through while the budget is spent.
    round_trip(&broker, "live");
    let after = broker.rss_anon();
    eprintln!(
        "RssAnon with 16 clients sending 12 MiB of 16 MiB requests: {:.1} -> {:.1} MiB",
        mib(before),
        mib(after)
    );
    assert!(
        after.saturating_sub(before) < 64 * MIB,
        "RssAnon grew by {:.1} MiB",
        mib(after - before)
    );
    drop(sockets);
}

#[test]
fn idle_connections_are_closed_and_active_ones_kept() {
    let broker = TestBroker::start_with(&["--connections-max-idle-ms", "1000"]);
    let mut idle = TcpStream::connect(broker.addr).unwrap();
    let mut active = broker.client();
    let started = Instant::now();
    // Busy for twice the idle time, one request every 300 ms.
    while started.elapsed() < Duration::from_millis(2500) {
        assert!(api_versions(&mut active), "an active connection was closed");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        closed_within(&mut idle, Duration::from_secs(10)),
        "an idle connection stayed open"
    );
    // Idle after its last answer: closed too.
    assert!(closed_within(&mut active.stream, Duration::from_secs(10)));
    round_trip(&broker, "live");
}

#[test]
fn half_sent_requests_are_closed_after_the_request_timeout() {
    let broker = TestBroker::start_with(&["--request-read-timeout-ms", "1000"]);
    // A size prefix and part of the frame it announces.
    let mut partial = TcpStream::connect(broker.addr).unwrap();
    partial.write_all(&100i32.to_be_bytes()).unwrap();
    partial.write_all(&[0u8; 10]).unwrap();
    // Half a size prefix.
    let mut half_prefix = TcpStream::connect(broker.addr).unwrap();
    half_prefix.write_all(&[0, 0]).unwrap();
    // Idle, without a started frame: the idle timeout (10 minutes) applies.
    let mut idle = TcpStream::connect(broker.addr).unwrap();
    assert!(closed_within(&mut partial, Duration::from_secs(10)));
    assert!(closed_within(&mut half_prefix, Duration::from_secs(10)));
    assert!(!closed_within(&mut idle, Duration::from_millis(500)));
    round_trip(&broker, "live");
}

#[test]
fn idle_sockets_do_not_lock_new_clients_out_past_max_connections() {
    let broker = TestBroker::start_with(&[
        "--max-connections",
        "100",
        "--connections-max-idle-ms",
        "1000",
    ]);
    // 150 sockets that never send anything, against room for 100.
    let idle: Vec<TcpStream> = (0..150)
        .map(|_| TcpStream::connect(broker.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // Waits in the backlog until the idle ones are closed, then is served.
    let mut late = broker.client();
    assert!(api_versions(&mut late), "a new client was locked out");
    round_trip(&broker, "live");
    drop(idle);
}

/// A client the broker serves, retrying for up to 10 s while connections
/// it has not yet seen closed still count against the per-address limit.
fn admitted_client(broker: &TestBroker) -> Client {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = broker.client();
        c.stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        if api_versions(&mut c) {
            return c;
        }
        assert!(Instant::now() < deadline, "no connection admitted");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn connections_past_the_per_ip_limit_are_refused() {
    let broker = TestBroker::start_with(&["--max-connections-per-ip", "5"]);
    // (Retrying: the harness's own probe that the broker is up may still
    // count for a moment.)
    let mut first: Vec<Client> = (0..5).map(|_| admitted_client(&broker)).collect();
    let mut excess = TcpStream::connect(broker.addr).unwrap();
    assert!(
        closed_within(&mut excess, Duration::from_secs(5)),
        "the sixth connection from one address was kept"
    );
    // After two leave, two more are accepted (once the broker has seen the
    // first two go).
    first.truncate(3);
    let mut admitted: Vec<Client> = (0..2).map(|_| admitted_client(&broker)).collect();
    // And the limit holds again.
    let mut excess = TcpStream::connect(broker.addr).unwrap();
    assert!(closed_within(&mut excess, Duration::from_secs(5)));
    for c in first.iter_mut().chain(admitted.iter_mut()) {
        assert!(api_versions(c));
    }
}
