//! What a peer's ApiVersions answer allows.

use std::collections::HashMap;

use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::protocol::Request;

/// The version range the peer serves for each API key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiVersionRanges {
    ranges: HashMap<i16, (i16, i16)>,
}

impl ApiVersionRanges {
    pub fn from_response(response: &ApiVersionsResponse) -> Self {
        Self {
            ranges: response
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect(),
        }
    }

    /// The peer's range for `api_key`, if it serves it.
    pub fn range(&self, api_key: i16) -> Option<(i16, i16)> {
        self.ranges.get(&api_key).copied()
    }

    /// The highest version of `R` both sides speak.
    pub fn pick<R: Request>(&self) -> Option<i16> {
        let ours = R::VERSIONS;
        let (min, max) = self.range(R::KEY)?;
        let top = max.min(ours.max);
        (top >= min.max(ours.min)).then_some(top)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::{MetadataRequest, ProduceRequest};
    use kafka_protocol::protocol::Message;

    fn ranges(entries: &[(i16, i16, i16)]) -> ApiVersionRanges {
        let mut response = ApiVersionsResponse::default();
        response.api_keys = entries
            .iter()
            .map(|&(key, min, max)| {
                let mut v = ApiVersion::default();
                v.api_key = key;
                v.min_version = min;
                v.max_version = max;
                v
            })
            .collect();
        ApiVersionRanges::from_response(&response)
    }

    #[test]
    fn picks_the_highest_version_both_sides_speak() {
        let peer = ranges(&[(3, 0, 9), (0, 3, 99)]);
        assert_eq!(peer.pick::<MetadataRequest>(), Some(9));
        assert_eq!(
            peer.pick::<ProduceRequest>(),
            Some(ProduceRequest::VERSIONS.max)
        );
    }

    #[test]
    fn no_version_when_the_ranges_do_not_meet_or_the_api_is_missing() {
        let peer = ranges(&[(3, 50, 60)]);
        assert_eq!(peer.pick::<MetadataRequest>(), None);
        assert_eq!(peer.pick::<ProduceRequest>(), None);
    }
}
