//! Fetch sessions (KIP-227) over TCP: full fetches open sessions,
//! incremental ones carry only what changed, forgotten partitions leave the
//! session, and bad session ids and epochs get Kafka's errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{create_topic, produce_batch, topic_name, Client, TestBroker};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;
use uuid::Uuid;
use wharf_protocol::batch::build_batch;
use wharf_protocol::compression::Compression;

const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
const FETCH_SESSION_TOPIC_ID_ERROR: i16 = 106;

fn produce(client: &mut Client, topic: &str, partition: i32, value: &[u8]) {
    let records = build_batch(0, &[(None, Some(value), 1)], Compression::None).unwrap();
    let (code, _) = produce_batch(client, topic, partition, records);
    assert_eq!(code, 0);
}

fn topic_id(client: &mut Client, topic: &str) -> Uuid {
    let mut t = MetadataRequestTopic::default();
    t.name = Some(topic_name(topic));
    let mut req = MetadataRequest::default();
    req.topics = Some(vec![t]);
    let resp: MetadataResponse = client.call(ApiKey::Metadata, 12, &req);
    resp.topics[0].topic_id
}

/// How a request names its topic: by name (v12 and older) or id (v13+).
#[derive(Clone, Copy)]
enum By<'a> {
    Name(&'a str),
    Id(Uuid),
}

fn partitions(by: By<'_>, parts: &[(i32, i64)]) -> Vec<FetchTopic> {
    if parts.is_empty() {
        return Vec::new();
    }
    let mut t = FetchTopic::default();
    match by {
        By::Name(n) => t.topic = topic_name(n),
        By::Id(id) => t.topic_id = id,
    }
    t.partitions = parts
        .iter()
        .map(|(p, offset)| {
            let mut fp = FetchPartition::default();
            fp.partition = *p;
            fp.fetch_offset = *offset;
            fp.partition_max_bytes = 1 << 20;
            fp
        })
        .collect();
    vec![t]
}

struct Fetch<'a> {
    by: By<'a>,
    version: i16,
    session_id: i32,
    epoch: i32,
    parts: Vec<(i32, i64)>,
    forget: Vec<i32>,
    max_wait_ms: i32,
}

impl<'a> Fetch<'a> {
    fn new(by: By<'a>, version: i16, session_id: i32, epoch: i32) -> Self {
        Fetch {
            by,
            version,
            session_id,
            epoch,
            parts: Vec::new(),
            forget: Vec::new(),
            max_wait_ms: 0,
        }
    }

    fn parts(mut self, parts: &[(i32, i64)]) -> Self {
        self.parts = parts.to_vec();
        self
    }

    fn forget(mut self, parts: &[i32]) -> Self {
        self.forget = parts.to_vec();
        self
    }

    fn request(&self) -> FetchRequest {
        let mut req = FetchRequest::default();
        req.max_wait_ms = self.max_wait_ms;
        req.min_bytes = 1;
        req.max_bytes = 1 << 20;
        req.session_id = self.session_id;
        req.session_epoch = self.epoch;
        req.topics = partitions(self.by, &self.parts);
        if !self.forget.is_empty() {
            let mut f = ForgottenTopic::default();
            match self.by {
                By::Name(n) => f.topic = topic_name(n),
                By::Id(id) => f.topic_id = id,
            }
            f.partitions = self.forget.clone();
            req.forgotten_topics_data = vec![f];
        }
        req
    }

    fn call(&self, client: &mut Client) -> FetchResponse {
        client.call(ApiKey::Fetch, self.version, &self.request())
    }
}

/// (partition, record bytes) of every partition in the answer, sorted.
fn answered(resp: &FetchResponse) -> Vec<(i32, usize)> {
    let mut out: Vec<(i32, usize)> = resp
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| (p.partition_index, p.records.as_ref().map_or(0, |r| r.len())))
        .collect();
    out.sort_unstable();
    out
}

fn answered_partitions(resp: &FetchResponse) -> Vec<i32> {
    answered(resp).into_iter().map(|(p, _)| p).collect()
}

