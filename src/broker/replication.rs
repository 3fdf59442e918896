//! Partition replication's broker-wide tasks (Kafka's follower model):
//!
//! - **Fetchers.** For each leader this broker follows partitions of, one
//!   task sends Fetch requests with this broker's replica id for all of
//!   them, appends what comes back byte for byte (offsets and leader epochs
//!   kept), takes the leader's high watermark, and truncates where the
//!   leader reports a diverging epoch (KIP-320). The set of fetchers follows
//!   the metadata image ([`Broker::sync_fetchers`]).
//! - **ISR changes.** A leader does not change the ISR itself: expansions
//!   (a follower caught up, found while serving its fetch) and shrinks (a
//!   follower lagging for `replica.lag.time.max.ms`, found by a periodic
//!   check) go to the controller as AlterPartition
//!   ([`Broker::run_isr_changes`]); the image brings the result.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tokio::sync::{watch, Notify};
use uuid::Uuid;
use wharf_client::{Connection, ConnectionOptions};

use crate::cluster::node::admin::IsrChange;

use super::{Broker, Following, Partition};

/// Most bytes one follower fetch asks for, per partition and in all.
const PARTITION_FETCH_BYTES: i32 = 1 << 20;
const FETCH_BYTES: i32 = 10 << 20;
/// Pause after a failed fetch (connection refused, leader gone).
const FETCH_BACKOFF: Duration = Duration::from_millis(200);

/// One partition a fetcher copies.
#[derive(Clone)]
struct Target {
    topic: String,
    topic_id: Uuid,
    partition: Arc<Partition>,
}

impl Target {
    fn key(&self) -> (Uuid, i32) {
        (self.topic_id, self.partition.index)
    }
}

struct Fetcher {
    targets: watch::Sender<Vec<Target>>,
}

