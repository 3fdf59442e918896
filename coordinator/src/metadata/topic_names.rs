//! Kafka's rules for topic names and ids (`org.apache.kafka.common.internals.Topic`,
//! `Uuid.randomUuid`).

use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::controller::ControllerError;
use super::placement::RandomSource;

/// The metadata log's own topic, which clients may not create.
pub const CLUSTER_METADATA_TOPIC: &str = "__cluster_metadata";

/// Longest legal topic name.
pub const MAX_TOPIC_NAME_LENGTH: usize = 249;

/// Kafka's `Topic.validate`: non-empty, not "." or "..", at most 249
/// characters of ASCII letters, digits, '.', '_' and '-'.
pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    let reason = if name.is_empty() {
        Some("the empty string is not allowed".to_owned())
    } else if name == "." || name == ".." {
        Some(format!("'{name}' is not allowed"))
    } else if name.len() > MAX_TOPIC_NAME_LENGTH {
        Some(format!(
            "the length of '{name}' is longer than the max allowed length {MAX_TOPIC_NAME_LENGTH}"
        ))
    } else if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
    {
        Some(format!(
            "'{name}' contains one or more characters other than ASCII alphanumerics, '.', '_' and '-'"
        ))
    } else {
        None
    };
    match reason {
        Some(r) => Err(ControllerError::new(
            ResponseError::InvalidTopicException,
            format!("Topic name is invalid: {r}"),
        )),
        None => Ok(()),
    }
}

/// '.' and '_' collide in metric names, so Kafka treats names that differ
/// only there as the same.
pub(crate) fn unify_collision_chars(name: &str) -> String {
    name.replace('.', "_")
}

/// A random topic id as Kafka's `Uuid.randomUuid` makes them: version 4,
/// never the zero or metadata-topic id, never one whose base64 form starts
/// with '-'.
pub fn random_topic_id(random: &mut dyn RandomSource) -> Uuid {
    loop {
        let bits = (u128::from(random.next_u64()) << 64) | u128::from(random.next_u64());
        let id = uuid::Builder::from_random_bytes(bits.to_be_bytes()).into_uuid();
        let first = id.as_bytes()[0];
        if id.as_u128() > 1 && first >> 2 != 62 {
            return id;
        }
    }
}
