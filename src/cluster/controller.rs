//! The active controller: decides metadata changes and proposes them.
//!
//! Requests that change cluster metadata (CreateTopics, DeleteTopics,
//! CreatePartitions, config changes, BrokerRegistration, BrokerHeartbeat,
//! AlterPartition) end here, on the node that leads the metadata quorum. One
//! at a time, each takes the current image, runs the pure decision from
//! `wharf_coordinator::metadata`, proposes the resulting records as one
//! batch, and returns once the batch is committed and applied, so the next
//! decision sees it. Nothing is applied that was not committed: a proposal
//! that fails (no majority, leadership lost) changes nothing and answers
//! NOT_CONTROLLER or REQUEST_TIMED_OUT.
//!
//! The replicated log sits behind [`MetadataLog`], the narrow interface the
//! Raft quorum implements; tests use an in-memory log.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use kafka_protocol::ResponseError;

use super::quorum::{Quorum, QuorumError};
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;
use wharf_coordinator::metadata::alter_partition::{
    self, AlterPartitionData, AlterPartitionOutcome,
};
use wharf_coordinator::metadata::brokers::{
    self, BrokerSessions, HeartbeatReply, HeartbeatRequest, RegistrationRequest,
};
use wharf_coordinator::metadata::configs::{self, ConfigOp};
use wharf_coordinator::metadata::elections::{self, ElectionType};
use wharf_coordinator::metadata::features::{self, FeatureUpdate};
use wharf_coordinator::metadata::placement::SeededRandom;
use wharf_coordinator::metadata::producer_ids::{self, ProducerIdBlock};
use wharf_coordinator::metadata::reassignment;
use wharf_coordinator::metadata::scram;
use wharf_coordinator::metadata::topics::{self, CreatedTopic, NewTopic};
use wharf_coordinator::metadata::{
    ControllerConfig, ControllerError, ImageSnapshot, MetadataRecord,
};

impl From<QuorumError> for ControllerError {
    fn from(e: QuorumError) -> Self {
        ControllerError::new(e.response_error(), e.to_string())
    }
}

/// The replicated metadata log, as the controller needs it.
pub trait MetadataLog: Send + Sync + 'static {
    /// Appends `records` as one batch; resolves once the batch is committed
    /// and applied to [`MetadataLog::image`], with the batch's offset.
    fn propose(
        &self,
        records: Vec<MetadataRecord>,
    ) -> impl Future<Output = Result<i64, QuorumError>> + Send;

    /// The image with every committed batch applied.
    fn image(&self) -> ImageSnapshot;

    /// The offset the next proposed batch will take (broker epochs).
    fn next_offset(&self) -> i64;

    /// The term in which this node leads the quorum, when it leads now.
    fn leader_term(&self) -> Option<u64>;

    /// The node that led the quorum before this one, and when (wall-clock
    /// ms) this node last heard from it as leader; given once per
    /// leadership of this node.
    fn take_former_leader_contact(&self) -> Option<(i32, i64)> {
        None
    }
}

impl MetadataLog for Quorum {
    fn propose(
        &self,
        records: Vec<MetadataRecord>,
    ) -> impl Future<Output = Result<i64, QuorumError>> + Send {
        let proposing = Quorum::propose(self, records);
        async move {
            let offset = proposing.await?;
            Ok(i64::try_from(offset).unwrap_or(i64::MAX))
        }
    }

    fn image(&self) -> ImageSnapshot {
        Quorum::image(self)
    }

    fn next_offset(&self) -> i64 {
        i64::try_from(self.log_end_offset()).unwrap_or(i64::MAX)
    }

    fn leader_term(&self) -> Option<u64> {
        self.leader()
            .filter(|(id, _)| *id == self.node_id())
            .map(|(_, term)| term)
    }

    fn take_former_leader_contact(&self) -> Option<(i32, i64)> {
        Quorum::take_former_leader_contact(self)
    }
}

/// The active controller's state besides the image.
struct State {
    /// The term of the tenure `sessions` belong to.
    tenure: Option<u64>,
    sessions: BrokerSessions,
    random: SeededRandom,
}

/// Decides and proposes metadata changes; see the module doc.
pub struct Controller<L> {
    log: Arc<L>,
    config: ControllerConfig,
    /// Held for a whole decision and its proposal: decisions are serial.
    state: Mutex<State>,
    /// Milliseconds since the epoch (injected so tests control time).
    now_ms: Clock,
}