/// The broker's replication state (see the module documentation).
#[derive(Default)]
pub struct Replication {
    isr_queue: Mutex<Vec<IsrChange>>,
    isr_wake: Notify,
    fetchers: Mutex<HashMap<i32, Fetcher>>,
}

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replication")
            .field("fetchers", &lock(&self.fetchers).len())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Broker {
    /// Queues an ISR change for the controller.
    pub fn request_isr_change(&self, change: IsrChange) {
        lock(&self.replication.isr_queue).push(change);
        self.replication.isr_wake.notify_one();
    }

    /// Sends the queued ISR changes, and checks the partitions this broker
    /// leads for lagging followers every half `replica.lag.time.max.ms`,
    /// until `stop`.
    pub async fn run_isr_changes(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let lag = self.settings.replica_lag_time_max;
        let lag_ms = i64::try_from(lag.as_millis()).unwrap_or(i64::MAX);
        let period = (lag / 2).clamp(Duration::from_millis(10), Duration::from_secs(5));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let scan = tokio::select! {
                _ = tick.tick() => true,
                () = self.replication.isr_wake.notified() => false,
                _ = stop.wait_for(|s| *s) => return,
            };
            let mut changes = std::mem::take(&mut *lock(&self.replication.isr_queue));
            if scan {
                changes.extend(self.lagging_isr_changes(lag_ms));
            }
            // One change per partition: the latest asked for.
            let mut seen = std::collections::HashSet::new();
            changes.reverse();
            changes.retain(|c| seen.insert((c.topic_id, c.partition)));
            changes.reverse();
            if changes.is_empty() {
                continue;
            }
            let Some(node) = self.cluster() else {
                continue;
            };
            match node.alter_partition(&changes).await {
                Ok(results) => {
                    for (change, result) in changes.iter().zip(results) {
                        match result {
                            Ok(()) => tracing::info!(
                                topic_id = %change.topic_id,
                                partition = change.partition,
                                isr = ?change.isr,
                                "ISR changed"
                            ),
                            Err(e) => {
                                tracing::info!(
                                    topic_id = %change.topic_id,
                                    partition = change.partition,
                                    isr = ?change.isr,
                                    "ISR change refused: {e}"
                                );
                                self.isr_change_refused(change);
                            }
                        }
                    }
                }
                Err(e) => {
                    // Sent again at the next scan, as Kafka's leader keeps
                    // an unsent ISR change until the controller answers.
                    tracing::warn!("ISR changes not sent to the controller (retrying): {e}");
                    lock(&self.replication.isr_queue).extend(changes);
                }
            }
        }
    }

    /// Forgets a refused ISR change on its partition.
    fn isr_change_refused(&self, change: &IsrChange) {
        if let Some(p) = self
            .topic_by_id(&change.topic_id)
            .and_then(|t| t.partition(change.partition).cloned())
        {
            p.isr_change_refused(change.partition_epoch);
        }
    }

    /// ISR shrinks for the partitions this broker leads whose followers
    /// lag.
    fn lagging_isr_changes(&self, lag_ms: i64) -> Vec<IsrChange> {
        let mut out = Vec::new();
        for topic in self.topics() {
            for p in topic.partitions.iter().filter(|p| self.leads(p)) {
                if let Some((leader_epoch, partition_epoch, isr)) = p.shrink_isr(lag_ms) {
                    tracing::warn!(topic = %topic.name, partition = p.index, isr = ?isr, "followers fell behind; shrinking the ISR");
                    out.push(IsrChange {
                        topic_id: topic.id,
                        partition: p.index,
                        leader_epoch,
                        partition_epoch,
                        isr,
                    });
                }
            }
        }
        out
    }

    /// Starts, changes or stops the fetchers so that every hosted partition
    /// this broker follows (a replica, not the leader, with a leader) is
    /// copied from its leader.
    pub fn sync_fetchers(self: &Arc<Self>, stop: &watch::Receiver<bool>) {
        let node = self.settings.node_id;
        let image = self.image();
        let mut wanted: BTreeMap<i32, Vec<Target>> = BTreeMap::new();
        for topic in self.topics() {
            let Some(image_topic) = image.topic(topic.id) else {
                continue;
            };
            for p in &topic.partitions {
                let Some(reg) = image_topic.partitions.get(&p.index) else {
                    continue;
                };
                if reg.leader >= 0 && reg.leader != node && reg.replicas.contains(&node) {
                    wanted.entry(reg.leader).or_default().push(Target {
                        topic: topic.name.to_string(),
                        topic_id: topic.id,
                        partition: p.clone(),
                    });
                }
            }
        }
        let mut fetchers = lock(&self.replication.fetchers);
        // Fetchers of leaders no longer followed end (their sender drops).
        fetchers.retain(|leader, _| wanted.contains_key(leader));
        for (leader, targets) in wanted {
            match fetchers.get(&leader) {
                Some(f) => {
                    f.targets.send_if_modified(|current| {
                        let same = current.len() == targets.len()
                            && current.iter().zip(&targets).all(|(a, b)| {
                                a.key() == b.key() && Arc::ptr_eq(&a.partition, &b.partition)
                            });
                        if !same {
                            *current = targets;
                        }
                        !same
                    });
                }
                None => {
                    let (tx, rx) = watch::channel(targets);
                    tracing::info!(leader, "starting a fetcher");
                    tokio::spawn(fetch_from(self.clone(), leader, rx, stop.clone()));
                    fetchers.insert(leader, Fetcher { targets: tx });
                }
            }
        }
    }
}

/// Copies the partitions in `targets` from broker `leader` until the
/// targets' sender is dropped or `stop`.
async fn fetch_from(
    broker: Arc<Broker>,
    leader: i32,
    mut targets: watch::Receiver<Vec<Target>>,
    mut stop: watch::Receiver<bool>,
) {
    let node = broker.settings.node_id;
    let wait = broker.settings.replica_fetch_wait_max;
    let mut connection: Option<Connection> = None;
    loop {
        if *stop.borrow() || targets.has_changed().is_err() {
            tracing::debug!(leader, "fetcher stopped");
            return;
        }
        // A replica whose log went offline (a storage failure) stops
        // fetching: it can take nothing until the broker restarts, and the
        // leader drops it from the ISR once it lags.
        //
        // Each partition is asked for under the leader and epoch it follows
        // now, and the answer is applied only while those still hold: a
        // fetch in flight when the leader changes must not reach a log
        // that leads or follows another broker since.
        let current: Vec<(Target, Following)> = targets
            .borrow_and_update()
            .iter()
            .filter(|t| !t.partition.is_offline())
            .filter_map(|t| {
                let of = t.partition.following()?;
                (of.leader == leader).then(|| (t.clone(), of))
            })
            .collect();
        if current.is_empty() {
            tracing::trace!(leader, "fetcher has no partition to fetch now");
            pause(&mut targets, &mut stop).await;
            continue;
        }
        if connection.is_none() {
            match connect(&broker, leader, wait).await {
                Ok(c) => connection = Some(c),
                Err(e) => {
                    tracing::debug!(leader, "fetcher cannot reach its leader: {e}");
                    pause(&mut targets, &mut stop).await;
                    continue;
                }
            }
        }
        let Some(conn) = connection.as_mut() else {
            continue;
        };
        let Some(version) = conn.versions().pick::<FetchRequest>() else {
            tracing::error!(
                leader,
                "the leader serves no Fetch version this broker speaks"
            );
            connection = None;
            pause(&mut targets, &mut stop).await;
            continue;
        };
        let epoch = broker
            .cluster()
            .and_then(|c| c.broker_epoch())
            .unwrap_or(-1);
        let request = fetch_request(&current, node, epoch, wait, version);
        let response = tokio::select! {
            r = conn.call_at(&request, version) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(leader, "follower fetch failed: {e}");
                connection = None;
                pause(&mut targets, &mut stop).await;
                continue;
            }
        };
        let applying = current.clone();
        let outcome =
            tokio::task::spawn_blocking(move || apply_response(&applying, &response, version))
                .await;
        match outcome {
            Ok(all_failed) if all_failed => pause(&mut targets, &mut stop).await,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(leader, "applying a fetch response failed: {e}");
                pause(&mut targets, &mut stop).await;
            }
        }
    }
}

