//! Following the cluster's metadata image: the broker's topic table is what
//! the image says this broker hosts.
//!
//! Every committed change to the metadata log yields a new image (see
//! `cluster::quorum`). [`Broker::apply_image`] compares it with the image
//! the broker acted on last and carries out the difference for this node
//! (`wharf_coordinator::metadata::delta::local_changes`): removes the logs
//! of partitions it no longer hosts, opens the logs of partitions it hosts
//! now, takes each partition's leader and leader epoch, and applies topic
//! config changes. Handlers read [`Broker::image`], the image applied last,
//! so what Metadata shows is what this broker has acted on.
//!
//! Each partition directory holds `partition.metadata` (Kafka's format:
//! `version: 0` and `topic_id: <base64 id>`): a directory left behind by a
//! deleted topic of the same name is recognised and emptied, never served
//! as the new topic's data.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use base64::Engine;
use uuid::Uuid;
use wharf_coordinator::metadata::delta::{local_changes, LocalPartition, Role};
use wharf_coordinator::metadata::{ConfigResource, ImageSnapshot, MetadataImage};

use super::{partition_dir, Broker, BrokerError, Partition, Topic};

/// New partitions of one topic in one image beyond this many are opened
/// beside the applier (see `apply_image`).
const INLINE_OPEN_LIMIT: usize = 64;
/// Threads opening one topic's new partitions.
const OPEN_THREADS: usize = 8;

/// The file naming the topic a partition directory belongs to.
pub const PARTITION_METADATA: &str = "partition.metadata";

/// Leadership this broker gained or lost in one applied image, for the
/// coordinators of the internal topics.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeadershipChanges {
    /// (topic, partition) this broker leads now and did not before.
    pub gained: Vec<(String, i32)>,
    /// (topic, partition) this broker led before and does not now.
    pub lost: Vec<(String, i32)>,
}

/// The leader and leader epoch a role names, for node `node`.
fn leader_of(node: i32, role: Role) -> (i32, i32) {
    match role {
        Role::Leader { leader_epoch } => (node, leader_epoch),
        Role::Follower {
            leader,
            leader_epoch,
        } => (leader, leader_epoch),
    }
}

/// Topic configs whose change runs a retention pass at once.
const RETENTION_CONFIGS: [&str; 3] = ["retention.ms", "retention.bytes", "cleanup.policy"];

impl Broker {
    /// The metadata image this broker acted on last.
    pub fn image(&self) -> ImageSnapshot {
        self.applied.borrow().clone()
    }

    /// A receiver that sees each image once the broker has acted on it.
    pub fn subscribe_applied(&self) -> tokio::sync::watch::Receiver<ImageSnapshot> {
        self.applied.subscribe()
    }

