//! ApiVersions: the versions of every API in the registry.
//!
//! A client that asks with a version newer than ours gets a v0-layout answer
//! carrying UNSUPPORTED_VERSION and the full list, so it can retry with a
//! version we know (the connection calls [`unsupported_version_response`]).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use wharf_coordinator::metadata::features;

use super::{HandlerResult, Request};
use crate::registry::APIS;

pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 4;

pub async fn handle(request: Request) -> HandlerResult {
    let body: ApiVersionsRequest = request.decode()?;
    if request.api_version >= 3 {
        tracing::debug!(
            client_software_name = %body.client_software_name.as_str(),
            client_software_version = %body.client_software_version.as_str(),
            "client identified itself"
        );
    }
    let mut response = ApiVersionsResponse::default();
    response.api_keys = supported_apis();
    if !super::consumer_group_heartbeat::consumer_protocol_on(&request.broker) {
        // group.version 0: the consumer protocol is off, as in Kafka.
        response.api_keys.retain(|a| {
            a.api_key != ApiKey::ConsumerGroupHeartbeat as i16
                && a.api_key != ApiKey::ConsumerGroupDescribe as i16
        });
    }
    if request.api_version >= 3 {
        add_features(&mut response, &request, request.api_version);
    }
    request.respond(&response)
}

/// The features this broker supports and the cluster's finalized levels
/// (v3+). Before v4, features whose minimum is 0 are left out: older
/// clients cannot read such a range (Kafka does the same, KAFKA-17492).
/// The epoch is the metadata offset the levels were read at.
fn add_features(response: &mut ApiVersionsResponse, request: &Request, version: i16) {
    let (image, epoch) = match request.broker.cluster() {
        Some(node) => {
            let offset = node.quorum().describe().high_watermark;
            (node.image(), i64::try_from(offset).unwrap_or(i64::MAX))
        }
        None => (Default::default(), -1),
    };
    response.supported_features = features::SUPPORTED
        .iter()
        .filter(|f| version >= 4 || f.min > 0)
        .map(|f| {
            let mut key = SupportedFeatureKey::default();
            key.name = StrBytes::from_static_str(f.name);
            key.min_version = f.min;
            key.max_version = f.max;
            key
        })
        .collect();
    response.finalized_features_epoch = epoch;
    response.finalized_features = features::finalized(&image)
        .into_iter()
        .map(|(name, level)| {
            let mut key = FinalizedFeatureKey::default();
            key.name = StrBytes::from_string(name);
            key.min_version_level = level;
            key.max_version_level = level;
            key
        })
        .collect();
}

fn supported_apis() -> Vec<ApiVersion> {
    APIS.iter()
        .map(|api| {
            let mut v = ApiVersion::default();
            v.api_key = api.key as i16;
            v.min_version = api.min_version;
            v.max_version = api.max_version;
            v
        })
        .collect()
}

/// The v0 ApiVersions body for a request whose version we do not know:
/// error_code, then the array of (api_key, min_version, max_version).
pub fn unsupported_version_response() -> Bytes {
    let apis = supported_apis();
    let mut out = BytesMut::with_capacity(6 + apis.len() * 6);
    out.put_i16(ResponseError::UnsupportedVersion.code());
    out.put_i32(i32::try_from(apis.len()).unwrap_or(i32::MAX));
    for api in apis {
        out.put_i16(api.api_key);
        out.put_i16(api.min_version);
        out.put_i16(api.max_version);
    }
    out.freeze()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Decodable;

    #[test]
    fn fallback_answer_decodes_as_v0_with_every_registered_api() {
        let mut body = unsupported_version_response();
        let decoded = ApiVersionsResponse::decode(&mut body, 0).unwrap();
        assert_eq!(decoded.error_code, ResponseError::UnsupportedVersion.code());
        assert_eq!(decoded.api_keys.len(), APIS.len());
        assert!(body.is_empty());
    }
}