/// The whole life of a session, at one version: open, incremental answers
/// with only changes, an added partition, a forgotten one, and closing.
fn session_life(version: i16, by_id: bool) {
    let broker = TestBroker::start();
    let mut client = broker.client();
    let mut producer = broker.client();
    let topic = format!("s{version}");
    assert_eq!(create_topic(&mut client, &topic, 4).topics[0].error_code, 0);
    let id = topic_id(&mut client, &topic);
    let by = if by_id { By::Id(id) } else { By::Name(&topic) };
    produce(&mut producer, &topic, 0, b"first");

    // A full fetch opens a session and answers every partition.
    let resp = Fetch::new(by, version, 0, 0)
        .parts(&[(0, 0), (1, 0), (2, 0)])
        .call(&mut client);
    assert_eq!(resp.error_code, 0);
    let session = resp.session_id;
    assert!(session > 0, "no session opened: {resp:?}");
    let first = answered(&resp);
    assert_eq!(
        first.iter().map(|(p, _)| *p).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(first[0].1 > 0 && first[1].1 == 0 && first[2].1 == 0);
    if by_id {
        assert_eq!(resp.responses[0].topic_id, id);
    } else {
        assert_eq!(resp.responses[0].topic.0.as_str(), topic);
    }

    // Partition 0 moves past its record; nothing else changed: an empty
    // answer, same session.
    let resp = Fetch::new(by, version, session, 1)
        .parts(&[(0, 1)])
        .call(&mut client);
    assert_eq!((resp.error_code, resp.session_id), (0, session));
    assert_eq!(answered(&resp), vec![]);

    // A record on partition 2, which the request does not name: the
    // session remembers it, and it alone is answered, with its record.
    produce(&mut producer, &topic, 2, b"second");
    let resp = Fetch::new(by, version, session, 2).call(&mut client);
    assert_eq!((resp.error_code, resp.session_id), (0, session));
    let got = answered(&resp);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, 2);
    assert!(got[0].1 > 0);

    // Partition 3 is added: answered once (new to the session), then
    // partition 2 moves on.
    let resp = Fetch::new(by, version, session, 3)
        .parts(&[(3, 0), (2, 1)])
        .call(&mut client);
    assert_eq!(answered_partitions(&resp), vec![3]);

    // Partition 1 is forgotten: a record there is no longer answered,
    // while one on partition 0 still is.
    let resp = Fetch::new(by, version, session, 4)
        .forget(&[1])
        .call(&mut client);
    assert_eq!((resp.error_code, answered(&resp)), (0, vec![]));
    produce(&mut producer, &topic, 1, b"forgotten");
    produce(&mut producer, &topic, 0, b"remembered");
    let resp = Fetch::new(by, version, session, 5).call(&mut client);
    assert_eq!(answered_partitions(&resp), vec![0]);

    // Epoch -1 closes it: a sessionless full answer, and the session is gone.
    let resp = Fetch::new(by, version, session, -1)
        .parts(&[(1, 0)])
        .call(&mut client);
    assert_eq!((resp.error_code, resp.session_id), (0, 0));
    assert_eq!(answered_partitions(&resp), vec![1]);
    let resp = Fetch::new(by, version, session, 6).call(&mut client);
    assert_eq!(resp.error_code, FETCH_SESSION_ID_NOT_FOUND);
    assert_eq!(resp.session_id, 0);
    assert!(resp.responses.is_empty());
}

#[test]
fn session_by_topic_name_answers_only_changes() {
    session_life(12, false);
}

#[test]
fn session_by_topic_id_answers_only_changes() {
    session_life(17, true);
}