    /// Carries out what `new` changes for this broker (see the module
    /// documentation) and makes it the image handlers read. File work:
    /// call it from a blocking thread. Serialised: one image at a time.
    pub fn apply_image(self: &Arc<Self>, new: ImageSnapshot) -> LeadershipChanges {
        let _applying = self.applying.lock().unwrap_or_else(PoisonError::into_inner);
        let old = self.image();
        if Arc::ptr_eq(&old, &new) {
            return LeadershipChanges::default();
        }
        let node = self.settings.node_id;
        let changes = local_changes(&old, &new, node);
        let mut leadership = LeadershipChanges::default();
        let mut removed_any = false;

        for (id, name) in &changes.removed_topics {
            if let Some(topic) = self.topic_by_id(id) {
                for p in &topic.partitions {
                    if p.leader() == node {
                        leadership.lost.push((name.clone(), p.index));
                    }
                }
                self.unhost_topic(&topic);
                removed_any = true;
                tracing::info!(topic = %name, %id, "topic removed from this broker");
            }
        }
        let mut removed_partitions: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
        for (id, _, partition) in &changes.removed_partitions {
            removed_partitions.entry(*id).or_default().push(*partition);
        }
        for (id, indexes) in removed_partitions {
            if let Some(topic) = self.topic_by_id(&id) {
                let (gone, kept): (Vec<_>, Vec<_>) = topic
                    .partitions
                    .iter()
                    .cloned()
                    .partition(|p| indexes.contains(&p.index));
                for p in &gone {
                    if p.leader() == node {
                        leadership.lost.push((topic.name.to_string(), p.index));
                    }
                    let _ = p.close();
                }
                self.replace_topic(&topic, kept, topic.partition_count);
                for index in indexes {
                    self.remove_partition_dir(&topic.name, index);
                }
                removed_any = true;
            }
        }

        let mut added: BTreeMap<Uuid, Vec<&LocalPartition>> = BTreeMap::new();
        for p in &changes.added {
            added.entry(p.topic_id).or_default().push(p);
        }
        for (id, partitions) in added {
            let Some(image_topic) = new.topic(id) else {
                continue;
            };
            let configs = topic_configs(&new, &image_topic.name);
            let config = self.log_config(&configs);
            let wanted: Vec<(String, i32)> = partitions
                .iter()
                .map(|lp| (lp.topic.clone(), lp.partition))
                .collect();
            // The first image (start-up) is applied whole before serving.
            if wanted.len() > INLINE_OPEN_LIMIT && *self.ready.borrow() {
                // Seconds of file work: done beside the applier, so later
                // images (other clients' topics) are not held up.
                self.lock_opening().insert(id);
                let broker = self.clone();
                let spawned =
                    std::thread::Builder::new()
                        .name("wharf-open".into())
                        .spawn(move || {
                            let opened = broker.open_partitions(id, &wanted, &config);
                            let name = wanted.first().map(|w| w.0.clone()).unwrap_or_default();
                            broker.finish_opening(id, &name, opened);
                        });
                if let Err(e) = spawned {
                    tracing::error!("cannot start a thread to open partitions: {e}");
                    self.lock_opening().remove(&id);
                }
                continue;
            }
            let opened = self.open_partitions(id, &wanted, &config);
            leadership
                .gained
                .extend(self.host_partitions(&new, id, opened));
        }

        for lp in &changes.role_changes {
            let Some(topic) = self.topic_by_id(&lp.topic_id) else {
                continue;
            };
            let Some(partition) = topic.partition(lp.partition) else {
                continue;
            };
            let was_leader = partition.leader() == node;
            let (leader, _) = leader_of(node, lp.role);
            match (was_leader, leader == node) {
                (false, true) => leadership.gained.push((lp.topic.clone(), lp.partition)),
                (true, false) => leadership.lost.push((lp.topic.clone(), lp.partition)),
                _ => {}
            }
        }

        for (name, configs) in &changes.config_changes {
            if let Some(topic) = self.topic(name) {
                let log_config = self.log_config(configs);
                for partition in &topic.partitions {
                    partition.set_config(log_config.clone());
                }
                let before = topic.configs();
                let retention_changed = RETENTION_CONFIGS
                    .iter()
                    .any(|k| before.get(*k) != configs.get(*k));
                topic.set_configs(configs.clone());
                tracing::info!(topic = %name, configs = ?configs, "topic configs changed");
                if retention_changed {
                    // A pass now, not at the next periodic check (5 minutes
                    // by default): a lowered retention.ms shows at once.
                    self.retention_wake.notify_one();
                }
            }
        }

        // Leaders, epochs, replicas and ISR of every hosted partition.
        self.register_partitions(&new);

        // Partitions added elsewhere (CreatePartitions) change the count.
        for topic in self.topics() {
            let Some(image_topic) = new.topic(topic.id) else {
                continue;
            };
            let count = i32::try_from(image_topic.partitions.len()).unwrap_or(i32::MAX);
            if count != topic.partition_count {
                self.replace_topic(&topic, topic.partitions.clone(), count);
            }
        }

        if removed_any {
            if let Err(e) = self.write_log_start_checkpoint() {
                tracing::error!("{e}");
            }
        }
        self.applied.send_replace(new);
        leadership
    }

