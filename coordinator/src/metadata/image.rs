//! The metadata image: the cluster as the metadata log describes it after
//! some prefix of records (Kafka's `MetadataImage`: `ClusterImage`,
//! `TopicsImage`, `ConfigurationsImage`, `FeaturesImage`).
//!
//! It changes only through [`MetadataImage::apply`], one record at a time,
//! in log order, with the semantics of Kafka's replay. A record that does not
//! fit the image (a partition of an unknown topic, a broker change with a
//! stale epoch) is refused with an [`ImageError`] and leaves the image as it
//! was; Kafka's controller treats those as fatal, and so should the caller.
//!
//! Readers share an image through an `Arc` ([`ImageSnapshot`]). Topics are
//! held behind their own `Arc`s, so cloning an image to apply the next batch
//! copies maps of pointers, and a change to one partition copies one topic.

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use super::partition::PartitionRegistration;
use super::records::AccessControlEntryRecord;
use super::records::{
    BrokerEndpoint, BrokerFeature, BrokerRegistrationChangeRecord, ConfigRecord,
    FeatureLevelRecord, FencingChange, MetadataRecord, ProducerIdsRecord, RegisterBrokerRecord,
    TopicRecord, CONFIG_RESOURCE_BROKER, CONFIG_RESOURCE_TOPIC,
};
pub use super::scram::ScramCredential;
use crate::acl::authorizer::AclSet;

/// An image shared with readers: handlers hold one while they answer.
pub type ImageSnapshot = Arc<MetadataImage>;

/// A record that does not fit the image it is applied to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("no broker {0} is registered")]
    UnknownBroker(i32),
    #[error("broker {broker} has epoch {current}, the record names epoch {record}")]
    BrokerEpochMismatch {
        broker: i32,
        current: i64,
        record: i64,
    },
    #[error("topic name {0} is already taken")]
    DuplicateTopicName(String),
    #[error("topic id {0} is already taken")]
    DuplicateTopicId(Uuid),
    #[error("no topic has id {0}")]
    UnknownTopic(Uuid),
    #[error("topic {topic} has no partition {partition}")]
    UnknownPartition { topic: Uuid, partition: i32 },
    #[error("no ACL has id {0}")]
    UnknownAcl(Uuid),
    #[error("next producer id {record} is not above the current {current}")]
    ProducerIdsWentBack { current: i64, record: i64 },
    #[error("user {user} has no SCRAM credential of mechanism type {mechanism}")]
    UnknownScramCredential { user: String, mechanism: i8 },
}

/// A registered broker (Kafka's `BrokerRegistration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub id: i32,
    pub incarnation_id: Uuid,
    /// The broker epoch: Wharf, as Kafka, uses the metadata log offset of the
    /// registration that created this incarnation.
    pub epoch: i64,
    pub endpoints: Vec<BrokerEndpoint>,
    pub features: Vec<BrokerFeature>,
    pub rack: Option<String>,
    pub fenced: bool,
    pub in_controlled_shutdown: bool,
    pub is_migrating_zk_broker: bool,
    pub log_dirs: Vec<Uuid>,
}

impl BrokerRegistration {
    /// Unfenced and not shutting down: may lead and be in an ISR (Kafka's
    /// `ClusterControlManager.isActive`).
    pub fn is_active(&self) -> bool {
        !self.fenced && !self.in_controlled_shutdown
    }

    fn from_record(r: &RegisterBrokerRecord) -> Self {
        BrokerRegistration {
            id: r.broker_id,
            incarnation_id: r.incarnation_id,
            epoch: r.broker_epoch,
            endpoints: r.end_points.clone(),
            features: r.features.clone(),
            rack: r.rack.clone(),
            fenced: r.fenced,
            in_controlled_shutdown: r.in_controlled_shutdown,
            is_migrating_zk_broker: r.is_migrating_zk_broker,
            log_dirs: r.log_dirs.clone(),
        }
    }

    /// The record that registers this broker as it is now.
    pub fn to_record(&self) -> RegisterBrokerRecord {
        RegisterBrokerRecord {
            broker_id: self.id,
            is_migrating_zk_broker: self.is_migrating_zk_broker,
            incarnation_id: self.incarnation_id,
            broker_epoch: self.epoch,
            end_points: self.endpoints.clone(),
            features: self.features.clone(),
            rack: self.rack.clone(),
            fenced: self.fenced,
            in_controlled_shutdown: self.in_controlled_shutdown,
            log_dirs: self.log_dirs.clone(),
        }
    }
}

/// A topic and its partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub partitions: BTreeMap<i32, PartitionRegistration>,
}

/// What a config applies to (Kafka's `ConfigResource`, for the two types
/// Wharf keeps).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigResource {
    Topic(String),
    /// A broker id as text, or "" for the cluster-wide broker default.
    Broker(String),
    /// A resource type Wharf does not interpret, kept as it came.
    Other(i8, String),
}

