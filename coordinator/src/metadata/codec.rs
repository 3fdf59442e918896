//! Field-by-field encoding of each metadata record, in the order and with the
//! tags of Kafka's JSON schemas. [`super::records`] owns the frame around it.

use super::records::{AccessControlEntryRecord, RemoveAccessControlEntryRecord};
use super::records::{
    BrokerEndpoint, BrokerFeature, BrokerRegistrationChangeRecord, ConfigRecord,
    FeatureLevelRecord, FenceBrokerRecord, FencingChange, LeaderRecoveryState, MetadataRecord,
    PartitionChangeRecord, PartitionRecord, ProducerIdsRecord, RecordError, RegisterBrokerRecord,
    RemoveTopicRecord, TopicRecord, UnfenceBrokerRecord, UnregisterBrokerRecord, NO_LEADER_CHANGE,
};
use super::records::{RemoveUserScramCredentialRecord, UserScramCredentialRecord};
use super::wire::{Reader, TaggedFields, Writer};
use crate::acl::{AclBinding, Operation, PatternType, Permission, ResourceType};

pub(crate) fn write_body(w: &mut Writer, record: &MetadataRecord) {
    let mut tags = TaggedFields::default();
    match record {
        MetadataRecord::RegisterBroker(r) => {
            // Version 3.
            w.i32(r.broker_id);
            w.bool(r.is_migrating_zk_broker);
            w.uuid(&r.incarnation_id);
            w.i64(r.broker_epoch);
            w.array(&r.end_points, |w, e| {
                w.string(&e.name);
                w.string(&e.host);
                w.u16(e.port);
                w.i16(e.security_protocol);
                TaggedFields::default().write_to(w);
            });
            w.array(&r.features, |w, f| {
                w.string(&f.name);
                w.i16(f.min_supported_version);
                w.i16(f.max_supported_version);
                TaggedFields::default().write_to(w);
            });
            w.nullable_string(r.rack.as_deref());
            w.bool(r.fenced);
            w.bool(r.in_controlled_shutdown);
            if !r.log_dirs.is_empty() {
                tags.add(0, |t| t.uuids(&r.log_dirs));
            }
        }
        MetadataRecord::UnregisterBroker(r) => {
            w.i32(r.broker_id);
            w.i64(r.broker_epoch);
        }
        MetadataRecord::BrokerRegistrationChange(r) => {
            // Version 2.
            w.i32(r.broker_id);
            w.i64(r.broker_epoch);
            if r.fenced != FencingChange::None {
                tags.add(0, |t| t.i8(r.fenced.value()));
            }
            if r.in_controlled_shutdown {
                tags.add(1, |t| t.i8(1));
            }
            if !r.log_dirs.is_empty() {
                tags.add(2, |t| t.uuids(&r.log_dirs));
            }
        }
        MetadataRecord::FenceBroker(FenceBrokerRecord { id, epoch })
        | MetadataRecord::UnfenceBroker(UnfenceBrokerRecord { id, epoch }) => {
            w.i32(*id);
            w.i64(*epoch);
        }
        MetadataRecord::Topic(r) => {
            w.string(&r.name);
            w.uuid(&r.topic_id);
        }
        MetadataRecord::Partition(r) => {
            // Version 2.
            w.i32(r.partition_id);
            w.uuid(&r.topic_id);
            w.i32s(&r.replicas);
            w.i32s(&r.isr);
            w.i32s(&r.removing_replicas);
            w.i32s(&r.adding_replicas);
            w.i32(r.leader);
            w.i32(r.leader_epoch);
            w.i32(r.partition_epoch);
            w.uuids(&r.directories);
            if r.leader_recovery_state != LeaderRecoveryState::Recovered {
                tags.add(0, |t| t.i8(r.leader_recovery_state.value()));
            }
            if let Some(elr) = &r.eligible_leader_replicas {
                tags.add(1, |t| t.i32s(elr));
            }
            if let Some(last) = &r.last_known_elr {
                tags.add(2, |t| t.i32s(last));
            }
        }
        MetadataRecord::PartitionChange(r) => {
            // Version 2.
            w.i32(r.partition_id);
            w.uuid(&r.topic_id);
            let lists = [
                (0, &r.isr),
                (2, &r.replicas),
                (3, &r.removing_replicas),
                (4, &r.adding_replicas),
                (6, &r.eligible_leader_replicas),
                (7, &r.last_known_elr),
            ];
            for (tag, list) in lists {
                if let Some(list) = list {
                    tags.add(tag, |t| t.i32s(list));
                }
            }
            if r.leader != NO_LEADER_CHANGE {
                tags.add(1, |t| t.i32(r.leader));
            }
            if let Some(state) = r.leader_recovery_state {
                tags.add(5, |t| t.i8(state.value()));
            }
            if let Some(dirs) = &r.directories {
                tags.add(8, |t| t.uuids(dirs));
            }
        }
        MetadataRecord::RemoveTopic(r) => w.uuid(&r.topic_id),
        MetadataRecord::Config(r) => {
            w.i8(r.resource_type);
            w.string(&r.resource_name);
            w.string(&r.name);
            w.nullable_string(r.value.as_deref());
        }
        MetadataRecord::FeatureLevel(r) => {
            w.string(&r.name);
            w.i16(r.feature_level);
        }
        MetadataRecord::ProducerIds(r) => {
            w.i32(r.broker_id);
            w.i64(r.broker_epoch);
            w.i64(r.next_producer_id);
        }
        MetadataRecord::UserScramCredential(r) => {
            w.string(&r.name);
            w.i8(r.mechanism);
            w.bytes(&r.salt);
            w.bytes(&r.stored_key);
            w.bytes(&r.server_key);
            w.i32(r.iterations);
        }
        MetadataRecord::RemoveUserScramCredential(r) => {
            w.string(&r.name);
            w.i8(r.mechanism);
        }
        MetadataRecord::AccessControlEntry(r) => write_acl(w, r),
        MetadataRecord::RemoveAccessControlEntry(r) => w.uuid(&r.id),
        MetadataRecord::NoOp => {}
    }
    tags.write_to(w);
}

