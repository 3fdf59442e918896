//! Broker registration, heartbeats, fencing and controlled shutdown, with
//! the behaviour of Kafka's `ClusterControlManager.registerBroker`,
//! `BrokerHeartbeatManager` and `ReplicationControlManager`'s broker
//! handlers.
//!
//! Liveness is not metadata: when each broker last heartbeated, and how far
//! it has read the metadata log, lives in the active controller's
//! [`BrokerSessions`], fed by heartbeats with an injected clock (`now_ms`).
//! Only the consequences (fence, unfence, controlled shutdown) become
//! records.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::controller::{ControllerConfig, ControllerError};
use super::elections::{leader_and_isr_updates, BrokerChange};
use super::image::MetadataImage;
use super::records::{
    BrokerEndpoint, BrokerFeature, BrokerRegistrationChangeRecord, FencingChange, MetadataRecord,
    RegisterBrokerRecord, UnregisterBrokerRecord,
};

/// What the controller knows of one broker's session.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Session {
    last_contact_ms: i64,
    /// The metadata offset the broker last reported (-1 before any).
    metadata_offset: i64,
    /// Set once the broker's controlled shutdown records are in the log:
    /// it may stop when every active broker has read that far.
    controlled_shutdown_offset: Option<i64>,
}

/// The active controller's view of broker liveness.
#[derive(Debug, Clone, Default)]
pub struct BrokerSessions {
    sessions: BTreeMap<i32, Session>,
    /// The log offset of each broker's latest RegisterBrokerRecord: it must
    /// have read that far to be unfenced.
    register_offsets: BTreeMap<i32, i64>,
}

impl BrokerSessions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Tells the sessions about a record at `offset` of the metadata log;
    /// the caller feeds every record it applies.
    pub fn replayed(&mut self, offset: i64, record: &MetadataRecord) {
        match record {
            MetadataRecord::RegisterBroker(r) => {
                self.register_offsets.insert(r.broker_id, offset);
            }
            MetadataRecord::UnregisterBroker(r) => {
                self.register_offsets.remove(&r.broker_id);
                self.sessions.remove(&r.broker_id);
            }
            _ => {}
        }
    }

    /// Forgets every session (liveness and reported offsets) for a new
    /// controller tenure; the registration offsets, which only grow, stay.
    /// `last_heard`: a broker whose last sign of life is known (the former
    /// controller's node, last heard from at that wall-clock ms), whose
    /// session runs from then instead of from the tenure's first look.
    pub fn new_tenure(&mut self, last_heard: Option<(i32, i64)>) {
        self.sessions.clear();
        if let Some((broker, at_ms)) = last_heard {
            self.sessions.insert(
                broker,
                Session {
                    last_contact_ms: at_ms,
                    metadata_offset: -1,
                    controlled_shutdown_offset: None,
                },
            );
        }
    }

    /// Records that the broker's controlled-shutdown records were appended
    /// in a batch ending at `offset` (Kafka keeps the first such offset).
    pub fn controlled_shutdown_appended(&mut self, broker: i32, offset: i64) {
        if let Some(s) = self.sessions.get_mut(&broker) {
            s.controlled_shutdown_offset.get_or_insert(offset);
        }
    }

    fn touch(&mut self, broker: i32, now_ms: i64, metadata_offset: i64) -> &mut Session {
        let s = self.sessions.entry(broker).or_insert(Session {
            last_contact_ms: now_ms,
            metadata_offset,
            controlled_shutdown_offset: None,
        });
        s.last_contact_ms = now_ms;
        s.metadata_offset = metadata_offset;
        s
    }

    fn has_valid_session(
        &self,
        image: &MetadataImage,
        broker: i32,
        now_ms: i64,
        timeout: i64,
    ) -> bool {
        let unfenced = image.broker(broker).is_some_and(|b| !b.fenced);
        unfenced
            && self
                .sessions
                .get(&broker)
                .is_some_and(|s| s.last_contact_ms.saturating_add(timeout) >= now_ms)
    }

    /// The lowest metadata offset reported by a broker that is unfenced and
    /// not shutting down.
    fn lowest_active_offset(&self, image: &MetadataImage) -> i64 {
        self.sessions
            .iter()
            .filter(|(id, s)| image.is_active(**id) && s.controlled_shutdown_offset.is_none())
            .map(|(_, s)| s.metadata_offset)
            .min()
            .unwrap_or(i64::MAX)
    }
}

/// A BrokerRegistration request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationRequest {
    pub broker_id: i32,
    pub cluster_id: String,
    pub incarnation_id: Uuid,
    pub listeners: Vec<BrokerEndpoint>,
    pub features: Vec<BrokerFeature>,
    pub rack: Option<String>,
    pub log_dirs: Vec<Uuid>,
}