/// Waits out the backoff, or less when the targets change or the broker
/// stops.
async fn pause(targets: &mut watch::Receiver<Vec<Target>>, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(FETCH_BACKOFF) => {}
        _ = targets.changed() => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

async fn connect(broker: &Broker, leader: i32, wait: Duration) -> Result<Connection, String> {
    let image = broker.image();
    let Some(endpoint) = image.alive_endpoint(leader, broker.settings.inter_broker_listener())
    else {
        return Err(format!(
            "broker {leader} has no live endpoint in the metadata"
        ));
    };
    let addr = format!("{}:{}", endpoint.host, endpoint.port);
    let options = ConnectionOptions {
        client_id: format!("wharf-replica-{}", broker.settings.node_id),
        connect_timeout: Duration::from_secs(3),
        request_timeout: wait + Duration::from_secs(10),
        ..ConnectionOptions::default()
    };
    Connection::connect(&addr, options)
        .await
        .map_err(|e| e.to_string())
}

fn fetch_request(
    targets: &[(Target, Following)],
    node: i32,
    broker_epoch: i64,
    wait: Duration,
    version: i16,
) -> FetchRequest {
    let mut request = FetchRequest::default();
    if version >= 15 {
        let mut state = ReplicaState::default();
        state.replica_id = BrokerId(node);
        state.replica_epoch = broker_epoch;
        request.replica_state = state;
    } else {
        request.replica_id = BrokerId(node);
    }
    request.max_wait_ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
    request.min_bytes = 1;
    request.max_bytes = FETCH_BYTES;
    request.isolation_level = 0;
    request.session_id = 0;
    request.session_epoch = -1;
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (t, of) in targets {
        let (end, last_epoch) = t.partition.follower_position();
        let mut p = FetchPartition::default();
        p.partition = t.partition.index;
        p.current_leader_epoch = of.leader_epoch;
        p.fetch_offset = end;
        p.last_fetched_epoch = last_epoch;
        p.log_start_offset = t.partition.log_start_offset();
        p.partition_max_bytes = PARTITION_FETCH_BYTES;
        match topics.iter_mut().find(|ft| ft.topic_id == t.topic_id) {
            Some(ft) => ft.partitions.push(p),
            None => {
                let mut ft = FetchTopic::default();
                ft.topic = TopicName(StrBytes::from_string(t.topic.clone()));
                ft.topic_id = t.topic_id;
                ft.partitions.push(p);
                topics.push(ft);
            }
        }
    }
    request.topics = topics;
    request
}

/// Applies a leader's answer to the follower's logs; true when the caller
/// should back off (every partition came back with an error, or a
/// divergence did not resolve).
fn apply_response(targets: &[(Target, Following)], response: &FetchResponse, version: i16) -> bool {
    if response.error_code != 0 {
        tracing::debug!(
            code = response.error_code,
            "follower fetch refused as a whole"
        );
        return true;
    }
    let mut all_failed = true;
    let mut stuck = false;
    for topic in &response.responses {
        for pd in &topic.partitions {
            let target = targets.iter().find(|(t, _)| {
                t.partition.index == pd.partition_index
                    && if version >= 13 {
                        t.topic_id == topic.topic_id
                    } else {
                        t.topic == topic.topic.0.as_str()
                    }
            });
            let Some((target, of)) = target else { continue };
            let of = *of;
            let p = &target.partition;
            tracing::trace!(
                topic = %target.topic,
                partition = p.index,
                leader = of.leader,
                leader_epoch = of.leader_epoch,
                error = pd.error_code,
                bytes = pd.records.as_ref().map_or(0, Bytes::len),
                high_watermark = pd.high_watermark,
                diverging_epoch = pd.diverging_epoch.epoch,
                position = ?p.follower_position(),
                "follower fetch answer"
            );
            let stale = || {
                tracing::debug!(
                    topic = %target.topic,
                    partition = p.index,
                    leader = of.leader,
                    leader_epoch = of.leader_epoch,
                    "answer from a former leader ignored"
                );
            };
            match ResponseError::try_from_code(pd.error_code) {
                None => {
                    all_failed = false;
                    if pd.diverging_epoch.epoch >= 0 || pd.diverging_epoch.end_offset >= 0 {
                        let before = p.follower_position();
                        let truncated = p.truncate_diverging(
                            of,
                            pd.diverging_epoch.epoch,
                            pd.diverging_epoch.end_offset,
                        );
                        match truncated {
                            Ok(None) => stale(),
                            Ok(Some(end)) => {
                                tracing::info!(
                                    topic = %target.topic,
                                    partition = p.index,
                                    epoch = pd.diverging_epoch.epoch,
                                    leader_end = pd.diverging_epoch.end_offset,
                                    log_end = end,
                                    "log diverged from the leader's; truncated"
                                );
                                if p.follower_position() == before {
                                    // The same answer would come back at
                                    // once: back off rather than spin.
                                    tracing::warn!(
                                        topic = %target.topic,
                                        partition = p.index,
                                        epoch = pd.diverging_epoch.epoch,
                                        leader_end = pd.diverging_epoch.end_offset,
                                        "the leader reports a divergence truncation does not resolve"
                                    );
                                    stuck = true;
                                }
                            }
                            Err(e) => tracing::error!(
                                topic = %target.topic,
                                partition = p.index,
                                "truncating a diverging log failed: {e}"
                            ),
                        }
                        continue;
                    }
                    let records = pd.records.clone().unwrap_or_else(Bytes::new);
                    if !records.is_empty() {
                        let mut buf = records.to_vec();
                        match p.append_replicated(of, &mut buf) {
                            Ok(Some(_)) => {}
                            Ok(None) => {
                                stale();
                                continue;
                            }
                            Err(e) => {
                                tracing::error!(
                                    topic = %target.topic,
                                    partition = p.index,
                                    "appending the leader's records failed: {e}; this replica stops fetching if its log went offline"
                                );
                                continue;
                            }
                        }
                    }
                    match p.follow_leader(of, pd.high_watermark, pd.log_start_offset) {
                        Ok(true) => {}
                        Ok(false) => stale(),
                        Err(e) => tracing::warn!(
                            topic = %target.topic,
                            partition = p.index,
                            "taking the leader's log start failed: {e}"
                        ),
                    }
                }
                Some(ResponseError::OffsetOutOfRange) => {
                    all_failed = false;
                    let (end, _) = p.follower_position();
                    let result = if pd.log_start_offset > end {
                        p.restart_at(of, pd.log_start_offset)
                    } else {
                        // Past the leader's end: what the leader has
                        // committed is shared.
                        p.truncate_diverging(of, -1, pd.high_watermark.max(0))
                            .map(|end| end.is_some())
                    };
                    match result {
                        Ok(true) => tracing::warn!(
                            topic = %target.topic,
                            partition = p.index,
                            leader_log_start = pd.log_start_offset,
                            leader_high_watermark = pd.high_watermark,
                            "fetch offset out of the leader's range; log reset"
                        ),
                        Ok(false) => stale(),
                        Err(e) => tracing::error!(
                            topic = %target.topic,
                            partition = p.index,
                            "resetting the log failed: {e}"
                        ),
                    }
                }
                Some(e) => {
                    tracing::debug!(
                        topic = %target.topic,
                        partition = p.index,
                        "follower fetch: {e:?}"
                    );
                }
            }
        }
    }
    all_failed || stuck
}
