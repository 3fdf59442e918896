//! Every response the broker produces must be one well-formed frame that a
//! client decodes: the size prefix matches, the header echoes the
//! correlation id, and the body decodes with `kafka-protocol` at the
//! request's version with no byte left over.

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Decodable;
use wharf::registry;
use wharf::server::dispatch::{response_head, Dispatched};
use wharf_protocol::frame::FrameDecoder;
use wharf_protocol::header::response_header_version;

/// UNSUPPORTED_VERSION.
const UNSUPPORTED_VERSION: i16 = 35;

/// Panics (a finding) unless `done`'s response is well-formed.
pub fn check_response(done: &Dispatched) {
    let (key, version) = (done.api_key, done.api_version);
    let Some(body) = &done.body else {
        // Only a Produce with acks=0 goes unanswered.
        assert_eq!(key, ApiKey::Produce, "{key:?} v{version} sent no response");
        return;
    };
    let mut wire = response_head(key, version, done.correlation_id, body.len())
        .unwrap_or_else(|e| panic!("{key:?} v{version}: response header: {e}"));
    for chunk in body.chunks() {
        wire.extend_from_slice(chunk);
    }
    let mut frame = FrameDecoder::new(usize::MAX)
        .decode(&mut wire)
        .expect("a valid size prefix")
        .expect("the size prefix covers the response");
    assert!(wire.is_empty(), "{key:?} v{version}: bytes past the frame");

    let header = ResponseHeader::decode(&mut frame, response_header_version(key, version))
        .unwrap_or_else(|e| panic!("{key:?} v{version}: response header does not decode: {e}"));
    assert_eq!(header.correlation_id, done.correlation_id);

    let served = registry::lookup(key).is_some_and(|api| api.supports(version));
    if key == ApiKey::ApiVersions && !served {
        let answer = ApiVersionsResponse::decode(&mut frame, 0)
            .unwrap_or_else(|e| panic!("ApiVersions v0 fallback does not decode: {e}"));
        assert_eq!(answer.error_code, UNSUPPORTED_VERSION);
    } else if key == ApiKey::Produce && version < 3 {
        legacy_produce_response(&mut frame, version);
    } else {
        ResponseKind::decode(key, &mut frame, version)
            .unwrap_or_else(|e| panic!("{key:?} v{version} response does not decode: {e:#}"));
    }
    assert!(
        frame.is_empty(),
        "{key:?} v{version} response: {} bytes after the body",
        frame.len()
    );
}

/// Produce v0-v2 responses (which `kafka-protocol` does not decode):
/// [topic string, [partition i32, error i16, base_offset i64,
/// (v2+) log_append_time i64]], (v1+) throttle_time i32. Every partition
/// is refused with UNSUPPORTED_VERSION.
fn legacy_produce_response(body: &mut Bytes, version: i16) {
    let need = |body: &mut Bytes, n: usize| {
        assert!(
            body.remaining() >= n,
            "Produce v{version} response is short"
        );
    };
    need(body, 4);
    let topics = body.get_i32();
    assert!(topics >= 0);
    for _ in 0..topics {
        need(body, 2);
        let len = usize::try_from(body.get_i16()).expect("topic name not null");
        need(body, len);
        body.advance(len);
        need(body, 4);
        let partitions = body.get_i32();
        assert!(partitions >= 0);
        for _ in 0..partitions {
            need(body, 14);
            body.advance(4);
            assert_eq!(body.get_i16(), UNSUPPORTED_VERSION);
            body.advance(8);
            if version >= 2 {
                need(body, 8);
                body.advance(8);
            }
        }
    }
    if version >= 1 {
        need(body, 4);
        body.advance(4);
    }
}