impl ConfigResource {
    fn from_wire(resource_type: i8, name: &str) -> Self {
        match resource_type {
            CONFIG_RESOURCE_TOPIC => ConfigResource::Topic(name.to_owned()),
            CONFIG_RESOURCE_BROKER => ConfigResource::Broker(name.to_owned()),
            other => ConfigResource::Other(other, name.to_owned()),
        }
    }

    fn to_wire(&self) -> (i8, &str) {
        match self {
            ConfigResource::Topic(name) => (CONFIG_RESOURCE_TOPIC, name),
            ConfigResource::Broker(name) => (CONFIG_RESOURCE_BROKER, name),
            ConfigResource::Other(t, name) => (*t, name),
        }
    }
}

/// The cluster's metadata after some prefix of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataImage {
    brokers: BTreeMap<i32, BrokerRegistration>,
    topics: BTreeMap<Uuid, Arc<TopicImage>>,
    topic_ids: BTreeMap<String, Uuid>,
    configs: BTreeMap<ConfigResource, BTreeMap<String, String>>,
    features: BTreeMap<String, i16>,
    /// The first producer id not yet handed out, -1 before any block.
    next_producer_id: i64,
    /// SCRAM credentials by user, then mechanism type.
    scram: BTreeMap<String, BTreeMap<i8, ScramCredential>>,
    /// The ACLs, behind an `Arc` so cloning the image stays cheap.
    acls: Arc<AclSet>,
}

impl Default for MetadataImage {
    fn default() -> Self {
        MetadataImage {
            brokers: BTreeMap::new(),
            topics: BTreeMap::new(),
            topic_ids: BTreeMap::new(),
            configs: BTreeMap::new(),
            features: BTreeMap::new(),
            next_producer_id: -1,
            scram: BTreeMap::new(),
            acls: Arc::default(),
        }
    }
}

