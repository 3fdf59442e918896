//! Creating topics, within the broker's partition limit.
//!
//! A creation runs in three steps, so that no broker-wide lock is held while
//! thousands of partition directories and files are made:
//!
//! 1. under the `creations` lock, briefly: the name is checked (not taken,
//!    not being created) and the topic's partitions are counted against
//!    `--max-partitions`; the name and the partitions are then *reserved*;
//! 2. with no lock held: the partition logs are created on disk;
//! 3. under the metadata lock, briefly: the creation is recorded durably
//!    and the topic enters the table, which ends the reservation.
//!
//! A failure at any step removes what step 2 made and drops the
//! reservation: nothing is half-created. Callers run this on a blocking
//! thread (`spawn_blocking`), never on an async worker.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError};

use uuid::Uuid;

use super::metadata_log::MetadataRecord;
use super::{Broker, BrokerError, NewTopic, Topic};

/// How long a caller needing an internal topic waits for another caller's
/// creation of it to finish.
const INTERNAL_CREATION_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Partition accounting, guarded by `Broker::creations`.
#[derive(Debug, Default)]
pub(super) struct Creations {
    /// Topics being created (step 2), with their partition counts.
    pending: HashMap<String, u64>,
    /// Partitions of the topics in the table.
    pub(super) hosted: u64,
}

/// A name and partitions held for a creation under way; released on drop
/// unless the topic made it into the table.
struct Reservation<'a> {
    broker: &'a Broker,
    name: String,
    /// Whether the topic made it into the table (and the reservation was
    /// ended there, under the lock): nothing left to release.
    ended: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.broker.lock_creations().pending.remove(&self.name);
        }
    }
}

impl Broker {
    /// Partitions the internal topics will take that are not created yet:
    /// room every user topic creation leaves free, so that consumer groups
    /// and transactions can always start.
    fn internal_room(&self) -> u64 {
        let mut room = 0u64;
        let internal = [
            (
                wharf_coordinator::OFFSETS_TOPIC,
                self.settings.groups.offsets_partitions,
            ),
            (
                wharf_coordinator::txn::TRANSACTION_STATE_TOPIC,
                self.settings.txns.state_partitions,
            ),
        ];
        for (name, partitions) in internal {
            if self.topic(name).is_none() {
                room = room.saturating_add(u64::try_from(partitions).unwrap_or(0));
            }
        }
        room
    }

    /// Checks a creation without performing it (CreateTopics
    /// validate_only): the name, partitions and configs, and the partition
    /// limit.
    pub fn validate_creation(&self, new: &NewTopic) -> Result<(), BrokerError> {
        self.validate_new_topic(new)?;
        let keep_free = self.keep_free_for(new);
        let creations = self.lock_creations();
        if creations.pending.contains_key(&new.name) {
            return Err(BrokerError::TopicAlreadyExists(new.name.clone()));
        }
        check_room(&creations, new, keep_free, self.settings.max_partitions)
    }

    /// Partitions a creation of `new` must leave free.
    fn keep_free_for(&self, new: &NewTopic) -> u64 {
        if super::groups::is_internal(&new.name) {
            0
        } else {
            self.internal_room()
        }
    }

