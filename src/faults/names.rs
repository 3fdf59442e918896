//! Kafka's names for APIs and errors, and durations, as fault rules spell
//! them.

use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::ResponseError;

/// Highest API key and error code looked at when matching names.
const MAX_CODE: i16 = 200;

/// An API by its Kafka name (`Produce`, `offsetcommit`, `OFFSET_COMMIT`).
pub fn parse_api(name: &str) -> Option<ApiKey> {
    let wanted = squash(name);
    (0..=MAX_CODE)
        .filter_map(|k| ApiKey::try_from(k).ok())
        .find(|k| squash(&format!("{k:?}")) == wanted)
}

/// An error by its Kafka name (`NOT_LEADER_OR_FOLLOWER`) or code (`6`).
pub fn parse_error(name: &str) -> Option<ResponseError> {
    let name = name.trim();
    if let Ok(code) = name.parse::<i16>() {
        return ResponseError::try_from_code(code).filter(known);
    }
    let wanted = squash(name);
    (-1..=MAX_CODE)
        .filter_map(ResponseError::try_from_code)
        .filter(known)
        .find(|e| squash(&format!("{e:?}")) == wanted)
}

fn known(e: &ResponseError) -> bool {
    !matches!(e, ResponseError::Unknown(_))
}

/// Kafka's name for an error: `NotLeaderOrFollower` -> `NOT_LEADER_OR_FOLLOWER`.
pub fn error_name(error: ResponseError) -> String {
    let mut out = String::new();
    for (i, c) in format!("{error:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Lower case without separators, so that spellings compare equal.
fn squash(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// `500ms`, `2s`, `1m`, or a bare number of milliseconds; at most an hour.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let millis = match unit.trim() {
        "" | "ms" => n,
        "s" => n.checked_mul(1_000)?,
        "m" | "min" => n.checked_mul(60_000)?,
        _ => return None,
    };
    (millis <= 3_600_000).then(|| Duration::from_millis(millis))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn api_names_match_in_any_spelling() {
        assert_eq!(parse_api("Produce"), Some(ApiKey::Produce));
        assert_eq!(parse_api("offsetcommit"), Some(ApiKey::OffsetCommit));
        assert_eq!(parse_api("OFFSET_COMMIT"), Some(ApiKey::OffsetCommit));
        assert_eq!(parse_api("Producer"), None);
    }

    #[test]
    fn error_names_round_trip() {
        for name in [
            "NOT_LEADER_OR_FOLLOWER",
            "REQUEST_TIMED_OUT",
            "UNKNOWN_TOPIC_OR_PARTITION",
            "NOT_COORDINATOR",
            "COORDINATOR_LOAD_IN_PROGRESS",
            "TOPIC_AUTHORIZATION_FAILED",
        ] {
            let e = parse_error(name).unwrap();
            assert_eq!(error_name(e), name);
        }
        assert_eq!(parse_error("6"), Some(ResponseError::NotLeaderOrFollower));
        assert_eq!(parse_error("0"), None);
        assert_eq!(parse_error("31000"), None);
    }

    #[test]
    fn durations_take_ms_s_and_m() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("250"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), None);
        assert_eq!(parse_duration("ms"), None);
        assert_eq!(parse_duration("99999999999999999999s"), None);
    }
}
