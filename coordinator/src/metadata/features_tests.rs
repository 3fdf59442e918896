#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::metadata::records::RegisterBrokerRecord;

/// A table with a feature that can move: `test.version` 0..=2, default 1.
const TABLE: &[Feature] = &[
    SUPPORTED[0],
    Feature {
        name: "test.version",
        min: 0,
        max: 2,
        default: 1,
    },
];

fn update(name: &str, level: i16, upgrade_type: UpgradeType) -> FeatureUpdate {
    FeatureUpdate {
        name: name.into(),
        level,
        upgrade_type,
    }
}

fn level_record(name: &str, level: i16) -> MetadataRecord {
    MetadataRecord::FeatureLevel(FeatureLevelRecord {
        name: name.into(),
        feature_level: level,
    })
}

fn with_broker(features: Vec<BrokerFeature>) -> MetadataImage {
    let mut image = MetadataImage::new();
    let record = RegisterBrokerRecord {
        broker_id: 1,
        is_migrating_zk_broker: false,
        incarnation_id: uuid::Uuid::from_u128(1),
        broker_epoch: 1,
        end_points: Vec::new(),
        features,
        rack: None,
        fenced: false,
        in_controlled_shutdown: false,
        log_dirs: Vec::new(),
    };
    image
        .apply(&MetadataRecord::RegisterBroker(record))
        .unwrap();
    image
}

fn code(result: Result<Vec<MetadataRecord>, ControllerError>) -> ResponseError {
    result.unwrap_err().code
}

#[test]
fn the_test_table_starts_with_metadata_version() {
    assert_eq!(TABLE[0].name, METADATA_VERSION);
}

#[test]
fn an_empty_image_finalizes_the_defaults_above_zero() {
    let image = MetadataImage::new();
    assert_eq!(
        finalized(&image),
        vec![
            (GROUP_VERSION.to_owned(), 1),
            (METADATA_VERSION.to_owned(), METADATA_VERSION_LEVEL)
        ]
    );
    assert_eq!(finalized_level(&image, "transaction.version"), 0);
    assert_eq!(finalized_level(&image, "no.such.feature"), 0);
}

#[test]
fn a_recorded_level_overrides_the_default_and_a_recorded_zero_stays_zero() {
    let mut image = MetadataImage::new();
    image.apply(&level_record("share.version", 1)).unwrap();
    image.apply(&level_record("unknown.version", 3)).unwrap();
    assert_eq!(
        finalized(&image),
        vec![
            (GROUP_VERSION.to_owned(), 1),
            (METADATA_VERSION.to_owned(), METADATA_VERSION_LEVEL),
            ("share.version".to_owned(), 1),
            ("unknown.version".to_owned(), 3),
        ]
    );
    image.apply(&level_record(GROUP_VERSION, 0)).unwrap();
    assert_eq!(finalized_level(&image, GROUP_VERSION), 0);
    assert!(!finalized(&image).iter().any(|(n, _)| n == GROUP_VERSION));
}

#[test]
fn brokers_register_every_feature_wharf_knows() {
    let named = broker_features();
    assert_eq!(named.len(), SUPPORTED.len());
    assert!(named.iter().any(|f| f.name == METADATA_VERSION
        && f.min_supported_version == METADATA_VERSION_LEVEL
        && f.max_supported_version == METADATA_VERSION_LEVEL));
}

#[test]
fn upgrades_and_downgrades_follow_the_upgrade_type() {
    let image = MetadataImage::new();
    // Default 1: up to 2 is an upgrade, down to 0 needs a downgrade type.
    let records = decide(
        &image,
        &[update("test.version", 2, UpgradeType::Upgrade)],
        TABLE,
    )
    .unwrap();
    assert_eq!(records, vec![level_record("test.version", 2)]);
    assert_eq!(
        code(decide(
            &image,
            &[update("test.version", 0, UpgradeType::Upgrade)],
            TABLE
        )),
        ResponseError::InvalidUpdateVersion
    );
    for kind in [UpgradeType::SafeDowngrade, UpgradeType::UnsafeDowngrade] {
        let records = decide(&image, &[update("test.version", 0, kind)], TABLE).unwrap();
        assert_eq!(records, vec![level_record("test.version", 0)]);
    }
    // A downgrade type naming a higher level is refused.
    assert_eq!(
        code(decide(
            &image,
            &[update("test.version", 2, UpgradeType::SafeDowngrade)],
            TABLE
        )),
        ResponseError::InvalidUpdateVersion
    );
    // The current level: nothing to record.
    assert!(decide(
        &image,
        &[update("test.version", 1, UpgradeType::Upgrade)],
        TABLE
    )
    .unwrap()
    .is_empty());
}

#[test]
fn bad_updates_are_invalid_update_version_and_refuse_the_whole_request() {
    let image = MetadataImage::new();
    let bad = [
        update("no.such.feature", 1, UpgradeType::Upgrade),
        update("test.version", 3, UpgradeType::Upgrade),
        update("test.version", -1, UpgradeType::SafeDowngrade),
        update("test.version", 2, UpgradeType::Unknown(9)),
        update(METADATA_VERSION, 21, UpgradeType::UnsafeDowngrade),
    ];
    for one in bad {
        let err = decide(
            &image,
            &[update("test.version", 2, UpgradeType::Upgrade), one.clone()],
            TABLE,
        )
        .unwrap_err();
        assert_eq!(err.code, ResponseError::InvalidUpdateVersion, "{one:?}");
        assert!(
            err.message.starts_with(&format!(
                "Invalid update version {} for feature {}.",
                one.level, one.name
            )),
            "{}",
            err.message
        );
    }
    // The same feature twice.
    assert_eq!(
        code(decide(
            &image,
            &[
                update("test.version", 2, UpgradeType::Upgrade),
                update("test.version", 2, UpgradeType::Upgrade)
            ],
            TABLE
        )),
        ResponseError::InvalidUpdateVersion
    );
}

#[test]
fn every_registered_broker_must_support_the_new_level() {
    let narrow = with_broker(vec![BrokerFeature {
        name: "test.version".into(),
        min_supported_version: 0,
        max_supported_version: 1,
    }]);
    let err = decide(
        &narrow,
        &[update("test.version", 2, UpgradeType::Upgrade)],
        TABLE,
    )
    .unwrap_err();
    assert_eq!(err.code, ResponseError::InvalidUpdateVersion);
    assert!(
        err.message.contains("Broker 1 only supports versions 0-1"),
        "{}",
        err.message
    );
    // A broker naming no features (registered before brokers named them)
    // supports level 0 only, and metadata.version at Wharf's level.
    let silent = with_broker(Vec::new());
    assert!(decide(
        &silent,
        &[update("test.version", 2, UpgradeType::Upgrade)],
        TABLE
    )
    .is_err());
    assert!(decide(
        &silent,
        &[update(
            METADATA_VERSION,
            METADATA_VERSION_LEVEL,
            UpgradeType::Upgrade
        )],
        TABLE
    )
    .unwrap()
    .is_empty());
}

#[test]
fn the_real_table_refuses_features_wharf_runs_only_at_zero() {
    let image = MetadataImage::new();
    for name in ["transaction.version", "share.version", "kraft.version"] {
        assert_eq!(
            code(update_features(
                &image,
                &[update(name, 1, UpgradeType::Upgrade)]
            )),
            ResponseError::InvalidUpdateVersion,
            "{name}"
        );
    }
}