    /// Step 1: checks `new` and reserves its name and partitions.
    fn reserve(&self, new: &NewTopic) -> Result<Reservation<'_>, BrokerError> {
        self.validate_new_topic(new)?;
        let keep_free = self.keep_free_for(new);
        let mut creations = self.lock_creations();
        if creations.pending.contains_key(&new.name) || self.topic(&new.name).is_some() {
            return Err(BrokerError::TopicAlreadyExists(new.name.clone()));
        }
        // Checked against the table by `validate_new_topic`; against the
        // creations under way here, under the same lock as the reservation.
        let key = super::topic::collision_key(&new.name);
        if let Some(other) = creations
            .pending
            .keys()
            .find(|p| super::topic::collision_key(p) == key)
        {
            return Err(BrokerError::InvalidTopic(format!(
                "topic name {:?} collides with topic {other:?}, being created ('.' and '_' are alike in metric names)",
                new.name
            )));
        }
        check_room(&creations, new, keep_free, self.settings.max_partitions)?;
        let partitions = u64::try_from(new.partitions).unwrap_or(0);
        creations.pending.insert(new.name.clone(), partitions);
        Ok(Reservation {
            broker: self,
            name: new.name.clone(),
            ended: false,
        })
    }

    /// Whether a topic named `name` is being created now.
    pub fn is_being_created(&self, name: &str) -> bool {
        self.lock_creations().pending.contains_key(name)
    }

    /// Creates a topic: reserves it, opens its partition logs with no lock
    /// held, then records it durably (see the module documentation). Slow
    /// for many partitions: call it from a blocking thread.
    pub fn create_topic(&self, new: NewTopic) -> Result<Arc<Topic>, BrokerError> {
        let mut reservation = self.reserve(&new)?;
        let id = Uuid::new_v4();
        let topic = match self.open_topic(id, &new) {
            Ok(t) => Arc::new(t),
            Err(e) => {
                self.remove_partition_dirs(&new.name, new.partitions);
                return Err(e);
            }
        };
        let record = MetadataRecord::TopicCreated {
            id,
            name: new.name.clone(),
            partitions: new.partitions,
            configs: new.configs.clone(),
        };
        {
            let mut metadata = self.metadata.lock().unwrap_or_else(PoisonError::into_inner);
            if let Err(e) = metadata.append(&record) {
                let path = metadata.path().to_path_buf();
                drop(metadata);
                drop(topic);
                self.remove_partition_dirs(&new.name, new.partitions);
                return Err(BrokerError::io("recording a new topic", &path, e));
            }
            let mut creations = self.lock_creations();
            self.topics
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(topic.clone());
            creations.pending.remove(&new.name);
            reservation.ended = true;
            creations.hosted = creations
                .hosted
                .saturating_add(u64::try_from(new.partitions).unwrap_or(0));
        }
        drop(reservation);
        // A deleted namesake's log start offsets may still be in the
        // checkpoint (its rewrite after the deletion failed): replace them.
        // Only a name the checkpoint may hold needs it: rewriting the whole
        // file on every creation made creating N topics cost O(N^2).
        if self.checkpoint_names(|names| names.contains(new.name.as_str())) {
            if let Err(e) = self.write_log_start_checkpoint() {
                tracing::error!("{e}");
            }
        }
        tracing::info!(topic = %new.name, %id, partitions = new.partitions, "topic created");
        Ok(topic)
    }

    /// An internal topic (`__consumer_offsets`, `__transaction_state`):
    /// compacted, with Kafka's 100 MiB segments, created with `partitions`
    /// the first time it is needed (by whichever caller gets there first).
    pub fn internal_topic(&self, name: &str, partitions: i32) -> Result<Arc<Topic>, BrokerError> {
        if let Some(topic) = self.topic(name) {
            return Ok(topic);
        }
        let new = NewTopic {
            name: name.to_string(),
            partitions,
            configs: BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("segment.bytes".to_string(), "104857600".to_string()),
            ]),
        };
        match self.create_topic(new) {
            Ok(topic) => Ok(topic),
            Err(BrokerError::TopicAlreadyExists(_)) => {
                // Another caller is creating it: wait for that to end.
                let deadline = std::time::Instant::now() + INTERNAL_CREATION_WAIT;
                while self.is_being_created(name) && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                self.topic(name)
                    .ok_or_else(|| BrokerError::UnknownTopic(name.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    pub(super) fn lock_creations(&self) -> std::sync::MutexGuard<'_, Creations> {
        self.creations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Refuses `new` when its partitions, with those hosted, those being
/// created and `keep_free`, would pass `max`.
fn check_room(
    creations: &Creations,
    new: &NewTopic,
    keep_free: u64,
    max: u64,
) -> Result<(), BrokerError> {
    let partitions = u64::try_from(new.partitions).unwrap_or(0);
    let pending: u64 = creations.pending.values().sum();
    let after = creations
        .hosted
        .saturating_add(pending)
        .saturating_add(partitions)
        .saturating_add(keep_free);
    if after <= max {
        return Ok(());
    }
    let mut message = format!(
        "topic {:?} with {partitions} partitions would exceed this broker's limit of {max} partitions (--max-partitions): it hosts {}",
        new.name, creations.hosted
    );
    if pending > 0 {
        message.push_str(&format!(", {pending} more are being created"));
    }
    if keep_free > 0 {
        message.push_str(&format!(
            ", and {keep_free} are kept for internal topics not created yet"
        ));
    }
    Err(BrokerError::PartitionLimit(message))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn topic(name: &str, partitions: i32) -> NewTopic {
        NewTopic {
            name: name.to_string(),
            partitions,
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn counts_hosted_pending_and_reserved_partitions_against_the_limit() {
        let mut creations = Creations {
            hosted: 60,
            ..Creations::default()
        };
        assert!(check_room(&creations, &topic("a", 40), 0, 100).is_ok());
        assert!(check_room(&creations, &topic("a", 41), 0, 100).is_err());
        creations.pending.insert("b".to_string(), 30);
        assert!(check_room(&creations, &topic("a", 10), 0, 100).is_ok());
        let err = check_room(&creations, &topic("a", 11), 0, 100).unwrap_err();
        assert!(matches!(err, BrokerError::PartitionLimit(_)));
        let message = err.to_string();
        assert!(message.contains("limit of 100"), "{message}");
        assert!(message.contains("30 more are being created"), "{message}");
        let err = check_room(&creations, &topic("a", 1), 10, 100).unwrap_err();
        assert!(err.to_string().contains("kept for internal topics"));
        assert_eq!(
            err.kafka_error(),
            kafka_protocol::ResponseError::PolicyViolation
        );
    }
}