    /// Gives every hosted partition its registration in `image` (a no-op
    /// for those that did not change).
    fn register_partitions(&self, image: &MetadataImage) {
        let node = self.settings.node_id;
        for topic in self.topics() {
            let Some(image_topic) = image.topic(topic.id) else {
                continue;
            };
            let min_isr = self.min_insync_replicas(image, topic.id);
            for p in &topic.partitions {
                if let Some(registration) = image_topic.partitions.get(&p.index) {
                    p.set_registration(node, registration, min_isr);
                }
            }
        }
    }

    /// The topic's `min.insync.replicas` (its own setting, else the
    /// broker's).
    pub fn min_insync_replicas(&self, image: &MetadataImage, id: Uuid) -> usize {
        let overrides = image
            .topic(id)
            .map(|t| topic_configs(image, &t.name))
            .unwrap_or_default();
        self.settings
            .configs
            .effective_named("min.insync.replicas", &overrides)
            .parse::<usize>()
            .unwrap_or(1)
    }

    fn lock_opening(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<Uuid>> {
        self.opening.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this broker has the partitions `image` gives it of topic
    /// `id` open (or the image has no such topic).
    pub fn settled(&self, image: &MetadataImage, id: Uuid) -> bool {
        image.topic(id).is_some() && !self.lock_opening().contains(&id)
    }

    /// Opens (creating when new) the logs of `wanted` partitions of topic
    /// `id`, several at a time; those that fail are logged and left out.
    fn open_partitions(
        &self,
        id: Uuid,
        wanted: &[(String, i32)],
        config: &wharf_storage::LogConfig,
    ) -> Vec<Arc<Partition>> {
        let next = std::sync::atomic::AtomicUsize::new(0);
        let opened = Mutex::new(Vec::with_capacity(wanted.len()));
        let open_next = || loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some((topic, index)) = wanted.get(i) else {
                return;
            };
            let dir = partition_dir(&self.settings.data_dir, topic, *index);
            let partition = claim_dir(&dir, id).and_then(|()| {
                Partition::open(*index, &dir, config.clone()).map_err(|source| {
                    BrokerError::Storage {
                        context: format!("opening {}", dir.display()),
                        source,
                    }
                })
            });
            match partition {
                Ok(p) => opened
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Arc::new(p)),
                Err(e) => {
                    tracing::error!(%topic, partition = index, "cannot host this partition: {e}")
                }
            }
        };
        let threads = wanted.len().min(OPEN_THREADS);
        std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(open_next);
            }
            open_next();
        });
        opened.into_inner().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts opened partitions of topic `id` in the table with the
    /// leadership `image` gives them; returns those this broker leads.
    fn host_partitions(
        &self,
        image: &MetadataImage,
        id: Uuid,
        opened: Vec<Arc<Partition>>,
    ) -> Vec<(String, i32)> {
        let node = self.settings.node_id;
        let Some(image_topic) = image.topic(id) else {
            return Vec::new();
        };
        let mut gained = Vec::new();
        for p in &opened {
            if let Some(registration) = image_topic.partitions.get(&p.index) {
                p.set_registration(node, registration, self.min_insync_replicas(image, id));
                if registration.leader == node {
                    gained.push((image_topic.name.clone(), p.index));
                }
            }
        }
        let count = i32::try_from(image_topic.partitions.len()).unwrap_or(i32::MAX);
        match self.topic_by_id(&id) {
            Some(topic) => {
                let mut all = topic.partitions.clone();
                all.extend(opened);
                self.replace_topic(&topic, all, count);
            }
            None => {
                let hosted = opened.len();
                let mut opened = opened;
                opened.sort_by_key(|p| p.index);
                let topic = Topic {
                    name: image_topic.name.as_str().into(),
                    id,
                    partitions: opened,
                    partition_count: count,
                    configs: RwLock::new(topic_configs(image, &image_topic.name)),
                };
                let mut creations = self.lock_creations();
                self.topics
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(Arc::new(topic));
                creations.hosted = creations
                    .hosted
                    .saturating_add(u64::try_from(hosted).unwrap_or(0));
                tracing::info!(topic = %image_topic.name, %id, partitions = hosted, "hosting topic");
            }
        }
        gained
    }

    /// Ends a background opening: the partitions the image (as applied now)
    /// still gives this broker enter the table; the rest are removed.
    fn finish_opening(&self, id: Uuid, name: &str, opened: Vec<Arc<Partition>>) {
        let _applying = self.applying.lock().unwrap_or_else(PoisonError::into_inner);
        let image = self.image();
        let node = self.settings.node_id;
        let (keep, drop): (Vec<_>, Vec<_>) = opened.into_iter().partition(|p| {
            image
                .partition(id, p.index)
                .is_some_and(|r| r.replicas.contains(&node))
        });
        for p in &drop {
            let _ = p.close();
            self.remove_partition_dir(name, p.index);
        }
        let gained = self.host_partitions(&image, id, keep);
        self.lock_opening().remove(&id);
        self.load_gained(&LeadershipChanges {
            gained,
            lost: Vec::new(),
        });
        // Wakes callers waiting for this topic (see `settled`).
        self.applied.send_modify(|_| {});
    }

    /// Swaps `topic` in the table for a copy with `partitions` and `count`.
    fn replace_topic(&self, topic: &Topic, mut partitions: Vec<Arc<Partition>>, count: i32) {
        partitions.sort_by_key(|p| p.index);
        partitions.dedup_by_key(|p| p.index);
        let before = topic.partitions.len();
        let after = partitions.len();
        let replacement = Arc::new(Topic {
            name: topic.name.clone(),
            id: topic.id,
            partitions,
            partition_count: count,
            configs: RwLock::new(topic.configs()),
        });
        let mut creations = self.lock_creations();
        self.topics
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(replacement);
        creations.hosted = creations
            .hosted
            .saturating_sub(u64::try_from(before).unwrap_or(0))
            .saturating_add(u64::try_from(after).unwrap_or(0));
    }

    /// Forgets `topic` and removes its partitions' data.
    fn unhost_topic(&self, topic: &Topic) {
        {
            let mut creations = self.lock_creations();
            self.topics
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(topic);
            creations.hosted = creations
                .hosted
                .saturating_sub(u64::try_from(topic.partitions.len()).unwrap_or(0));
        }
        for p in &topic.partitions {
            let _ = p.close();
            self.remove_partition_dir(&topic.name, p.index);
        }
    }
}