/// Reads the fields of record `api_key` at `version` (both already checked
/// against the versions Kafka defines).
pub(crate) fn read_body(
    r: &mut Reader<'_>,
    api_key: u32,
    version: u32,
) -> Result<MetadataRecord, RecordError> {
    let record = match api_key {
        0 => MetadataRecord::RegisterBroker(read_register_broker(r, version)?),
        1 => {
            let record = UnregisterBrokerRecord {
                broker_id: r.i32()?,
                broker_epoch: r.i64()?,
            };
            r.tagged_fields(|_, _| Ok(false))?;
            MetadataRecord::UnregisterBroker(record)
        }
        2 => {
            let record = TopicRecord {
                name: r.string("Name")?,
                topic_id: r.uuid()?,
            };
            r.tagged_fields(|_, _| Ok(false))?;
            MetadataRecord::Topic(record)
        }
        3 => MetadataRecord::Partition(read_partition(r, version)?),
        4 => {
            let record = ConfigRecord {
                resource_type: r.i8()?,
                resource_name: r.string("ResourceName")?,
                name: r.string("Name")?,
                value: r.nullable_string()?,
            };
            r.tagged_fields(|_, _| Ok(false))?;
            MetadataRecord::Config(record)
        }
        5 => MetadataRecord::PartitionChange(read_partition_change(r, version)?),
        7 | 8 => {
            let (id, epoch) = (r.i32()?, r.i64()?);
            r.tagged_fields(|_, _| Ok(false))?;
            if api_key == 7 {
                MetadataRecord::FenceBroker(FenceBrokerRecord { id, epoch })
            } else {
                MetadataRecord::UnfenceBroker(UnfenceBrokerRecord { id, epoch })
            }
        }
        9 => {
            let record = RemoveTopicRecord {
                topic_id: r.uuid()?,
            };
            r.tagged_fields(|_, _| Ok(false))?;
            MetadataRecord::RemoveTopic(record)
        }
        12 => {
            let record = FeatureLevelRecord {
                name: r.string("Name")?,
                feature_level: r.i16()?,
            };
            r.tagged_fields(|_, _| Ok(false))?;
            MetadataRecord::FeatureLevel(record)
        }
        15 => {
            let record = ProducerIdsRecord {
                broker_id: r.i32()?,
                broker_epoch: r.i64()?,
                next_producer_id: r.i64()?,
            };
            r.tagged_fields(|_, _| Ok(false))?;
            MetadataRecord::ProducerIds(record)
        }
        20 => {
            r.tagged_fields(|_, _| Ok(false))?;
            MetadataRecord::NoOp
        }
        17 => MetadataRecord::BrokerRegistrationChange(read_registration_change(r, version)?),
        11 => {
            let record = UserScramCredentialRecord {
                name: r.string("Name")?,
                mechanism: r.i8()?,
                salt: r.bytes("Salt")?,
                stored_key: r.bytes("StoredKey")?,
                server_key: r.bytes("ServerKey")?,
                iterations: r.i32()?,
            };
            r.tagged_fields(|_, _| Ok(false))?;
            MetadataRecord::UserScramCredential(record)
        }
        22 => {
            let record = RemoveUserScramCredentialRecord {
                name: r.string("Name")?,
                mechanism: r.i8()?,
            };
            r.tagged_fields(|_, _| Ok(false))?;
            MetadataRecord::RemoveUserScramCredential(record)
        }
        18 => MetadataRecord::AccessControlEntry(read_acl(r)?),
        19 => {
            let record = RemoveAccessControlEntryRecord { id: r.uuid()? };
            r.tagged_fields(|_, _| Ok(false))?;
            MetadataRecord::RemoveAccessControlEntry(record)
        }
        other => return Err(RecordError::UnknownApiKey(other)),
    };
    Ok(record)
}

