//! Creating, deleting and changing topics: checked here against this
//! broker's limits, decided by the active controller, and carried out by
//! every broker when the change reaches its metadata image (see `apply`).
//!
//! A creation is checked in two places: here, briefly under the
//! `creations` lock, for the name (not taken, not being created here) and
//! for `--max-partitions` (the topic's partitions are then *reserved* until
//! the controller answers); and by the controller, for everything that
//! depends on the cluster (names taken, brokers for the replicas). The
//! caller hears back once this broker has applied the new image, so its
//! next Metadata request sees the topic.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use kafka_protocol::ResponseError;
use uuid::Uuid;
use wharf_coordinator::metadata::topics::NewTopic as ControllerTopic;
use wharf_coordinator::metadata::{ControllerError, ImageSnapshot};

use super::{Broker, BrokerError, NewTopic, Topic};

/// How long a broker waits for a change the controller committed to reach
/// its own image before answering anyway.
const APPLY_WAIT: Duration = Duration::from_secs(30);

/// Partition accounting, guarded by `Broker::creations`.
#[derive(Debug, Default)]
pub(super) struct Creations {
    /// Topics being created, with their partition counts.
    pending: HashMap<String, u64>,
    /// Partitions this broker hosts.
    pub(super) hosted: u64,
}

/// A name and partitions held for a creation under way; released on drop.
struct Reservation<'a> {
    broker: &'a Broker,
    name: String,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.broker.lock_creations().pending.remove(&self.name);
    }
}

/// One topic of a creation: what it asks for, already defaulted.
#[derive(Debug, Clone)]
pub struct TopicRequest {
    pub new: NewTopic,
    /// -1 for the cluster's default.
    pub replication_factor: i16,
    /// Manual assignments: partition index and its replicas (then
    /// `replication_factor` is -1).
    pub assignments: Vec<(i32, Vec<i32>)>,
}

/// A topic the controller created (or would create, validating).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
}