/// The leader the metadata image names for a partition this broker does
/// not lead (KIP-951's `current_leader`), and where clients reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderHint {
    pub leader: i32,
    pub leader_epoch: i32,
    /// The leader's client endpoint: (host, port, rack); `None` when it is
    /// not alive.
    pub endpoint: Option<(String, i32, Option<String>)>,
}

impl Broker {
    /// For a partition this broker does not lead: `Some` with its leader
    /// when the image has the partition (the answer is then
    /// NOT_LEADER_OR_FOLLOWER), `None` when it does not exist.
    pub fn leader_hint(
        &self,
        listener: &str,
        name: Option<&str>,
        id: Option<Uuid>,
        partition: i32,
    ) -> Option<LeaderHint> {
        let image = self.image();
        let topic = match (name, id) {
            (Some(name), _) if !name.is_empty() => image.topic_by_name(name),
            (_, Some(id)) => image.topic(id),
            _ => None,
        }?;
        let p = topic.partitions.get(&partition)?;
        let endpoint = image.alive_endpoint(p.leader, listener).map(|e| {
            let rack = image.broker(p.leader).and_then(|b| b.rack.clone());
            (e.host.clone(), i32::from(e.port), rack)
        });
        Some(LeaderHint {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            endpoint,
        })
    }

