//! Feature flags (KIP-584): the levels of each feature a Wharf node
//! supports, the finalized level the cluster runs at, and the controller's
//! UpdateFeatures decision (Kafka's `FeatureControlManager`).
//!
//! # Where Wharf departs from Kafka
//!
//! Kafka writes a new cluster's levels as FeatureLevelRecords when it
//! formats storage (`metadata.version`, `group.version`, ...). Wharf writes
//! none at bootstrap: a feature with no record in the image runs at its
//! [`Feature::default`] level, so a cluster made by any Wharf runs at this
//! Wharf's defaults. For the same reason a record of level 0 stays in the
//! image as an explicit 0 (Kafka removes the feature, which for Kafka is the
//! same thing).
//!
//! `metadata.version` is supported at one level only, Kafka 4.1's
//! (`4.1-IV1`, whose record versions Wharf writes): Wharf keeps no code for
//! older metadata formats, so neither upgrades nor downgrades of it exist.

use kafka_protocol::ResponseError;

use super::image::MetadataImage;
use super::records::{BrokerFeature, FeatureLevelRecord, MetadataRecord};
use super::ControllerError;

/// A feature a Wharf node knows: the levels it can run at, and the level a
/// cluster runs at when no record finalized another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    pub name: &'static str,
    pub min: i16,
    pub max: i16,
    pub default: i16,
}

pub const METADATA_VERSION: &str = "metadata.version";

pub const GROUP_VERSION: &str = "group.version";

/// `metadata.version` 4.1-IV1: Kafka 4.1's level.
pub const METADATA_VERSION_LEVEL: i16 = 27;

/// Every feature Kafka 4.1 defines, with what Wharf supports of it. A
/// feature at 0..=0 is one whose behaviour Wharf does not have yet
/// (transactions v2, share groups, streams groups, eligible leader
/// replicas, dynamic quorum membership); it is listed so tools show it.
/// Features come in Kafka's order.
pub const SUPPORTED: &[Feature] = &[
    Feature {
        name: METADATA_VERSION,
        min: METADATA_VERSION_LEVEL,
        max: METADATA_VERSION_LEVEL,
        default: METADATA_VERSION_LEVEL,
    },
    Feature {
        name: "kraft.version",
        min: 0,
        max: 0,
        default: 0,
    },
    Feature {
        name: "transaction.version",
        min: 0,
        max: 0,
        default: 0,
    },
    // 1: KIP-848 consumer groups (ConsumerGroupHeartbeat).
    Feature {
        name: GROUP_VERSION,
        min: 0,
        max: 1,
        default: 1,
    },
    Feature {
        name: "eligible.leader.replicas.version",
        min: 0,
        max: 0,
        default: 0,
    },
    Feature {
        name: "share.version",
        min: 0,
        max: 0,
        default: 0,
    },
    Feature {
        name: "streams.version",
        min: 0,
        max: 0,
        default: 0,
    },
];

/// The feature named `name`, if Wharf knows it.
pub fn supported(name: &str) -> Option<&'static Feature> {
    SUPPORTED.iter().find(|f| f.name == name)
}

/// The level the cluster of `image` runs `name` at: the last record's, else
/// the default (0 for a feature Wharf does not know).
pub fn finalized_level(image: &MetadataImage, name: &str) -> i16 {
    image
        .feature_level(name)
        .unwrap_or_else(|| supported(name).map_or(0, |f| f.default))
}

/// Every feature finalized above level 0, by name (Kafka lists no feature
/// at level 0 as finalized).
pub fn finalized(image: &MetadataImage) -> Vec<(String, i16)> {
    let mut out: Vec<(String, i16)> = SUPPORTED
        .iter()
        .map(|f| (f.name.to_owned(), finalized_level(image, f.name)))
        .collect();
    for (name, level) in image.features() {
        if supported(name).is_none() {
            out.push((name.to_owned(), level));
        }
    }
    out.retain(|(_, level)| *level > 0);
    out.sort();
    out
}

/// What a Wharf broker names in its registration: every feature it knows.
pub fn broker_features() -> Vec<BrokerFeature> {
    SUPPORTED
        .iter()
        .map(|f| BrokerFeature {
            name: f.name.to_owned(),
            min_supported_version: f.min,
            max_supported_version: f.max,
        })
        .collect()
}

