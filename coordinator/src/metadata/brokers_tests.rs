#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::metadata::testkit::{apply_all, cluster, create_assigned, incarnation};

const CLUSTER: &str = "wharf-test";

fn config() -> ControllerConfig {
    ControllerConfig {
        cluster_id: CLUSTER.into(),
        ..ControllerConfig::default()
    }
}

fn request(id: i32, incarnation_id: Uuid) -> RegistrationRequest {
    RegistrationRequest {
        broker_id: id,
        cluster_id: CLUSTER.into(),
        incarnation_id,
        listeners: vec![BrokerEndpoint {
            name: "PLAINTEXT".into(),
            host: "h".into(),
            port: 9092,
            security_protocol: 0,
        }],
        features: vec![],
        rack: Some("r1".into()),
        log_dirs: vec![],
    }
}

fn beat(id: i32, epoch: i64, offset: i64) -> HeartbeatRequest {
    HeartbeatRequest {
        broker_id: id,
        broker_epoch: epoch,
        current_metadata_offset: offset,
        want_fence: false,
        want_shut_down: false,
    }
}

/// Registers broker `id` at log offset `offset` and applies the record.
fn register_at(
    image: &mut MetadataImage,
    sessions: &mut BrokerSessions,
    id: i32,
    offset: i64,
    now: i64,
) -> i64 {
    let (records, epoch) = register_broker(
        image,
        sessions,
        &config(),
        &request(id, Uuid::from_u128(7)),
        offset,
        now,
    )
    .unwrap();
    apply_all(image, &records);
    sessions.replayed(offset, &records[0]);
    epoch
}

/// A cluster whose brokers all heartbeat at `now` (offset 0) so their
/// sessions are known; broker `id` has epoch `100 + id`.
fn live(ids: &[i32], now: i64) -> (MetadataImage, BrokerSessions) {
    let image = cluster(ids);
    let mut sessions = BrokerSessions::new();
    for id in ids {
        sessions.replayed(
            0,
            &MetadataRecord::RegisterBroker(image.broker(*id).unwrap().to_record()),
        );
        heartbeat(
            &image,
            &mut sessions,
            &config(),
            &beat(*id, 100 + i64::from(*id), 0),
            now,
        )
        .unwrap();
    }
    (image, sessions)
}

#[test]
fn a_new_incarnation_registers_fenced_with_the_new_epoch() {
    let mut image = MetadataImage::new();
    let mut sessions = BrokerSessions::new();
    let epoch = register_at(&mut image, &mut sessions, 1, 17, 0);
    assert_eq!(epoch, 17);
    let b = image.broker(1).unwrap();
    assert!(b.fenced);
    assert_eq!((b.epoch, b.rack.as_deref()), (17, Some("r1")));
}

#[test]
fn the_same_incarnation_registering_again_keeps_its_epoch_and_state() {
    let (image, mut sessions) = live(&[1], 0);
    let (records, epoch) = register_broker(
        &image,
        &mut sessions,
        &config(),
        &request(1, incarnation(1)),
        500,
        10,
    )
    .unwrap();
    assert_eq!(epoch, 101);
    let MetadataRecord::RegisterBroker(r) = &records[0] else {
        panic!()
    };
    assert!(!r.fenced, "an unfenced broker stays unfenced");
}

#[test]
fn a_different_incarnation_of_a_live_broker_is_duplicate_broker_registration() {
    let (image, mut sessions) = live(&[1], 0);
    let err = register_broker(
        &image,
        &mut sessions,
        &config(),
        &request(1, Uuid::from_u128(9)),
        500,
        1000,
    )
    .unwrap_err();
    assert_eq!(err.code, ResponseError::DuplicateBrokerRegistration);
}

#[test]
fn a_different_incarnation_after_the_session_expired_replaces_the_registration() {
    let (image, mut sessions) = live(&[1], 0);
    let (records, epoch) = register_broker(
        &image,
        &mut sessions,
        &config(),
        &request(1, Uuid::from_u128(9)),
        500,
        9_001,
    )
    .unwrap();
    assert_eq!(epoch, 500);
    let MetadataRecord::RegisterBroker(r) = records.last().unwrap() else {
        panic!()
    };
    assert!(r.fenced);
}