pub(super) fn controller_error(e: ControllerError) -> BrokerError {
    BrokerError::Controller(e.code, e.message)
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
            if self.image().topic_id(name).is_none() {
                room = room.saturating_add(u64::try_from(partitions).unwrap_or(0));
            }
        }
        room
    }

    /// Partitions a creation of `new` must leave free.
    fn keep_free_for(&self, new: &NewTopic) -> u64 {
        if super::groups::is_internal(&new.name) {
            0
        } else {
            self.internal_room()
        }
    }

    /// Checks `new` and reserves its name and partitions.
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
        })
    }

    /// Whether a topic named `name` is being created through this broker.
    pub fn is_being_created(&self, name: &str) -> bool {
        self.lock_creations().pending.contains_key(name)
    }

    /// This node's part in the cluster, or NOT_CONTROLLER before it has
    /// joined one.
    pub(crate) async fn node(
        &self,
    ) -> Result<&Arc<crate::cluster::node::ClusterNode>, BrokerError> {
        if self.cluster().is_none() {
            // A lone voter on a fresh directory serves before its quorum has
            // started (see `Broker::is_fresh`): wait for it, briefly.
            let mut joined = self.cluster_joined.subscribe();
            let _ = tokio::time::timeout(APPLY_WAIT, joined.wait_for(|j| *j)).await;
        }
        self.cluster().ok_or_else(|| {
            BrokerError::Controller(
                ResponseError::NotController,
                "this broker has not joined its controller quorum yet".to_string(),
            )
        })
    }

    /// Waits (up to a bound) until this broker has applied an image that
    /// satisfies `done`.
    pub(super) async fn wait_applied(&self, done: impl Fn(&ImageSnapshot) -> bool) {
        let mut applied = self.subscribe_applied();
        if tokio::time::timeout(APPLY_WAIT, applied.wait_for(|i| done(i)))
            .await
            .is_err()
        {
            tracing::warn!(
                "a committed metadata change has not reached this broker within {APPLY_WAIT:?}"
            );
        }
    }

    /// Creates topics (or checks them, `validate_only`): each is checked
    /// here, then decided by the controller. Results in request order.
    pub async fn create_topics(
        &self,
        requests: Vec<TopicRequest>,
        validate_only: bool,
    ) -> Vec<Result<Created, BrokerError>> {
        let mut results: Vec<Option<Result<Created, BrokerError>>> = Vec::new();
        let mut reservations = Vec::new();
        let mut sent = Vec::new();
        let mut sent_index = Vec::new();
        for (i, request) in requests.iter().enumerate() {
            let checked = if self.image().topic_id(&request.new.name).is_some() {
                Err(BrokerError::TopicAlreadyExists(request.new.name.clone()))
            } else {
                self.reserve(&request.new)
            };
            match checked {
                Ok(reservation) => {
                    reservations.push(reservation);
                    sent_index.push(i);
                    sent.push(ControllerTopic {
                        name: request.new.name.clone(),
                        num_partitions: if request.assignments.is_empty() {
                            request.new.partitions
                        } else {
                            -1
                        },
                        replication_factor: request.replication_factor,
                        assignments: request.assignments.clone(),
                        configs: request
                            .new
                            .configs
                            .iter()
                            .map(|(k, v)| (k.clone(), Some(v.clone())))
                            .collect(),
                    });
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        if !sent.is_empty() {
            // Placement needs a registered broker: on a first start the
            // request can come before this broker's own registration.
            if self.image().alive_brokers().next().is_none() {
                self.wait_applied(|image| image.alive_brokers().next().is_some())
                    .await;
            }
            let decided = match self.node().await {
                Ok(node) => node.create_topics(sent, validate_only).await,
                Err(e) => {
                    let message = e.to_string();
                    sent.iter()
                        .map(|t| {
                            (
                                t.name.clone(),
                                Err(ControllerError::new(
                                    ResponseError::NotController,
                                    message.clone(),
                                )),
                            )
                        })
                        .collect()
                }
            };
            let mut ids = Vec::new();
            for (i, (name, result)) in sent_index.into_iter().zip(decided) {
                let result = result
                    .map(|c| Created {
                        id: c.topic_id,
                        partitions: c.num_partitions,
                        replication_factor: c.replication_factor,
                    })
                    .map_err(controller_error);
                match &result {
                    Ok(created) => {
                        if !validate_only {
                            ids.push(created.id);
                            tracing::info!(topic = %name, id = %created.id, partitions = created.partitions, replication_factor = created.replication_factor, "topic created");
                        }
                    }
                    Err(e) => tracing::info!(topic = %name, "topic not created: {e}"),
                }
                if let Some(slot) = results.get_mut(i) {
                    *slot = Some(result);
                }
            }
            if !ids.is_empty() {
                self.wait_applied(|image| ids.iter().all(|id| self.settled(image, *id)))
                    .await;
            }
        }
        drop(reservations);
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(BrokerError::Controller(
                        ResponseError::UnknownServerError,
                        "no answer for this topic".to_string(),
                    ))
                })
            })
            .collect()
    }

    /// Deletes topics by name; each result is the deleted topic's id.
    pub async fn delete_topics(&self, names: Vec<String>) -> Vec<Result<Uuid, BrokerError>> {
        let node = match self.node().await {
            Ok(node) => node,
            Err(e) => {
                let message = e.to_string();
                return names
                    .iter()
                    .map(|_| {
                        Err(BrokerError::Controller(
                            ResponseError::NotController,
                            message.clone(),
                        ))
                    })
                    .collect();
            }
        };
        let results: Vec<Result<Uuid, BrokerError>> = node
            .delete_topics(names)
            .await
            .into_iter()
            .map(|(name, r)| {
                r.inspect(|id| tracing::info!(topic = %name, %id, "topic deleted"))
                    .map_err(controller_error)
            })
            .collect();
        let ids: Vec<Uuid> = results
            .iter()
            .filter_map(|r| r.as_ref().ok())
            .copied()
            .collect();
        if !ids.is_empty() {
            self.wait_applied(|image| ids.iter().all(|id| image.topic(*id).is_none()))
                .await;
        }
        results
    }

    /// Replaces a topic's config overrides, through the controller.
    pub async fn set_topic_configs(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
    ) -> Result<(), BrokerError> {
        super::configs::validate_topic_configs(&overrides)?;
        let node = self.node().await?;
        node.set_topic_configs(name.to_string(), overrides.clone())
            .await
            .map_err(controller_error)?;
        self.wait_applied(|image| super::apply::topic_configs(image, name) == overrides)
            .await;
        Ok(())
    }

    /// Grows topic `name` to `count` partitions, through the controller.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), BrokerError> {
        let node = self.node().await?;
        node.create_partitions(name.to_string(), count, assignments, validate_only)
            .await
            .map_err(controller_error)?;
        if !validate_only {
            self.wait_applied(|image| {
                image
                    .topic_by_name(name)
                    .is_some_and(|t| t.partitions.len() >= usize::try_from(count).unwrap_or(0))
            })
            .await;
        }
        Ok(())
    }

    /// An internal topic (`__consumer_offsets`, `__transaction_state`):
    /// compacted, with Kafka's 100 MiB segments, created with `partitions`
    /// and `replication_factor` the first time it is needed.
    pub async fn ensure_internal_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
    ) -> Result<(), BrokerError> {
        if self.image().topic_id(name).is_some() {
            return Ok(());
        }
        let request = TopicRequest {
            new: NewTopic {
                name: name.to_string(),
                partitions,
                configs: BTreeMap::from([
                    ("cleanup.policy".to_string(), "compact".to_string()),
                    ("segment.bytes".to_string(), "104857600".to_string()),
                ]),
            },
            replication_factor,
            assignments: Vec::new(),
        };
        let result = self.create_topics(vec![request], false).await.pop();
        match result {
            Some(Ok(_)) => Ok(()),
            Some(Err(BrokerError::TopicAlreadyExists(_))) => {
                self.wait_applied(|image| image.topic_id(name).is_some())
                    .await;
                Ok(())
            }
            Some(Err(BrokerError::Controller(ResponseError::TopicAlreadyExists, _))) => {
                self.wait_applied(|image| image.topic_id(name).is_some())
                    .await;
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => Err(BrokerError::UnknownTopic(name.to_string())),
        }
    }

    /// Creates `__consumer_offsets` when it does not exist yet: group
    /// requests may come without a FindCoordinator first. A failure is
    /// logged; the request then gets the coordinator's error.
    pub async fn ensure_offsets_topic(&self) {
        let name = wharf_coordinator::OFFSETS_TOPIC;
        if self.image().topic_id(name).is_some() {
            return;
        }
        let partitions = self.groups.config().offsets_partitions;
        let rf = self.offsets_replication_factor();
        if let Err(e) = self.ensure_internal_topic(name, partitions, rf).await {
            tracing::info!("cannot create {name}: {e}");
        }
    }

    /// Creates `__transaction_state` when it does not exist yet (see
    /// `ensure_offsets_topic`).
    pub async fn ensure_txn_state_topic(&self) {
        let name = wharf_coordinator::txn::TRANSACTION_STATE_TOPIC;
        if self.image().topic_id(name).is_some() {
            return;
        }
        let partitions = self.txns.config().state_partitions;
        let rf = self.txn_state_replication_factor();
        if let Err(e) = self.ensure_internal_topic(name, partitions, rf).await {
            tracing::info!("cannot create {name}: {e}");
        }
    }

    /// An internal topic this broker knows, if created.
    pub fn existing_internal_topic(&self, name: &str) -> Result<Arc<Topic>, BrokerError> {
        self.topic(name)
            .ok_or_else(|| BrokerError::UnknownTopic(name.to_string()))
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