/// How an update may move a level (UpdateFeatures v1+ `upgrade_type`; v0's
/// `allow_downgrade` maps to `Upgrade` or `SafeDowngrade`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeType {
    Upgrade,
    SafeDowngrade,
    UnsafeDowngrade,
    /// A code Kafka does not define.
    Unknown(i8),
}

impl UpgradeType {
    pub fn from_code(code: i8) -> UpgradeType {
        match code {
            1 => UpgradeType::Upgrade,
            2 => UpgradeType::SafeDowngrade,
            3 => UpgradeType::UnsafeDowngrade,
            other => UpgradeType::Unknown(other),
        }
    }
}

/// One requested change of a feature's finalized level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureUpdate {
    pub name: String,
    pub level: i16,
    pub upgrade_type: UpgradeType,
}

fn invalid(name: &str, level: i16, why: &str) -> ControllerError {
    ControllerError::new(
        ResponseError::InvalidUpdateVersion,
        format!("Invalid update version {level} for feature {name}. {why}"),
    )
}

/// UpdateFeatures on the controller: all updates or none (the first
/// refusal is the answer for the whole request, as Kafka's controller
/// answers). The records to propose: one FeatureLevelRecord per update
/// that changes a level.
pub fn update_features(
    image: &MetadataImage,
    updates: &[FeatureUpdate],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    decide(image, updates, SUPPORTED)
}

/// [`update_features`] against the table `table` of the controller's
/// supported features.
fn decide(
    image: &MetadataImage,
    updates: &[FeatureUpdate],
    table: &[Feature],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let mut records = Vec::new();
    for (i, update) in updates.iter().enumerate() {
        let (name, level) = (update.name.as_str(), update.level);
        if updates[..i].iter().any(|u| u.name == name) {
            return Err(invalid(name, level, "The feature is named twice."));
        }
        if let UpgradeType::Unknown(_) = update.upgrade_type {
            return Err(invalid(
                name,
                level,
                "The controller does not support the given upgrade type.",
            ));
        }
        if level < 0 {
            return Err(invalid(
                name,
                level,
                "A feature version cannot be less than 0.",
            ));
        }
        let Some(feature) = table.iter().find(|f| f.name == name) else {
            return Err(invalid(
                name,
                level,
                "The controller does not support the given feature.",
            ));
        };
        if !(feature.min..=feature.max).contains(&level) {
            return Err(invalid(
                name,
                level,
                &format!(
                    "The controller only supports versions {}-{}.",
                    feature.min, feature.max
                ),
            ));
        }
        for broker in image.brokers() {
            // A broker that named no features registered before brokers
            // named them: it runs Wharf's metadata.version, and level 0 of
            // everything else.
            let (lo, hi) = match broker.features.iter().find(|f| f.name == name) {
                Some(f) => (f.min_supported_version, f.max_supported_version),
                None if name == METADATA_VERSION && broker.features.is_empty() => {
                    (METADATA_VERSION_LEVEL, METADATA_VERSION_LEVEL)
                }
                None => (0, 0),
            };
            if !(lo..=hi).contains(&level) {
                return Err(invalid(
                    name,
                    level,
                    &format!("Broker {} only supports versions {lo}-{hi}.", broker.id),
                ));
            }
        }
        let current = image.feature_level(name).unwrap_or(feature.default);
        if level < current && update.upgrade_type == UpgradeType::Upgrade {
            return Err(invalid(
                name,
                level,
                "Can't downgrade the version of this feature without setting the upgrade type to either safe or unsafe downgrade.",
            ));
        }
        if level > current && update.upgrade_type != UpgradeType::Upgrade {
            return Err(invalid(name, level, "Can't downgrade to a newer version."));
        }
        if level != current {
            records.push(MetadataRecord::FeatureLevel(FeatureLevelRecord {
                name: name.to_owned(),
                feature_level: level,
            }));
        }
    }
    Ok(records)
}

#[cfg(test)]
#[path = "features_tests.rs"]
mod tests;