/// Registers a broker. A new incarnation gets `new_broker_epoch` (the log
/// offset the first of the returned records will take) and starts fenced;
/// the same incarnation registering again keeps its epoch and state. A
/// different incarnation of an id whose session is still valid is refused
/// with DUPLICATE_BROKER_REGISTRATION. The RegisterBrokerRecord is the last
/// record returned.
pub fn register_broker(
    image: &MetadataImage,
    sessions: &mut BrokerSessions,
    config: &ControllerConfig,
    request: &RegistrationRequest,
    new_broker_epoch: i64,
    now_ms: i64,
) -> Result<(Vec<MetadataRecord>, i64), ControllerError> {
    if request.cluster_id != config.cluster_id {
        return Err(ControllerError::new(
            ResponseError::InconsistentClusterId,
            format!(
                "Expected cluster ID {}, but got cluster ID {}",
                config.cluster_id, request.cluster_id
            ),
        ));
    }
    let features = check_features(image, &request.features)?;
    let id = request.broker_id;
    let existing = image.broker(id);
    let same_incarnation = existing.is_some_and(|b| b.incarnation_id == request.incarnation_id);
    if existing.is_some()
        && !same_incarnation
        && sessions.has_valid_session(image, id, now_ms, config.broker_session_timeout_ms)
    {
        return Err(ControllerError::new(
            ResponseError::DuplicateBrokerRegistration,
            "Another broker is registered with that broker id.",
        ));
    }
    let (fenced, in_controlled_shutdown, epoch) = match existing {
        Some(b) if same_incarnation => (b.fenced, b.in_controlled_shutdown, b.epoch),
        _ => (true, false, new_broker_epoch),
    };
    if !same_incarnation {
        sessions.sessions.remove(&id);
    }
    sessions.touch(id, now_ms, -1);
    let record = RegisterBrokerRecord {
        broker_id: id,
        is_migrating_zk_broker: false,
        incarnation_id: request.incarnation_id,
        broker_epoch: epoch,
        end_points: request.listeners.clone(),
        features,
        rack: request.rack.clone(),
        fenced,
        in_controlled_shutdown,
        log_dirs: request.log_dirs.clone(),
    };
    // A new incarnation of a registered broker is a process that restarted
    // without a controlled shutdown: it leaves every ISR first, so nothing
    // stays led by a broker that may have lost unflushed data. (Kafka does
    // this in `handleBrokerUncleanShutdown` when ELR is enabled; without
    // ELR, Kafka 3.x leaves its leaderships to a broker that is now fenced.)
    let mut records = match existing {
        Some(_) if !same_incarnation => {
            partition_changes(image, config, BrokerChange::Removing(id))
        }
        _ => Vec::new(),
    };
    records.push(MetadataRecord::RegisterBroker(record));
    Ok((records, epoch))
}

/// The feature that versions the metadata log itself.
pub const METADATA_VERSION_FEATURE: &str = super::features::METADATA_VERSION;

/// Kafka's `processRegistrationFeature` over a registration's features: the
/// broker must support the cluster's finalized level of every feature it
/// names, and of every feature finalized above 0 it does not name (support
/// for none is level 0 only). Levels are [`super::features::finalized_level`]'s
/// (the default of a feature with no record). A broker naming no features
/// is taken to support what this Wharf supports, and one naming no
/// metadata.version Wharf's one level of it. Returns the features to
/// record.
fn check_features(
    image: &MetadataImage,
    requested: &[BrokerFeature],
) -> Result<Vec<BrokerFeature>, ControllerError> {
    // A registration naming no features at all (Wharf brokers from before
    // registrations named them) is taken to support what this Wharf does.
    let mut features = if requested.is_empty() {
        super::features::broker_features()
    } else {
        requested.to_vec()
    };
    if !features.iter().any(|f| f.name == METADATA_VERSION_FEATURE) {
        let level = super::features::METADATA_VERSION_LEVEL;
        features.push(BrokerFeature {
            name: METADATA_VERSION_FEATURE.into(),
            min_supported_version: level,
            max_supported_version: level,
        });
    }
    let unsupported = |name: &str, level: i16, lo: i16, hi: i16| {
        ControllerError::new(
            ResponseError::UnsupportedVersion,
            format!("Unable to register because the broker does not support finalized version {level} of {name}. The broker wants a version between {lo} and {hi}, inclusive."),
        )
    };
    for f in &features {
        let level = super::features::finalized_level(image, &f.name);
        if !(f.min_supported_version..=f.max_supported_version).contains(&level) {
            return Err(unsupported(
                &f.name,
                level,
                f.min_supported_version,
                f.max_supported_version,
            ));
        }
    }
    for (name, level) in super::features::finalized(image) {
        if !features.iter().any(|f| f.name == name) {
            return Err(unsupported(&name, level, 0, 0));
        }
    }
    Ok(features)
}