#[test]
fn session_ids_and_epochs_are_checked() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    assert_eq!(create_topic(&mut client, "e", 2).topics[0].error_code, 0);
    let by = By::Name("e");
    let resp = Fetch::new(by, 12, 0, 0)
        .parts(&[(0, 0), (1, 0)])
        .call(&mut client);
    let session = resp.session_id;
    assert!(session > 0);

    let refused = |resp: &FetchResponse, code: i16| {
        assert_eq!(resp.error_code, code, "{resp:?}");
        assert_eq!(resp.session_id, 0);
        assert!(resp.responses.is_empty());
    };
    // An unknown session id.
    let other = if session == i32::MAX { 1 } else { session + 1 };
    refused(
        &Fetch::new(by, 12, other, 1).call(&mut client),
        FETCH_SESSION_ID_NOT_FOUND,
    );
    // An incremental epoch with no session id.
    refused(
        &Fetch::new(by, 12, 0, 1).parts(&[(0, 0)]).call(&mut client),
        FETCH_SESSION_ID_NOT_FOUND,
    );
    // The wrong epoch, ahead and behind.
    refused(
        &Fetch::new(by, 12, session, 2).call(&mut client),
        INVALID_FETCH_SESSION_EPOCH,
    );
    refused(
        &Fetch::new(by, 12, session, 7).call(&mut client),
        INVALID_FETCH_SESSION_EPOCH,
    );
    // Refusals do not move the session: epoch 1 is still the one.
    let resp = Fetch::new(by, 12, session, 1).call(&mut client);
    assert_eq!((resp.error_code, resp.session_id), (0, session));
    // A replay of epoch 1 is now the wrong epoch.
    refused(
        &Fetch::new(by, 12, session, 1).call(&mut client),
        INVALID_FETCH_SESSION_EPOCH,
    );
    // A session opened by name continued with topic ids.
    refused(
        &Fetch::new(By::Id(Uuid::nil()), 13, session, 2).call(&mut client),
        FETCH_SESSION_TOPIC_ID_ERROR,
    );
    // A new full fetch naming the session closes it and opens another.
    let resp = Fetch::new(by, 12, session, 0)
        .parts(&[(0, 0)])
        .call(&mut client);
    assert!(resp.session_id > 0 && resp.session_id != session);
    refused(
        &Fetch::new(by, 12, session, 2).call(&mut client),
        FETCH_SESSION_ID_NOT_FOUND,
    );
    // The connection is still good.
    let resp = Fetch::new(by, 12, 0, -1).parts(&[(1, 0)]).call(&mut client);
    assert_eq!((resp.error_code, answered_partitions(&resp)), (0, vec![1]));
}

#[test]
fn sessionless_fetches_stay_full_and_open_nothing() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    assert_eq!(create_topic(&mut client, "n", 3).topics[0].error_code, 0);
    for version in [7, 12, 16] {
        let by_id = version >= 13;
        let id = topic_id(&mut client, "n");
        let by = if by_id { By::Id(id) } else { By::Name("n") };
        for _ in 0..2 {
            let resp = Fetch::new(by, version, 0, -1)
                .parts(&[(0, 0), (1, 0), (2, 0)])
                .call(&mut client);
            assert_eq!((resp.error_code, resp.session_id), (0, 0));
            assert_eq!(answered_partitions(&resp), vec![0, 1, 2]);
        }
    }
    // Fetch v4-v6 have no session fields at all.
    let resp = Fetch::new(By::Name("n"), 4, 0, -1)
        .parts(&[(0, 0)])
        .call(&mut client);
    assert_eq!(answered_partitions(&resp), vec![0]);
}