#[test]
fn a_foreign_cluster_id_is_inconsistent_cluster_id() {
    let mut req = request(1, Uuid::from_u128(1));
    req.cluster_id = "other".into();
    let err = register_broker(
        &MetadataImage::new(),
        &mut BrokerSessions::new(),
        &config(),
        &req,
        1,
        0,
    )
    .unwrap_err();
    assert_eq!(err.code, ResponseError::InconsistentClusterId);
}

#[test]
fn a_heartbeat_unfences_once_the_broker_has_read_its_registration() {
    let mut image = MetadataImage::new();
    let mut sessions = BrokerSessions::new();
    let epoch = register_at(&mut image, &mut sessions, 1, 10, 0);
    let (records, reply) =
        heartbeat(&image, &mut sessions, &config(), &beat(1, epoch, 9), 1).unwrap();
    assert!(records.is_empty());
    assert!(reply.is_fenced && !reply.is_caught_up);
    let (records, reply) =
        heartbeat(&image, &mut sessions, &config(), &beat(1, epoch, 10), 2).unwrap();
    assert!(!reply.is_fenced && reply.is_caught_up);
    apply_all(&mut image, &records);
    assert!(!image.broker(1).unwrap().fenced);
}

#[test]
fn a_heartbeat_with_another_epoch_or_from_an_unknown_broker_is_stale_broker_epoch() {
    let (image, mut sessions) = live(&[1], 0);
    for req in [beat(1, 5, 0), beat(2, 102, 0)] {
        let err = heartbeat(&image, &mut sessions, &config(), &req, 1).unwrap_err();
        assert_eq!(err.code, ResponseError::StaleBrokerEpoch);
    }
}

#[test]
fn a_broker_silent_for_the_session_timeout_is_fenced_and_its_leaderships_move() {
    let (mut image, mut sessions) = live(&[1, 2, 3], 0);
    let t = create_assigned(&mut image, "t", &[&[1, 2, 3]]);
    for id in [2, 3] {
        heartbeat(
            &image,
            &mut sessions,
            &config(),
            &beat(id, 100 + i64::from(id), 0),
            5_000,
        )
        .unwrap();
    }
    assert!(fence_one_stale_broker(&image, &mut sessions, &config(), 9_000).is_none());
    let (id, records) = fence_one_stale_broker(&image, &mut sessions, &config(), 9_001).unwrap();
    assert_eq!(id, 1);
    apply_all(&mut image, &records);
    assert!(image.broker(1).unwrap().fenced);
    let p = image.partition(t, 0).unwrap();
    assert_eq!((p.leader, p.leader_epoch), (2, 1));
    assert!(fence_one_stale_broker(&image, &mut sessions, &config(), 9_001).is_none());
    assert!(fence_one_stale_broker(&image, &mut sessions, &config(), 14_001).is_some());
}

#[test]
fn controlled_shutdown_waits_for_leaderships_to_move_and_active_brokers_to_catch_up() {
    let (mut image, mut sessions) = live(&[1, 2], 0);
    let t = create_assigned(&mut image, "t", &[&[1, 2]]);
    let mut req = beat(1, 101, 0);
    req.want_shut_down = true;
    let (records, reply) = heartbeat(&image, &mut sessions, &config(), &req, 10).unwrap();
    assert!(reply.in_controlled_shutdown && !reply.should_shut_down);
    apply_all(&mut image, &records);
    assert_eq!(image.partition(t, 0).unwrap().leader, 2);
    sessions.controlled_shutdown_appended(1, 50);
    heartbeat(&image, &mut sessions, &config(), &beat(2, 102, 40), 20).unwrap();
    let (records, reply) = heartbeat(&image, &mut sessions, &config(), &req, 30).unwrap();
    assert!(records.is_empty());
    assert!(reply.in_controlled_shutdown && !reply.should_shut_down);
    heartbeat(&image, &mut sessions, &config(), &beat(2, 102, 50), 40).unwrap();
    let (records, reply) = heartbeat(&image, &mut sessions, &config(), &req, 50).unwrap();
    assert!(reply.should_shut_down && reply.is_fenced);
    apply_all(&mut image, &records);
    assert!(image.broker(1).unwrap().fenced);
    // It must register again: a caught-up heartbeat does not unfence it.
    let (records, reply) =
        heartbeat(&image, &mut sessions, &config(), &beat(1, 101, 1_000), 60).unwrap();
    assert!(records.is_empty() && reply.is_fenced);
}