/// A BrokerHeartbeat request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatRequest {
    pub broker_id: i32,
    pub broker_epoch: i64,
    pub current_metadata_offset: i64,
    pub want_fence: bool,
    pub want_shut_down: bool,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub is_caught_up: bool,
    pub is_fenced: bool,
    pub in_controlled_shutdown: bool,
    pub should_shut_down: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Fenced,
    Unfenced,
    ControlledShutdown,
    ShutdownNow,
}

/// Handles a heartbeat: the broker's next state (Kafka's
/// `calculateNextBrokerState`) and the records that move it there.
/// A fenced broker is unfenced once it has read its own registration; an
/// unfenced broker that wants to shut down while leading partitions enters
/// controlled shutdown (its leaderships move), and is told to stop once it
/// leads nothing and every active broker has read its shutdown records.
///
/// After appending the returned records, when the reply says
/// `in_controlled_shutdown`, the caller reports the offset of the log's
/// last record through [`BrokerSessions::controlled_shutdown_appended`]
/// (Kafka's `processBatchEndOffset`), even when there were no records.
pub fn heartbeat(
    image: &MetadataImage,
    sessions: &mut BrokerSessions,
    config: &ControllerConfig,
    request: &HeartbeatRequest,
    now_ms: i64,
) -> Result<(Vec<MetadataRecord>, HeartbeatReply), ControllerError> {
    let id = request.broker_id;
    let stale = |m: String| ControllerError::new(ResponseError::StaleBrokerEpoch, m);
    let broker = image
        .broker(id)
        .ok_or_else(|| stale(format!("No broker registration found for broker id {id}")))?;
    if broker.epoch != request.broker_epoch {
        return Err(stale(format!(
            "Expected broker epoch {}, but got broker epoch {}",
            broker.epoch, request.broker_epoch
        )));
    }
    let register_offset = *sessions.register_offsets.get(&id).ok_or_else(|| {
        stale(format!(
            "Received a heartbeat from broker {id} before registration"
        ))
    })?;
    let shutdown_offset = sessions
        .sessions
        .get(&id)
        .and_then(|s| s.controlled_shutdown_offset);
    let current = if shutdown_offset.is_some() || (!broker.fenced && broker.in_controlled_shutdown)
    {
        State::ControlledShutdown
    } else if broker.fenced {
        State::Fenced
    } else {
        State::Unfenced
    };
    let leads = || !image.partitions_led_by(id).is_empty();
    let next = match current {
        State::Fenced if request.want_shut_down => State::ShutdownNow,
        // A broker fenced at the end of a controlled shutdown must register
        // again before it serves: unfencing it would leave it unfenced but
        // still "in controlled shutdown", unable to lead or follow, and Kafka's
        // unfence handling would even elect it. (Kafka lets it unfence.)
        State::Fenced if broker.in_controlled_shutdown => State::Fenced,
        State::Fenced
            if !request.want_fence && request.current_metadata_offset >= register_offset =>
        {
            State::Unfenced
        }
        State::Fenced => State::Fenced,
        State::Unfenced if request.want_fence && request.want_shut_down => State::ShutdownNow,
        State::Unfenced if request.want_fence => State::Fenced,
        State::Unfenced if request.want_shut_down && leads() => State::ControlledShutdown,
        State::Unfenced if request.want_shut_down => State::ShutdownNow,
        State::Unfenced => State::Unfenced,
        State::ControlledShutdown if leads() => State::ControlledShutdown,
        State::ControlledShutdown => match shutdown_offset {
            Some(offset) if offset <= sessions.lowest_active_offset(image) => State::ShutdownNow,
            _ => State::ControlledShutdown,
        },
        State::ShutdownNow => State::ShutdownNow,
    };
    let mut records = Vec::new();
    if current != next {
        match next {
            State::Fenced | State::ShutdownNow => records = fence_records(image, config, id),
            State::Unfenced => records = unfence_records(image, config, id),
            State::ControlledShutdown => records = controlled_shutdown_records(image, config, id),
        }
    }
    let fenced_next = matches!(next, State::Fenced | State::ShutdownNow);
    let session = sessions.touch(id, now_ms, request.current_metadata_offset);
    if fenced_next {
        session.controlled_shutdown_offset = None;
    }
    Ok((
        records,
        HeartbeatReply {
            is_caught_up: request.current_metadata_offset >= register_offset,
            is_fenced: fenced_next,
            in_controlled_shutdown: next == State::ControlledShutdown,
            should_shut_down: next == State::ShutdownNow,
        },
    ))
}