    /// The error for partition `partition` of `topic` when this broker
    /// does not lead it: NOT_LEADER_OR_FOLLOWER when it exists in the
    /// cluster, else UNKNOWN_TOPIC_OR_PARTITION.
    pub fn not_led_error(&self, topic: &str, partition: i32) -> kafka_protocol::ResponseError {
        match self.leader_hint(
            self.settings.inter_broker_listener(),
            Some(topic),
            None,
            partition,
        ) {
            Some(_) => kafka_protocol::ResponseError::NotLeaderOrFollower,
            None => kafka_protocol::ResponseError::UnknownTopicOrPartition,
        }
    }

    /// Whether this broker leads `partition` now.
    pub fn leads(&self, partition: &Partition) -> bool {
        partition.leader() == self.settings.node_id
    }

    /// Why this broker cannot coordinate group `group` now, if it cannot:
    /// NOT_COORDINATOR when another broker leads the group's
    /// `__consumer_offsets` partition, COORDINATOR_NOT_AVAILABLE when the
    /// topic does not exist yet.
    pub fn group_coordinator_error(&self, group: &str) -> Option<kafka_protocol::ResponseError> {
        self.coordinator_error(wharf_coordinator::OFFSETS_TOPIC, group)
    }

    /// As [`Broker::group_coordinator_error`], for a transactional id and
    /// `__transaction_state`.
    pub fn txn_coordinator_error(&self, id: &str) -> Option<kafka_protocol::ResponseError> {
        self.coordinator_error(wharf_coordinator::txn::TRANSACTION_STATE_TOPIC, id)
    }

    fn coordinator_error(&self, topic: &str, key: &str) -> Option<kafka_protocol::ResponseError> {
        let image = self.image();
        let Some(t) = image.topic_by_name(topic) else {
            return Some(kafka_protocol::ResponseError::CoordinatorNotAvailable);
        };
        let count = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX);
        let partition = wharf_coordinator::partition_for(key, count);
        if self.coordinates(topic, partition) {
            None
        } else {
            Some(kafka_protocol::ResponseError::NotCoordinator)
        }
    }

    /// Whether partition `partition` of `topic` exists in the cluster.
    pub fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        self.image()
            .topic_by_name(topic)
            .is_some_and(|t| t.partitions.contains_key(&partition))
    }

    /// Whether this broker leads partition `partition` of `topic` (and so
    /// coordinates the groups or transactional ids that map to it).
    pub fn coordinates(&self, topic: &str, partition: i32) -> bool {
        self.topic(topic)
            .and_then(|t| t.partition(partition).map(|p| p.leader()))
            == Some(self.settings.node_id)
    }

    /// Replicas of `__consumer_offsets` partitions when it is created.
    pub fn offsets_replication_factor(&self) -> i16 {
        self.settings
            .offsets_replication_factor
            .unwrap_or_else(|| self.internal_replication_factor())
    }

    /// Replicas of `__transaction_state` partitions when it is created.
    pub fn txn_state_replication_factor(&self) -> i16 {
        self.settings
            .txn_state_replication_factor
            .unwrap_or_else(|| self.internal_replication_factor())
    }

    /// The smaller of 3 (Kafka's default) and the number of voters.
    fn internal_replication_factor(&self) -> i16 {
        let voters = self
            .cluster()
            .map_or(1, |node| node.quorum().voter_ids().len());
        i16::try_from(voters.clamp(1, 3)).unwrap_or(1)
    }

    /// Forgets the coordinators' state of the internal partitions this
    /// broker no longer leads: the new leader coordinates those keys.
    fn unload_lost(&self, changes: &LeadershipChanges) {
        let lost = |name: &str| -> Vec<i32> {
            changes
                .lost
                .iter()
                .filter(|(t, _)| t == name)
                .map(|(_, p)| *p)
                .collect()
        };
        let image = self.image();
        let count = |name: &str| {
            image
                .topic_by_name(name)
                .map_or(0, |t| i32::try_from(t.partitions.len()).unwrap_or(i32::MAX))
        };
        let offsets = lost(wharf_coordinator::OFFSETS_TOPIC);
        if !offsets.is_empty() {
            let n = count(wharf_coordinator::OFFSETS_TOPIC);
            let groups = self
                .groups
                .unload(|g| offsets.contains(&wharf_coordinator::partition_for(g, n)));
            tracing::info!(partitions = ?offsets, groups, "no longer coordinating these groups");
        }
        let states = lost(wharf_coordinator::txn::TRANSACTION_STATE_TOPIC);
        if !states.is_empty() {
            let n = count(wharf_coordinator::txn::TRANSACTION_STATE_TOPIC);
            let ids = self
                .txns
                .unload(|id| states.contains(&wharf_coordinator::partition_for(id, n)));
            tracing::info!(partitions = ?states, transactional_ids = ids, "no longer coordinating these transactions");
        }
    }

    /// Loads the coordinators' state from the internal partitions this
    /// broker has come to lead (once the coordinators have loaded at
    /// start; before, `load_groups` and `load_txns` read them all).
    pub fn load_gained(&self, changes: &LeadershipChanges) {
        self.unload_lost(changes);
        if !self.groups.is_loaded() || !self.txns.is_loaded() {
            return;
        }
        for (topic, index) in &changes.gained {
            let loaded = if topic == wharf_coordinator::OFFSETS_TOPIC {
                self.load_groups_partition(*index)
            } else if topic == wharf_coordinator::txn::TRANSACTION_STATE_TOPIC {
                self.load_txns_partition(*index)
            } else {
                continue;
            };
            match loaded {
                Ok(records) => {
                    tracing::debug!(%topic, partition = index, records, "now coordinating this partition's keys")
                }
                Err(e) => {
                    tracing::error!(%topic, partition = index, "could not load coordinator state: {e}")
                }
            }
        }
    }
}

