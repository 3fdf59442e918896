//! Request and response headers.
//!
//! A request header's version depends on the API key and version it carries,
//! so the first four bytes are peeked before the rest is decoded. Responses to
//! ApiVersions always use header v0, whatever the request's version, so that
//! a client can read the answer before it knows which versions we speak.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("request is {0} bytes long, too short for a request header")]
    TooShort(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("malformed request header: {0}")]
    Malformed(String),
    #[error("could not encode a response header: {0}")]
    Encode(String),
}

/// A decoded request header plus the API it names.
#[derive(Debug, Clone)]
pub struct ParsedHeader {
    pub api_key: ApiKey,
    pub header: RequestHeader,
}

/// Reads the header off the front of a request frame, leaving `frame` at the
/// start of the body.
pub fn decode_request_header(frame: &mut Bytes) -> Result<ParsedHeader, HeaderError> {
    let prefix = frame
        .first_chunk::<4>()
        .ok_or(HeaderError::TooShort(frame.len()))?;
    let key = i16::from_be_bytes([prefix[0], prefix[1]]);
    let version = i16::from_be_bytes([prefix[2], prefix[3]]);
    let api_key = ApiKey::try_from(key).map_err(|()| HeaderError::UnknownApiKey(key))?;
    let header_version = request_header_version(api_key, version);
    let header = RequestHeader::decode(frame, header_version)
        .map_err(|e| HeaderError::Malformed(e.to_string()))?;
    Ok(ParsedHeader { api_key, header })
}

/// Header version of a request. Negative versions are treated as v0 bodies
/// with a v1 header; they are rejected by the registry afterwards.
pub fn request_header_version(api_key: ApiKey, version: i16) -> i16 {
    api_key.request_header_version(version.max(0))
}

/// Header version of a response. ApiVersions always answers with v0.
pub fn response_header_version(api_key: ApiKey, version: i16) -> i16 {
    if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(version.max(0))
    }
}

/// Appends an encoded response header to `out`.
pub fn encode_response_header(
    out: &mut BytesMut,
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
) -> Result<(), HeaderError> {
    let version = response_header_version(api_key, api_version);
    if version == 0 {
        // v0 is the correlation id alone; skip building a struct for it.
        out.put_i32(correlation_id);
        return Ok(());
    }
    let mut header = ResponseHeader::default();
    header.correlation_id = correlation_id;
    header
        .encode(out, version)
        .map_err(|e| HeaderError::Encode(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::StrBytes;

    fn encoded_request_header(key: ApiKey, version: i16, client_id: &str) -> Bytes {
        let mut h = RequestHeader::default();
        h.request_api_key = key as i16;
        h.request_api_version = version;
        h.correlation_id = 42;
        h.client_id = Some(StrBytes::from_string(client_id.to_string()));
        let mut out = BytesMut::new();
        h.encode(&mut out, key.request_header_version(version))
            .unwrap();
        out.put_slice(b"BODY");
        out.freeze()
    }

    #[test]
    fn decodes_flexible_and_classic_headers_leaving_the_body() {
        for (key, version) in [
            (ApiKey::Metadata, 1),
            (ApiKey::Metadata, 12),
            (ApiKey::ApiVersions, 3),
        ] {
            let mut frame = encoded_request_header(key, version, "kcat");
            let parsed = decode_request_header(&mut frame).unwrap();
            assert_eq!(parsed.api_key, key);
            assert_eq!(parsed.header.correlation_id, 42);
            assert_eq!(parsed.header.request_api_version, version);
            assert_eq!(parsed.header.client_id.as_deref(), Some("kcat"));
            assert_eq!(&frame[..], b"BODY");
        }
    }

    #[test]
    fn rejects_unknown_api_key_and_short_frames() {
        let mut frame = Bytes::from_static(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
        assert!(matches!(
            decode_request_header(&mut frame),
            Err(HeaderError::UnknownApiKey(0x7f00))
        ));
        let mut short = Bytes::from_static(&[0, 3]);
        assert!(matches!(
            decode_request_header(&mut short),
            Err(HeaderError::TooShort(2))
        ));
        // Metadata v1, correlation id, then a client id claiming 100 bytes.
        let mut truncated = Bytes::from_static(&[0, 3, 0, 1, 0, 0, 0, 1, 0, 100, b'x']);
        assert!(matches!(
            decode_request_header(&mut truncated),
            Err(HeaderError::Malformed(_))
        ));
    }

    #[test]
    fn api_versions_response_header_is_always_v0() {
        for version in [0, 3, 4, 99] {
            let mut out = BytesMut::new();
            encode_response_header(&mut out, ApiKey::ApiVersions, version, 7).unwrap();
            assert_eq!(&out[..], &7i32.to_be_bytes());
        }
        let mut out = BytesMut::new();
        encode_response_header(&mut out, ApiKey::Metadata, 12, 7).unwrap();
        // v1 header: correlation id plus an empty tagged-field section.
        assert_eq!(&out[..], &[0, 0, 0, 7, 0]);
    }
}