fn read_register_broker(
    r: &mut Reader<'_>,
    version: u32,
) -> Result<RegisterBrokerRecord, RecordError> {
    let broker_id = r.i32()?;
    let is_migrating_zk_broker = if version >= 2 { r.bool()? } else { false };
    let incarnation_id = r.uuid()?;
    let broker_epoch = r.i64()?;
    // An endpoint is at least 2 + 2 + 2 + 1 bytes; a feature 1 + 4 + 1.
    let end_points = r.array_of("EndPoints", 7, |r| {
        let endpoint = BrokerEndpoint {
            name: r.string("Name")?,
            host: r.string("Host")?,
            port: r.u16()?,
            security_protocol: r.i16()?,
        };
        r.tagged_fields(|_, _| Ok(false))?;
        Ok(endpoint)
    })?;
    let features = r.array_of("Features", 6, |r| {
        let feature = BrokerFeature {
            name: r.string("Name")?,
            min_supported_version: r.i16()?,
            max_supported_version: r.i16()?,
        };
        r.tagged_fields(|_, _| Ok(false))?;
        Ok(feature)
    })?;
    let rack = r.nullable_string()?;
    let fenced = r.bool()?;
    let in_controlled_shutdown = if version >= 1 { r.bool()? } else { false };
    let mut log_dirs = Vec::new();
    r.tagged_fields(|tag, body| match tag {
        0 if version >= 3 => {
            log_dirs = body.uuids("LogDirs")?;
            Ok(true)
        }
        _ => Ok(false),
    })?;
    Ok(RegisterBrokerRecord {
        broker_id,
        is_migrating_zk_broker,
        incarnation_id,
        broker_epoch,
        end_points,
        features,
        rack,
        fenced,
        in_controlled_shutdown,
        log_dirs,
    })
}

fn read_registration_change(
    r: &mut Reader<'_>,
    version: u32,
) -> Result<BrokerRegistrationChangeRecord, RecordError> {
    let mut record = BrokerRegistrationChangeRecord {
        broker_id: r.i32()?,
        broker_epoch: r.i64()?,
        fenced: FencingChange::None,
        in_controlled_shutdown: false,
        log_dirs: Vec::new(),
    };
    r.tagged_fields(|tag, body| match tag {
        0 => {
            record.fenced = FencingChange::from_value(body.i8()?)?;
            Ok(true)
        }
        1 if version >= 1 => {
            record.in_controlled_shutdown = match body.i8()? {
                0 => false,
                1 => true,
                v => {
                    return Err(RecordError::InvalidValue {
                        field: "InControlledShutdown",
                        value: i64::from(v),
                    })
                }
            };
            Ok(true)
        }
        2 if version >= 2 => {
            record.log_dirs = body.uuids("LogDirs")?;
            Ok(true)
        }
        _ => Ok(false),
    })?;
    Ok(record)
}