impl MetadataImage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one record, in log order. On error the image is unchanged.
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), ImageError> {
        match record {
            MetadataRecord::RegisterBroker(r) => {
                self.brokers
                    .insert(r.broker_id, BrokerRegistration::from_record(r));
            }
            MetadataRecord::UnregisterBroker(r) => {
                self.broker_at_epoch(r.broker_id, r.broker_epoch)?;
                self.brokers.remove(&r.broker_id);
            }
            MetadataRecord::FenceBroker(r) => {
                self.broker_at_epoch(r.id, r.epoch)?.fenced = true;
            }
            MetadataRecord::UnfenceBroker(r) => {
                self.broker_at_epoch(r.id, r.epoch)?.fenced = false;
            }
            MetadataRecord::BrokerRegistrationChange(r) => self.change_broker(r)?,
            MetadataRecord::Topic(r) => self.add_topic(r)?,
            MetadataRecord::Partition(r) => {
                let topic = self.topic_mut(r.topic_id)?;
                topic
                    .partitions
                    .insert(r.partition_id, PartitionRegistration::from_record(r));
            }
            MetadataRecord::PartitionChange(r) => {
                let topic = self
                    .topics
                    .get(&r.topic_id)
                    .ok_or(ImageError::UnknownTopic(r.topic_id))?;
                let merged = topic
                    .partitions
                    .get(&r.partition_id)
                    .ok_or(ImageError::UnknownPartition {
                        topic: r.topic_id,
                        partition: r.partition_id,
                    })?
                    .merge(r);
                self.topic_mut(r.topic_id)?
                    .partitions
                    .insert(r.partition_id, merged);
            }
            MetadataRecord::RemoveTopic(r) => {
                let topic = self
                    .topics
                    .remove(&r.topic_id)
                    .ok_or(ImageError::UnknownTopic(r.topic_id))?;
                self.topic_ids.remove(&topic.name);
                self.configs
                    .remove(&ConfigResource::Topic(topic.name.clone()));
            }
            MetadataRecord::Config(r) => self.set_config(r),
            // Level 0 is kept: an explicit 0, not the default level (see
            // `features`).
            MetadataRecord::FeatureLevel(r) => {
                self.features.insert(r.name.clone(), r.feature_level);
            }
            MetadataRecord::ProducerIds(r) => {
                if self.next_producer_id >= 0 && r.next_producer_id <= self.next_producer_id {
                    return Err(ImageError::ProducerIdsWentBack {
                        current: self.next_producer_id,
                        record: r.next_producer_id,
                    });
                }
                self.next_producer_id = r.next_producer_id;
            }
            MetadataRecord::UserScramCredential(r) => {
                self.scram
                    .entry(r.name.clone())
                    .or_default()
                    .insert(r.mechanism, ScramCredential::of_record(r));
            }
            MetadataRecord::RemoveUserScramCredential(r) => {
                let user = self.scram.get_mut(&r.name);
                if user.and_then(|m| m.remove(&r.mechanism)).is_none() {
                    return Err(ImageError::UnknownScramCredential {
                        user: r.name.clone(),
                        mechanism: r.mechanism,
                    });
                }
                if self.scram.get(&r.name).is_some_and(BTreeMap::is_empty) {
                    self.scram.remove(&r.name);
                }
            }
            MetadataRecord::AccessControlEntry(r) => {
                Arc::make_mut(&mut self.acls).insert(r.id, r.acl.clone());
            }
            MetadataRecord::RemoveAccessControlEntry(r) => {
                if self.acls.get(&r.id).is_none() {
                    return Err(ImageError::UnknownAcl(r.id));
                }
                Arc::make_mut(&mut self.acls).remove(&r.id);
            }
            MetadataRecord::NoOp => {}
        }
        Ok(())
    }

    fn broker_at_epoch(
        &mut self,
        id: i32,
        epoch: i64,
    ) -> Result<&mut BrokerRegistration, ImageError> {
        let broker = self
            .brokers
            .get_mut(&id)
            .ok_or(ImageError::UnknownBroker(id))?;
        if broker.epoch != epoch {
            return Err(ImageError::BrokerEpochMismatch {
                broker: id,
                current: broker.epoch,
                record: epoch,
            });
        }
        Ok(broker)
    }

    fn change_broker(&mut self, r: &BrokerRegistrationChangeRecord) -> Result<(), ImageError> {
        let broker = self.broker_at_epoch(r.broker_id, r.broker_epoch)?;
        match r.fenced {
            FencingChange::Fence => broker.fenced = true,
            FencingChange::Unfence => broker.fenced = false,
            FencingChange::None => {}
        }
        if r.in_controlled_shutdown {
            broker.in_controlled_shutdown = true;
        }
        if !r.log_dirs.is_empty() {
            broker.log_dirs = r.log_dirs.clone();
        }
        Ok(())
    }

    fn add_topic(&mut self, r: &TopicRecord) -> Result<(), ImageError> {
        if self.topic_ids.contains_key(&r.name) {
            return Err(ImageError::DuplicateTopicName(r.name.clone()));
        }
        if self.topics.contains_key(&r.topic_id) {
            return Err(ImageError::DuplicateTopicId(r.topic_id));
        }
        self.topic_ids.insert(r.name.clone(), r.topic_id);
        self.topics.insert(
            r.topic_id,
            Arc::new(TopicImage {
                name: r.name.clone(),
                id: r.topic_id,
                partitions: BTreeMap::new(),
            }),
        );
        Ok(())
    }

    fn topic_mut(&mut self, id: Uuid) -> Result<&mut TopicImage, ImageError> {
        self.topics
            .get_mut(&id)
            .map(Arc::make_mut)
            .ok_or(ImageError::UnknownTopic(id))
    }

    fn set_config(&mut self, r: &ConfigRecord) {
        let resource = ConfigResource::from_wire(r.resource_type, &r.resource_name);
        match &r.value {
            Some(value) => {
                self.configs
                    .entry(resource)
                    .or_default()
                    .insert(r.name.clone(), value.clone());
            }
            None => {
                if let Some(entries) = self.configs.get_mut(&resource) {
                    entries.remove(&r.name);
                    if entries.is_empty() {
                        self.configs.remove(&resource);
                    }
                }
            }
        }
    }

    /// Records that rebuild this image from an empty one: feature levels,
    /// brokers, topics with their partitions, configs, then the producer id
    /// block.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        for (name, level) in &self.features {
            out.push(MetadataRecord::FeatureLevel(FeatureLevelRecord {
                name: name.clone(),
                feature_level: *level,
            }));
        }
        for broker in self.brokers.values() {
            out.push(MetadataRecord::RegisterBroker(broker.to_record()));
        }
        for topic in self.topics.values() {
            out.push(MetadataRecord::Topic(TopicRecord {
                name: topic.name.clone(),
                topic_id: topic.id,
            }));
            for (index, partition) in &topic.partitions {
                out.push(MetadataRecord::Partition(
                    partition.to_record(topic.id, *index),
                ));
            }
        }
        for (resource, entries) in &self.configs {
            let (resource_type, resource_name) = resource.to_wire();
            for (name, value) in entries {
                out.push(MetadataRecord::Config(ConfigRecord {
                    resource_type,
                    resource_name: resource_name.to_owned(),
                    name: name.clone(),
                    value: Some(value.clone()),
                }));
            }
        }
        for (user, mechanisms) in &self.scram {
            for (mechanism, credential) in mechanisms {
                out.push(MetadataRecord::UserScramCredential(
                    credential.to_record(user, *mechanism),
                ));
            }
        }
        for (id, acl) in self.acls.iter() {
            out.push(MetadataRecord::AccessControlEntry(
                AccessControlEntryRecord {
                    id: *id,
                    acl: acl.clone(),
                },
            ));
        }
        if self.next_producer_id >= 0 {
            out.push(MetadataRecord::ProducerIds(ProducerIdsRecord {
                broker_id: -1,
                broker_epoch: -1,
                next_producer_id: self.next_producer_id,
            }));
        }
        out
    }

    pub fn broker(&self, id: i32) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }

    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values()
    }

    /// Brokers clients may be sent to: unfenced ones, including those in
    /// controlled shutdown (Kafka's `getAliveBrokerNodes`).
    pub fn alive_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    /// The endpoint of an alive broker on `listener`.
    pub fn alive_endpoint(&self, id: i32, listener: &str) -> Option<&BrokerEndpoint> {
        self.brokers
            .get(&id)
            .filter(|b| !b.fenced)?
            .endpoints
            .iter()
            .find(|e| e.name == listener)
    }

    /// A partition's replicas that clients cannot reach on `listener`:
    /// unregistered, fenced, or without that listener (the Metadata
    /// response's `offline_replicas`, as Kafka's `getOfflineReplicas`
    /// computes them, log directories aside).
    pub fn offline_replicas(&self, partition: &PartitionRegistration, listener: &str) -> Vec<i32> {
        partition
            .replicas
            .iter()
            .copied()
            .filter(|r| self.alive_endpoint(*r, listener).is_none())
            .collect()
    }

    /// True when the broker is registered, unfenced and not shutting down.
    pub fn is_active(&self, id: i32) -> bool {
        self.brokers
            .get(&id)
            .is_some_and(BrokerRegistration::is_active)
    }

    pub fn topic(&self, id: Uuid) -> Option<&TopicImage> {
        self.topics.get(&id).map(AsRef::as_ref)
    }

    pub fn topic_by_name(&self, name: &str) -> Option<&TopicImage> {
        self.topic_ids.get(name).and_then(|id| self.topic(*id))
    }

    pub fn topic_id(&self, name: &str) -> Option<Uuid> {
        self.topic_ids.get(name).copied()
    }

    /// Topics in id order.
    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> {
        self.topics.values().map(AsRef::as_ref)
    }

    pub fn partition(&self, topic: Uuid, partition: i32) -> Option<&PartitionRegistration> {
        self.topic(topic)?.partitions.get(&partition)
    }

    /// Every partition, as (topic id, partition index, registration).
    pub fn partitions(&self) -> impl Iterator<Item = (Uuid, i32, &PartitionRegistration)> {
        self.topics()
            .flat_map(|t| t.partitions.iter().map(move |(index, p)| (t.id, *index, p)))
    }

    /// The partitions broker `id` leads.
    pub fn partitions_led_by(&self, id: i32) -> Vec<(Uuid, i32)> {
        self.partitions()
            .filter(|(_, _, p)| p.leader == id)
            .map(|(t, i, _)| (t, i))
            .collect()
    }

    /// The partitions broker `id` is a replica of but does not lead.
    pub fn partitions_followed_by(&self, id: i32) -> Vec<(Uuid, i32)> {
        self.partitions()
            .filter(|(_, _, p)| p.leader != id && p.replicas.contains(&id))
            .map(|(t, i, _)| (t, i))
            .collect()
    }

    /// The config overrides set on a resource.
    pub fn configs(&self, resource: &ConfigResource) -> Option<&BTreeMap<String, String>> {
        self.configs.get(resource)
    }

    /// One config override of a topic.
    pub fn topic_config(&self, topic: &str, key: &str) -> Option<&str> {
        self.configs
            .get(&ConfigResource::Topic(topic.to_owned()))
            .and_then(|c| c.get(key))
            .map(String::as_str)
    }

    /// User `user`'s SCRAM credential for mechanism type `mechanism`.
    pub fn scram_credential(&self, user: &str, mechanism: i8) -> Option<&ScramCredential> {
        self.scram.get(user)?.get(&mechanism)
    }

    /// Every user with a SCRAM credential, and their credentials by
    /// mechanism type.
    pub fn scram_users(&self) -> impl Iterator<Item = (&str, &BTreeMap<i8, ScramCredential>)> {
        self.scram.iter().map(|(user, m)| (user.as_str(), m))
    }

    pub fn feature_level(&self, name: &str) -> Option<i16> {
        self.features.get(name).copied()
    }

    /// Feature levels recorded, by name (`features::finalized` adds the
    /// defaults of features with no record).
    pub fn features(&self) -> impl Iterator<Item = (&str, i16)> {
        self.features.iter().map(|(n, l)| (n.as_str(), *l))
    }

    /// The first producer id not yet handed out (-1 before any block).
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// The cluster's ACLs.
    pub fn acls(&self) -> &AclSet {
        &self.acls
    }
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