#[test]
fn a_broker_leading_nothing_may_shut_down_at_once() {
    let (image, mut sessions) = live(&[1, 2], 0);
    let mut req = beat(1, 101, 0);
    req.want_shut_down = true;
    let (records, reply) = heartbeat(&image, &mut sessions, &config(), &req, 10).unwrap();
    assert!(reply.should_shut_down);
    assert!(matches!(
        records.last(),
        Some(MetadataRecord::BrokerRegistrationChange(r)) if r.fenced == FencingChange::Fence
    ));
}

#[test]
fn unregistering_moves_leaderships_then_removes_the_broker() {
    let (mut image, _) = live(&[1, 2], 0);
    let t = create_assigned(&mut image, "t", &[&[1, 2]]);
    let records = unregister_broker(&image, &config(), 1).unwrap();
    assert!(matches!(
        records.last(),
        Some(MetadataRecord::UnregisterBroker(_))
    ));
    apply_all(&mut image, &records);
    assert!(image.broker(1).is_none());
    assert_eq!(image.partition(t, 0).unwrap().leader, 2);
    assert_eq!(
        unregister_broker(&image, &config(), 1).unwrap_err().code,
        ResponseError::BrokerIdNotRegistered
    );
}

#[test]
fn a_new_incarnation_of_a_leader_first_leaves_every_isr() {
    let (mut image, mut sessions) = live(&[1, 2], 0);
    let t = create_assigned(&mut image, "t", &[&[1, 2]]);
    let u = create_assigned(&mut image, "u", &[&[1]]);
    let (records, _) = register_broker(
        &image,
        &mut sessions,
        &config(),
        &request(1, Uuid::from_u128(9)),
        500,
        9_001,
    )
    .unwrap();
    assert!(matches!(
        records.last(),
        Some(MetadataRecord::RegisterBroker(_))
    ));
    apply_all(&mut image, &records);
    let moved = image.partition(t, 0).unwrap();
    assert_eq!((moved.leader, moved.isr.clone()), (2, vec![2]));
    let offline = image.partition(u, 0).unwrap();
    assert_eq!((offline.leader, offline.isr.clone()), (-1, vec![1]));
}

#[test]
fn a_broker_not_supporting_a_finalized_feature_level_is_unsupported_version() {
    let mut image = MetadataImage::new();
    apply_all(
        &mut image,
        &[MetadataRecord::FeatureLevel(
            crate::metadata::records::FeatureLevelRecord {
                name: METADATA_VERSION_FEATURE.into(),
                feature_level: 20,
            },
        )],
    );
    let mut sessions = BrokerSessions::new();
    let mut req = request(1, Uuid::from_u128(1));
    // Naming no metadata.version means supporting Wharf's level only.
    let err = register_broker(&image, &mut sessions, &config(), &req, 1, 0).unwrap_err();
    assert_eq!(err.code, ResponseError::UnsupportedVersion);
    req.features = vec![BrokerFeature {
        name: METADATA_VERSION_FEATURE.into(),
        min_supported_version: 7,
        max_supported_version: 19,
    }];
    let err = register_broker(&image, &mut sessions, &config(), &req, 1, 0).unwrap_err();
    assert_eq!(err.code, ResponseError::UnsupportedVersion);
    req.features[0].max_supported_version = 25;
    // group.version is finalized at 1 by default: the broker must name it.
    let err = register_broker(&image, &mut sessions, &config(), &req, 1, 0).unwrap_err();
    assert_eq!(err.code, ResponseError::UnsupportedVersion);
    assert!(err.message.contains("group.version"), "{}", err.message);
    req.features.push(BrokerFeature {
        name: "group.version".into(),
        min_supported_version: 0,
        max_supported_version: 1,
    });
    let (records, _) = register_broker(&image, &mut sessions, &config(), &req, 1, 0).unwrap();
    let MetadataRecord::RegisterBroker(r) = records.last().unwrap() else {
        panic!()
    };
    assert_eq!(r.features, req.features);
}

#[test]
fn a_broker_naming_no_features_is_recorded_with_wharfs() {
    let mut sessions = BrokerSessions::new();
    let (records, _) = register_broker(
        &MetadataImage::new(),
        &mut sessions,
        &config(),
        &request(1, Uuid::from_u128(1)),
        1,
        0,
    )
    .unwrap();
    let MetadataRecord::RegisterBroker(r) = records.last().unwrap() else {
        panic!()
    };
    assert_eq!(r.features, crate::metadata::features::broker_features());
}