#[test]
fn incremental_long_poll_wakes_for_a_partition_it_does_not_name() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    assert_eq!(create_topic(&mut client, "w", 2).topics[0].error_code, 0);
    let by = By::Name("w");
    let resp = Fetch::new(by, 12, 0, 0)
        .parts(&[(0, 0), (1, 0)])
        .call(&mut client);
    let session = resp.session_id;
    assert!(session > 0);

    let addr = broker.addr;
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        let mut c = Client::connect(addr);
        produce(&mut c, "w", 1, b"late");
    });
    let started = Instant::now();
    let mut fetch = Fetch::new(by, 12, session, 1);
    fetch.max_wait_ms = 10_000;
    let resp = fetch.call(&mut client);
    let waited = started.elapsed();
    producer.join().unwrap();
    assert_eq!(resp.error_code, 0);
    let got = answered(&resp);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, 1);
    assert!(got[0].1 > 0);
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(8),
        "waited {waited:?}"
    );

    // With nothing new, an incremental long-poll waits out max_wait_ms and
    // answers nothing.
    let mut fetch = Fetch::new(by, 12, session, 2).parts(&[(1, 1)]);
    fetch.max_wait_ms = 300;
    let started = Instant::now();
    let resp = fetch.call(&mut client);
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!((resp.error_code, answered(&resp)), (0, vec![]));
}

#[test]
fn a_full_cache_answers_without_a_session() {
    let broker = TestBroker::start_with(&["--max-incremental-fetch-session-cache-slots", "1"]);
    let mut a = broker.client();
    let mut b = broker.client();
    assert_eq!(create_topic(&mut a, "c", 3).topics[0].error_code, 0);
    let by = By::Name("c");
    let first = Fetch::new(by, 12, 0, 0).parts(&[(0, 0)]).call(&mut a);
    assert!(first.session_id > 0);
    // The only slot is young and in use: even a larger session waits.
    let second = Fetch::new(by, 12, 0, 0)
        .parts(&[(0, 0), (1, 0), (2, 0)])
        .call(&mut b);
    assert_eq!((second.error_code, second.session_id), (0, 0));
    assert_eq!(answered_partitions(&second), vec![0, 1, 2]);
    // The first session still works.
    let resp = Fetch::new(by, 12, first.session_id, 1).call(&mut a);
    assert_eq!((resp.error_code, resp.session_id), (0, first.session_id));

    let none = TestBroker::start_with(&["--max-incremental-fetch-session-cache-slots", "0"]);
    let mut c = none.client();
    assert_eq!(create_topic(&mut c, "c", 1).topics[0].error_code, 0);
    let resp = Fetch::new(by, 12, 0, 0).parts(&[(0, 0)]).call(&mut c);
    assert_eq!((resp.error_code, resp.session_id), (0, 0));
    assert_eq!(answered_partitions(&resp), vec![0]);
}

#[test]
fn a_waiting_fetch_overtaken_by_the_next_epoch_gets_invalid_epoch() {
    let broker = TestBroker::start();
    let mut a = broker.client();
    let mut b = broker.client();
    assert_eq!(create_topic(&mut a, "d", 1).topics[0].error_code, 0);
    let by = By::Name("d");
    let session = Fetch::new(by, 12, 0, 0)
        .parts(&[(0, 0)])
        .call(&mut a)
        .session_id;
    assert!(session > 0);
    // Epoch 1 long-polls on one connection...
    let mut waiting = Fetch::new(by, 12, session, 1);
    waiting.max_wait_ms = 1500;
    let correlation = a.send(ApiKey::Fetch, 12, &waiting.request());
    std::thread::sleep(Duration::from_millis(300));
    // ...while epoch 2 (the session's next) is served on another.
    let resp = Fetch::new(by, 12, session, 2).call(&mut b);
    assert_eq!((resp.error_code, resp.session_id), (0, session));
    // The waiting one ends with INVALID_FETCH_SESSION_EPOCH and the
    // session's id, as Kafka answers a duplicate.
    let mut body = a.read_frame().unwrap();
    let header = ResponseHeader::decode(&mut body, 1).unwrap();
    assert_eq!(header.correlation_id, correlation);
    let resp = FetchResponse::decode(&mut body, 12).unwrap();
    assert_eq!(resp.error_code, INVALID_FETCH_SESSION_EPOCH);
    assert_eq!(resp.session_id, session);
    assert!(resp.responses.is_empty());
    // The session goes on at epoch 3.
    let resp = Fetch::new(by, 12, session, 3).call(&mut b);
    assert_eq!((resp.error_code, resp.session_id), (0, session));
}