fn read_partition(r: &mut Reader<'_>, version: u32) -> Result<PartitionRecord, RecordError> {
    let mut record = PartitionRecord {
        partition_id: r.i32()?,
        topic_id: r.uuid()?,
        replicas: r.i32s("Replicas")?,
        isr: r.i32s("Isr")?,
        removing_replicas: r.i32s("RemovingReplicas")?,
        adding_replicas: r.i32s("AddingReplicas")?,
        leader: r.i32()?,
        leader_recovery_state: LeaderRecoveryState::Recovered,
        leader_epoch: r.i32()?,
        partition_epoch: r.i32()?,
        directories: if version >= 1 {
            r.uuids("Directories")?
        } else {
            Vec::new()
        },
        eligible_leader_replicas: None,
        last_known_elr: None,
    };
    r.tagged_fields(|tag, body| match tag {
        0 => {
            record.leader_recovery_state = LeaderRecoveryState::from_value(body.i8()?)?;
            Ok(true)
        }
        1 if version >= 2 => {
            record.eligible_leader_replicas = body.nullable_i32s()?;
            Ok(true)
        }
        2 if version >= 2 => {
            record.last_known_elr = body.nullable_i32s()?;
            Ok(true)
        }
        _ => Ok(false),
    })?;
    Ok(record)
}

fn read_partition_change(
    r: &mut Reader<'_>,
    version: u32,
) -> Result<PartitionChangeRecord, RecordError> {
    let mut record = PartitionChangeRecord::new(uuid::Uuid::nil(), -1);
    record.partition_id = r.i32()?;
    record.topic_id = r.uuid()?;
    r.tagged_fields(|tag, body| {
        match tag {
            0 => record.isr = body.nullable_i32s()?,
            1 => record.leader = body.i32()?,
            2 => record.replicas = body.nullable_i32s()?,
            3 => record.removing_replicas = body.nullable_i32s()?,
            4 => record.adding_replicas = body.nullable_i32s()?,
            5 => {
                record.leader_recovery_state = match body.i8()? {
                    -1 => None,
                    v => Some(LeaderRecoveryState::from_value(v)?),
                }
            }
            6 if version >= 2 => record.eligible_leader_replicas = body.nullable_i32s()?,
            7 if version >= 2 => record.last_known_elr = body.nullable_i32s()?,
            8 if version >= 1 => record.directories = body.nullable_uuids()?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(record)
}

fn write_acl(w: &mut Writer, r: &AccessControlEntryRecord) {
    w.uuid(&r.id);
    w.i8(r.acl.resource_type.code());
    w.string(&r.acl.resource_name);
    w.i8(r.acl.pattern_type.code());
    w.string(&r.acl.principal);
    w.string(&r.acl.host);
    w.i8(r.acl.operation.code());
    w.i8(r.acl.permission.code());
}

fn read_acl(r: &mut Reader<'_>) -> Result<AccessControlEntryRecord, RecordError> {
    fn code<T>(field: &'static str, v: i8, f: fn(i8) -> Option<T>) -> Result<T, RecordError> {
        f(v).ok_or(RecordError::InvalidValue {
            field,
            value: i64::from(v),
        })
    }
    let id = r.uuid()?;
    let resource_type = code("ResourceType", r.i8()?, ResourceType::from_code)?;
    let resource_name = r.string("ResourceName")?;
    let pattern_type = code("PatternType", r.i8()?, PatternType::from_code)?;
    let principal = r.string("Principal")?;
    let host = r.string("Host")?;
    let operation = code("Operation", r.i8()?, Operation::from_code)?;
    let permission = code("PermissionType", r.i8()?, Permission::from_code)?;
    r.tagged_fields(|_, _| Ok(false))?;
    Ok(AccessControlEntryRecord {
        id,
        acl: AclBinding {
            resource_type,
            resource_name,
            pattern_type,
            principal,
            host,
            operation,
            permission,
        },
    })
}
