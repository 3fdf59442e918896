//! Request and response codec costs on the broker's hot paths, so that a
//! regression shows in review (`cargo bench -p wharf-protocol`):
//!
//! - `produce request/decode`: framing, the request header and the Produce
//!   body of a request carrying one 16 KiB batch (16 records of 1 KiB).
//! - `produce request/validate`: full validation of that batch (CRC-32C and
//!   every record walked).
//! - `fetch response/encode`: a Fetch v12 response for 6 partitions of
//!   256 KiB of records each, as chunks that pass the records through
//!   uncopied, against kafka-protocol's own encoder, which copies them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, FetchResponse, ProduceRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use wharf_protocol::batch::{build_batch, validate};
use wharf_protocol::compression::Compression;
use wharf_protocol::fetch_response::encode_chunks;
use wharf_protocol::frame::FrameDecoder;
use wharf_protocol::header::decode_request_header;

const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;

fn batch_of(records: usize, size: usize) -> Vec<u8> {
    let value = vec![b'x'; size];
    let records: Vec<_> = (0..records)
        .map(|i| (None, Some(&value[..]), 1_700_000_000_000 + i as i64))
        .collect();
    build_batch(0, &records, Compression::None).unwrap()
}

fn produce_frame(batch: &[u8]) -> BytesMut {
    let mut header = RequestHeader::default();
    header.request_api_key = ApiKey::Produce as i16;
    header.request_api_version = PRODUCE_VERSION;
    header.correlation_id = 7;
    header.client_id = Some(StrBytes::from_static_str("bench"));
    let mut partition = PartitionProduceData::default();
    partition.index = 0;
    partition.records = Some(Bytes::copy_from_slice(batch));
    let mut topic = TopicProduceData::default();
    topic.name = TopicName(StrBytes::from_static_str("bench"));
    topic.partition_data = vec![partition];
    let mut request = ProduceRequest::default();
    request.acks = 1;
    request.timeout_ms = 30_000;
    request.topic_data = vec![topic];
    let header_version = ApiKey::Produce.request_header_version(PRODUCE_VERSION);
    let mut body = BytesMut::new();
    header.encode(&mut body, header_version).unwrap();
    request.encode(&mut body, PRODUCE_VERSION).unwrap();
    let mut frame = BytesMut::with_capacity(body.len() + 4);
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    frame
}

fn produce_request(c: &mut Criterion) {
    let batch = batch_of(16, 1024);
    let frame = produce_frame(&batch);
    let decoder = FrameDecoder::new(100 << 20);
    let mut group = c.benchmark_group("produce request");
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("decode", |b| {
        b.iter(|| {
            let mut buf = frame.clone();
            let mut body = decoder.decode(&mut buf).unwrap().unwrap();
            let parsed = decode_request_header(&mut body).unwrap();
            assert_eq!(parsed.header.correlation_id, 7);
            let request = ProduceRequest::decode(&mut body, PRODUCE_VERSION).unwrap();
            assert_eq!(request.topic_data.len(), 1);
            request
        })
    });
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("validate", |b| {
        b.iter(|| validate(&batch, 100 << 20).unwrap())
    });
    group.finish();
}

fn fetch_response(c: &mut Criterion) {
    let records = Bytes::from(batch_of(256, 1024));
    let mut topic = FetchableTopicResponse::default();
    topic.topic = TopicName(StrBytes::from_static_str("bench"));
    topic.partitions = (0..6)
        .map(|i| {
            let mut p = PartitionData::default();
            p.partition_index = i;
            p.high_watermark = 1_000_000;
            p.records = Some(records.clone());
            p
        })
        .collect();
    let mut response = FetchResponse::default();
    response.responses = vec![topic];
    let total = 6 * records.len() as u64;
    let mut group = c.benchmark_group("fetch response");
    group.throughput(Throughput::Bytes(total));
    group.bench_function("encode (chunks, records uncopied)", |b| {
        b.iter(|| encode_chunks(&response, FETCH_VERSION).unwrap())
    });
    group.bench_function("encode (kafka-protocol, records copied)", |b| {
        b.iter(|| {
            let mut out = BytesMut::with_capacity(response.compute_size(FETCH_VERSION).unwrap());
            response.encode(&mut out, FETCH_VERSION).unwrap();
            out
        })
    });
    group.finish();
}

criterion_group!(benches, produce_request, fetch_response);
criterion_main!(benches);