/// A partition by topic name and index.
pub type TopicPartition = (String, i32);

/// Where the controller reads the time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

impl<L> std::fmt::Debug for Controller<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<L: MetadataLog> Controller<L> {
    pub fn new(log: Arc<L>, config: ControllerConfig, now_ms: Clock) -> Self {
        let seed = Uuid::new_v4().as_u64_pair().0;
        Self {
            log,
            config,
            state: Mutex::new(State {
                tenure: None,
                sessions: BrokerSessions::new(),
                random: SeededRandom::new(seed),
            }),
            now_ms,
        }
    }

    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// The image the controller decides on.
    pub fn image(&self) -> ImageSnapshot {
        self.log.image()
    }

    fn not_controller(&self) -> ControllerError {
        ControllerError::new(
            ResponseError::NotController,
            "this node is not the active controller",
        )
    }

    /// Locks the state for a decision of the active controller
    /// (NOT_CONTROLLER on any other node). A new tenure starts with no
    /// broker sessions: heartbeats went to the previous controller, or to
    /// none during the election, so what this node saw in an earlier
    /// tenure says nothing about a broker's liveness now. Each broker gets a
    /// full session from the first time this tenure looks at it, as Kafka's
    /// controller does when it activates, except the broker on the node
    /// that led the quorum before: this node last heard of it when its
    /// last AppendEntries arrived, and it was silent long enough for an
    /// election since, so its session runs from then. When the active
    /// controller dies with a broker on the same node (combined mode), that
    /// broker's partitions move as soon as this tenure starts rather than a
    /// whole session later.
    async fn active(&self) -> Result<MutexGuard<'_, State>, ControllerError> {
        let mut state = self.state.lock().await;
        let term = self
            .log
            .leader_term()
            .ok_or_else(|| self.not_controller())?;
        if state.tenure != Some(term) {
            let former = self.log.take_former_leader_contact();
            if state.tenure.is_some() || former.is_some() {
                tracing::info!(
                    term,
                    former_leader = ?former.map(|(id, _)| id),
                    "controller tenure starts: broker sessions restart"
                );
            }
            state.tenure = Some(term);
            state.sessions.new_tenure(former);
        }
        Ok(state)
    }

    /// Proposes `records` (if any) and feeds them to the sessions.
    async fn commit(
        &self,
        state: &mut State,
        records: Vec<MetadataRecord>,
    ) -> Result<i64, ControllerError> {
        if records.is_empty() {
            return Ok(self.log.next_offset().saturating_sub(1));
        }
        let offset = self.log.propose(records.clone()).await?;
        for record in &records {
            state.sessions.replayed(offset, record);
        }
        Ok(offset)
    }

    /// CreateTopics: each topic's result, in request order.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        validate_only: bool,
    ) -> Vec<(String, Result<CreatedTopic, ControllerError>)> {
        let mut state = match self.active().await {
            Ok(state) => state,
            Err(e) => {
                return topics
                    .iter()
                    .map(|t| (t.name.clone(), Err(e.clone())))
                    .collect();
            }
        };
        let image = self.log.image();
        let outcome = topics::create_topics(
            &image,
            &self.config,
            &mut state.random,
            topics,
            validate_only,
        );
        match self.commit(&mut state, outcome.records).await {
            Ok(_) => outcome.results,
            Err(e) => outcome
                .results
                .into_iter()
                .map(|(name, r)| (name, r.and(Err(e.clone()))))
                .collect(),
        }
    }

    /// DeleteTopics by name.
    pub async fn delete_topics(
        &self,
        names: &[String],
    ) -> Vec<(String, Result<Uuid, ControllerError>)> {
        let mut state = match self.active().await {
            Ok(state) => state,
            Err(e) => return names.iter().map(|n| (n.clone(), Err(e.clone()))).collect(),
        };
        let image = self.log.image();
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(names.len());
        for name in names {
            let result = topics::delete_topic_by_name(&image, name).map(|record| {
                let id = match &record {
                    MetadataRecord::RemoveTopic(r) => r.topic_id,
                    _ => Uuid::nil(),
                };
                if !records.contains(&record) {
                    records.push(record);
                }
                id
            });
            results.push((name.clone(), result));
        }
        match self.commit(&mut state, records).await {
            Ok(_) => results,
            Err(e) => results
                .into_iter()
                .map(|(n, r)| (n, r.and(Err(e.clone()))))
                .collect(),
        }
    }

    /// CreatePartitions for one topic: grow it to `count` partitions.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<&[Vec<i32>]>,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let mut state = self.active().await?;
        let image = self.log.image();
        let records =
            topics::create_partitions(&image, &mut state.random, name, count, assignments)?;
        if validate_only {
            return Ok(());
        }
        self.commit(&mut state, records).await.map(|_| ())
    }

    /// IncrementalAlterConfigs (SET and DELETE) on topic `name`'s config
    /// overrides, proposed as one batch.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        ops: &[ConfigOp],
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let mut state = self.active().await?;
        let image = self.log.image();
        let records = configs::alter_topic_configs(&image, name, ops)?;
        if validate_only {
            return Ok(());
        }
        self.commit(&mut state, records).await.map(|_| ())
    }

    /// Replaces topic `name`'s config overrides with exactly `configs`
    /// (keys the image has and `configs` lacks are deleted), proposed as
    /// one batch.
    pub async fn set_topic_configs(
        &self,
        name: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), ControllerError> {
        let mut state = self.active().await?;
        let image = self.log.image();
        let records = configs::set_topic_configs(&image, name, configs)?;
        self.commit(&mut state, records).await.map(|_| ())
    }

    /// AlterUserScramCredentials: each user's result; the accepted
    /// alterations are proposed as one batch (see
    /// `wharf_coordinator::metadata::scram`).
    pub async fn alter_scram_credentials(
        &self,
        deletions: &[scram::Deletion],
        upsertions: &[scram::Upsertion],
    ) -> Result<Vec<(String, Result<(), ControllerError>)>, ControllerError> {
        let mut state = self.active().await?;
        let image = self.log.image();
        let decided = scram::alter_credentials(
            &image,
            deletions,
            upsertions,
            crate::security::scram::derive_keys,
        );
        self.commit(&mut state, decided.records).await?;
        Ok(decided.results)
    }

    /// AllocateProducerIds: the next block of producer ids for broker
    /// `broker_id`, registered at `broker_epoch`.
    pub async fn allocate_producer_ids(
        &self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<ProducerIdBlock, ControllerError> {
        let mut state = self.active().await?;
        let image = self.log.image();
        let (block, record) = producer_ids::allocate_producer_ids(&image, broker_id, broker_epoch)?;
        self.commit(&mut state, vec![record]).await?;
        Ok(block)
    }

    /// UpdateFeatures: every update or none, proposed as one batch (none
    /// with `validate_only`).
    pub async fn update_features(
        &self,
        updates: &[FeatureUpdate],
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let mut state = self.active().await?;
        let image = self.log.image();
        let records = features::update_features(&image, updates)?;
        if validate_only {
            return Ok(());
        }
        for update in updates {
            tracing::info!(
                feature = %update.name,
                level = update.level,
                "finalized feature level changed (UpdateFeatures)"
            );
        }
        self.commit(&mut state, records).await.map(|_| ())
    }

    /// AlterPartition (KIP-497): ISR changes a partition leader asks for.
    /// Each partition's outcome, in request order; the accepted changes are
    /// proposed as one batch.
    pub async fn alter_partition(
        &self,
        broker_id: i32,
        broker_epoch: i64,
        partitions: &[AlterPartitionData],
    ) -> Result<Vec<Result<AlterPartitionOutcome, ControllerError>>, ControllerError> {
        let mut state = self.active().await?;
        let image = self.log.image();
        let outcomes: Vec<_> = partitions
            .iter()
            .map(|data| {
                alter_partition::alter_partition(
                    &image,
                    &self.config,
                    broker_id,
                    broker_epoch,
                    data,
                )
            })
            .collect();
        let records: Vec<MetadataRecord> = outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok().and_then(|o| o.record.clone()))
            .map(MetadataRecord::PartitionChange)
            .collect();
        self.commit(&mut state, records).await?;
        Ok(outcomes)
    }

    /// ElectLeaders: a preferred or unclean election for each of
    /// `partitions` (topic, partition), or, when `None`, for every
    /// partition that needs one. Each asked partition's outcome (ELECTION_NOT_NEEDED
    /// outcomes are left out of a `None` request's answer, as Kafka does);
    /// the elections are proposed as one batch.
    pub async fn elect_leaders(
        &self,
        election_type: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<((String, i32), Result<(), ControllerError>)>, ControllerError> {
        let mut state = self.active().await?;
        let image = self.log.image();
        let every = partitions.is_none();
        let asked = partitions.unwrap_or_else(|| {
            image
                .topics()
                .flat_map(|t| t.partitions.keys().map(|p| (t.name.clone(), *p)))
                .collect()
        });
        let mut records = Vec::new();
        let mut outcomes = Vec::with_capacity(asked.len());
        for (topic, partition) in asked {
            match elections::elect_leader(&image, &topic, partition, election_type) {
                Ok(record) => {
                    records.push(MetadataRecord::PartitionChange(record));
                    outcomes.push(((topic, partition), Ok(())));
                }
                Err(e) if every && e.code == ResponseError::ElectionNotNeeded => {}
                Err(e) => outcomes.push(((topic, partition), Err(e))),
            }
        }
        self.commit(&mut state, records).await?;
        Ok(outcomes)
    }

    /// AlterPartitionReassignments (KIP-455): for each (topic, partition),
    /// target replicas to move to or `None` to cancel the move in
    /// progress. Each partition's outcome, in request order; the changes
    /// are proposed as one batch.
    pub async fn alter_partition_reassignments(
        &self,
        asked: Vec<(TopicPartition, Option<Vec<i32>>)>,
        allow_rf_change: bool,
    ) -> Result<Vec<(TopicPartition, Result<(), ControllerError>)>, ControllerError> {
        let mut state = self.active().await?;
        let image = self.log.image();
        let mut records = Vec::new();
        let mut outcomes = Vec::with_capacity(asked.len());
        for ((topic, partition), target) in asked {
            let decided = reassignment::alter_reassignment(
                &image,
                &self.config,
                &topic,
                partition,
                target.as_deref(),
                allow_rf_change,
            );
            match decided {
                Ok(record) => {
                    tracing::info!(%topic, partition, target = ?target, "partition reassignment");
                    records.extend(record.map(MetadataRecord::PartitionChange));
                    outcomes.push(((topic, partition), Ok(())));
                }
                Err(e) => outcomes.push(((topic, partition), Err(e))),
            }
        }
        self.commit(&mut state, records).await?;
        Ok(outcomes)
    }

    /// BrokerRegistration: the broker's epoch.
    pub async fn register_broker(
        &self,
        request: &RegistrationRequest,
    ) -> Result<i64, ControllerError> {
        let mut state = self.active().await?;
        let image = self.log.image();
        let now = (self.now_ms)();
        let next = self.log.next_offset();
        let (records, epoch) = brokers::register_broker(
            &image,
            &mut state.sessions,
            &self.config,
            request,
            next,
            now,
        )?;
        self.commit(&mut state, records).await?;
        Ok(epoch)
    }

    /// BrokerHeartbeat.
    pub async fn heartbeat(
        &self,
        request: &HeartbeatRequest,
    ) -> Result<HeartbeatReply, ControllerError> {
        let mut state = self.active().await?;
        let image = self.log.image();
        let now = (self.now_ms)();
        let (records, reply) =
            brokers::heartbeat(&image, &mut state.sessions, &self.config, request, now)?;
        let offset = self.commit(&mut state, records).await?;
        if reply.in_controlled_shutdown {
            state
                .sessions
                .controlled_shutdown_appended(request.broker_id, offset);
        }
        Ok(reply)
    }

    /// Fences every broker whose session has expired, one at a time (each
    /// fencing's elections see the previous one). Returns the fenced ids.
    pub async fn fence_stale_brokers(&self) -> Result<Vec<i32>, ControllerError> {
        let Ok(mut state) = self.active().await else {
            return Ok(Vec::new());
        };
        let tenure = state.tenure;
        let mut fenced = Vec::new();
        while self.log.leader_term() == tenure {
            let image = self.log.image();
            let now = (self.now_ms)();
            let Some((id, records)) =
                brokers::fence_one_stale_broker(&image, &mut state.sessions, &self.config, now)
            else {
                break;
            };
            tracing::warn!(broker = id, "fencing a broker whose session expired");
            self.commit(&mut state, records).await?;
            fenced.push(id);
        }
        Ok(fenced)
    }
}

mod acls;
pub use acls::Deleted;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