/// Fences one broker whose session has timed out (an unfenced broker with
/// no heartbeat for `broker.session.timeout.ms`), if any: the broker and
/// the records. Kafka fences one at a time so each fencing's elections see
/// the previous one; call again after applying the records.
pub fn fence_one_stale_broker(
    image: &MetadataImage,
    sessions: &mut BrokerSessions,
    config: &ControllerConfig,
    now_ms: i64,
) -> Option<(i32, Vec<MetadataRecord>)> {
    let mut stale: Option<(i64, i32)> = None;
    for broker in image.brokers().filter(|b| !b.fenced) {
        // A broker this controller has not heard from yet (it just took
        // over) gets a full session from now, as Kafka's does on replay.
        let last = sessions.touch_if_absent(broker.id, now_ms);
        if last.saturating_add(config.broker_session_timeout_ms) < now_ms
            && stale.is_none_or(|(t, _)| last < t)
        {
            stale = Some((last, broker.id));
        }
    }
    let (_, id) = stale?;
    if let Some(s) = sessions.sessions.get_mut(&id) {
        s.controlled_shutdown_offset = None;
    }
    Some((id, fence_records(image, config, id)))
}

impl BrokerSessions {
    fn touch_if_absent(&mut self, broker: i32, now_ms: i64) -> i64 {
        self.sessions
            .entry(broker)
            .or_insert(Session {
                last_contact_ms: now_ms,
                metadata_offset: -1,
                controlled_shutdown_offset: None,
            })
            .last_contact_ms
    }
}

/// Removes a broker: it leaves every ISR (leaderships move), then its
/// registration goes. BROKER_ID_NOT_REGISTERED when there is none.
pub fn unregister_broker(
    image: &MetadataImage,
    config: &ControllerConfig,
    broker_id: i32,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let broker = image.broker(broker_id).ok_or_else(|| {
        ControllerError::new(
            ResponseError::BrokerIdNotRegistered,
            format!("Broker ID {broker_id} is not currently registered"),
        )
    })?;
    let mut records = partition_changes(image, config, BrokerChange::Removing(broker_id));
    records.push(MetadataRecord::UnregisterBroker(UnregisterBrokerRecord {
        broker_id,
        broker_epoch: broker.epoch,
    }));
    Ok(records)
}

fn partition_changes(
    image: &MetadataImage,
    config: &ControllerConfig,
    change: BrokerChange,
) -> Vec<MetadataRecord> {
    leader_and_isr_updates(image, config, change)
        .into_iter()
        .map(MetadataRecord::PartitionChange)
        .collect()
}

fn registration_change(
    image: &MetadataImage,
    id: i32,
    fenced: FencingChange,
    in_controlled_shutdown: bool,
) -> Option<MetadataRecord> {
    let broker = image.broker(id)?;
    Some(MetadataRecord::BrokerRegistrationChange(
        BrokerRegistrationChangeRecord {
            broker_id: id,
            broker_epoch: broker.epoch,
            fenced,
            in_controlled_shutdown,
            log_dirs: Vec::new(),
        },
    ))
}

/// Kafka's `handleBrokerFenced`: leave every ISR (new leaders where it
/// led), then the fence.
pub fn fence_records(
    image: &MetadataImage,
    config: &ControllerConfig,
    id: i32,
) -> Vec<MetadataRecord> {
    let mut records = partition_changes(image, config, BrokerChange::Removing(id));
    records.extend(registration_change(image, id, FencingChange::Fence, false));
    records
}

/// Kafka's `handleBrokerUnfenced`: the unfence, then leaders for the
/// partitions that had none and that this broker can lead.
pub fn unfence_records(
    image: &MetadataImage,
    config: &ControllerConfig,
    id: i32,
) -> Vec<MetadataRecord> {
    let mut records: Vec<MetadataRecord> =
        registration_change(image, id, FencingChange::Unfence, false)
            .into_iter()
            .collect();
    records.extend(partition_changes(image, config, BrokerChange::Adding(id)));
    records
}

/// Kafka's `handleBrokerInControlledShutdown`: mark the broker (once), then
/// take it out of every ISR, moving its leaderships.
pub fn controlled_shutdown_records(
    image: &MetadataImage,
    config: &ControllerConfig,
    id: i32,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    if image.broker(id).is_some_and(|b| !b.in_controlled_shutdown) {
        records.extend(registration_change(image, id, FencingChange::None, true));
    }
    records.extend(partition_changes(image, config, BrokerChange::Removing(id)));
    records
}

#[cfg(test)]
#[path = "brokers_tests.rs"]
mod tests;