/// How long a starting broker waits for its own registration to be active
/// in the image (its partitions led again) before it serves anyway.
const ACTIVE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Follows the quorum's images until `stop`: applies each one (on a
/// blocking thread), loads the coordinators once this broker is active in
/// the image (or after `ACTIVE_WAIT`), marks the broker ready, and from
/// then on loads the coordinator state of internal partitions it comes to
/// lead.
pub async fn follow(
    broker: Arc<Broker>,
    mut images: tokio::sync::watch::Receiver<ImageSnapshot>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let started = std::time::Instant::now();
    let mut loaded = false;
    loop {
        let image = images.borrow_and_update().clone();
        let applying = broker.clone();
        let changes = tokio::task::spawn_blocking(move || {
            let changes = applying.apply_image(image);
            applying.load_gained(&changes);
        })
        .await;
        if let Err(e) = changes {
            tracing::error!("applying a metadata image failed: {e}");
        }
        broker.sync_fetchers(&stop);
        if !loaded {
            // Serving starts once this process's own registration is active
            // (unfenced, its partitions led again), as a Kafka broker waits
            // to be unfenced.
            let incarnation = broker.cluster().map(|n| n.incarnation());
            let active = broker
                .image()
                .broker(broker.settings.node_id)
                .is_some_and(|b| Some(b.incarnation_id) == incarnation && b.is_active());
            if active || started.elapsed() >= ACTIVE_WAIT {
                if !active {
                    tracing::warn!("this broker is not active in the cluster's metadata yet; serving what it has");
                }
                let loading = broker.clone();
                let result = tokio::task::spawn_blocking(move || {
                    loading.opened();
                    loading.load_groups().and_then(|()| loading.load_txns())
                })
                .await;
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!("loading the coordinators failed: {e}"),
                    Err(e) => tracing::error!("loading the coordinators failed: {e}"),
                }
                loaded = true;
                broker.set_ready();
            }
        }
        let wait = if loaded {
            std::time::Duration::MAX
        } else {
            ACTIVE_WAIT.saturating_sub(started.elapsed())
        };
        tokio::select! {
            changed = images.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep(wait.min(std::time::Duration::from_secs(3600))) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

impl Broker {
    /// Removes partition directories whose `partition.metadata` names a
    /// topic id this broker does not host in the applied image: what is
    /// left of topics deleted (or moved away) while it was down. Called
    /// once the first image is applied; directories without that file are
    /// left alone.
    pub(super) fn remove_stray_partitions(&self) {
        let image = self.image();
        let node = self.settings.node_id;
        let Ok(entries) = std::fs::read_dir(&self.settings.data_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(text) = std::fs::read_to_string(path.join(PARTITION_METADATA)) else {
                continue;
            };
            let Some(id) = parse_partition_metadata(&text) else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().to_string();
            let index = name
                .rsplit_once('-')
                .and_then(|(_, i)| i.parse::<i32>().ok());
            let hosted = index.is_some_and(|i| {
                image
                    .partition(id, i)
                    .is_some_and(|p| p.replicas.contains(&node))
            });
            if hosted || self.lock_opening().contains(&id) {
                continue;
            }
            let (Some((topic, _)), Some(index)) = (name.rsplit_once('-'), index) else {
                continue;
            };
            tracing::info!(dir = %path.display(), %id, "removing the data of a partition this broker no longer hosts");
            self.remove_partition_dir(topic, index);
        }
    }
}

/// A topic's config overrides in `image`.
pub fn topic_configs(image: &MetadataImage, topic: &str) -> BTreeMap<String, String> {
    image
        .configs(&ConfigResource::Topic(topic.to_string()))
        .cloned()
        .unwrap_or_default()
}

/// Makes `dir` the directory of topic `id`'s partition: an existing
/// directory of another topic id (a deleted namesake's leftovers) is
/// emptied first; one without a readable `partition.metadata` (written by
/// a release before the cluster, or torn) is taken as it is. Writes
/// `partition.metadata` (not synced: a torn one is read as absent).
fn claim_dir(dir: &Path, id: Uuid) -> Result<(), BrokerError> {
    let path = dir.join(PARTITION_METADATA);
    match std::fs::read_to_string(&path) {
        Ok(text) => match parse_partition_metadata(&text) {
            Some(found) if found == id => return Ok(()),
            Some(found) => {
                tracing::warn!(
                    dir = %dir.display(),
                    %found,
                    expected = %id,
                    "partition directory belongs to another topic id (a deleted namesake's); emptying it"
                );
                std::fs::remove_dir_all(dir)
                    .map_err(|e| BrokerError::io("emptying a stale partition directory", dir, e))?;
            }
            // Torn by a crash while it was first written: the data is this
            // topic's (the file is written before any record).
            None => {}
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(BrokerError::io("reading", &path, e)),
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| BrokerError::io("creating a partition directory", dir, e))?;
    let text = format!(
        "version: 0\ntopic_id: {}\n",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
    );
    let tmp = dir.join(format!("{PARTITION_METADATA}.tmp"));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| BrokerError::io("writing", &path, e))
}

/// The topic id in a `partition.metadata` file's text.
fn parse_partition_metadata(text: &str) -> Option<Uuid> {
    let encoded = text
        .lines()
        .find_map(|l| l.strip_prefix("topic_id:"))?
        .trim();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()?;
    Uuid::from_slice(&bytes).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn partition_metadata_round_trips_and_claims_a_namesakes_directory() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t-0");
        let first = Uuid::new_v4();
        claim_dir(&p, first).unwrap();
        let text = std::fs::read_to_string(p.join(PARTITION_METADATA)).unwrap();
        assert_eq!(parse_partition_metadata(&text), Some(first));
        std::fs::write(p.join("00000000000000000000.log"), b"old").unwrap();
        // The same id keeps the data.
        claim_dir(&p, first).unwrap();
        assert!(p.join("00000000000000000000.log").exists());
        // Another id empties the directory first.
        let second = Uuid::new_v4();
        claim_dir(&p, second).unwrap();
        assert!(!p.join("00000000000000000000.log").exists());
        let text = std::fs::read_to_string(p.join(PARTITION_METADATA)).unwrap();
        assert_eq!(parse_partition_metadata(&text), Some(second));
    }
}
