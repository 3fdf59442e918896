//! Feature flags over TCP: ApiVersions v3/v4 report the supported and
//! finalized features, UpdateFeatures is decided by the active controller
//! (from any broker) with Kafka's INVALID_UPDATE_VERSION refusals, and
//! ListConfigResources lists the resources that have configs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::cluster::Cluster;
use common::{create_topic, Client, TestBroker};
use kafka_protocol::messages::update_features_request::FeatureUpdateKey;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, ListConfigResourcesRequest, ListConfigResourcesResponse,
    UpdateFeaturesRequest, UpdateFeaturesResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

const METADATA_VERSION_LEVEL: i16 = 27;

fn api_versions(client: &mut Client, version: i16) -> ApiVersionsResponse {
    let mut request = ApiVersionsRequest::default();
    request.client_software_name = StrBytes::from_static_str("wharf-tests");
    request.client_software_version = StrBytes::from_static_str("1");
    client.call(ApiKey::ApiVersions, version, &request)
}

fn supported(r: &ApiVersionsResponse) -> Vec<(String, i16, i16)> {
    r.supported_features
        .iter()
        .map(|f| (f.name.to_string(), f.min_version, f.max_version))
        .collect()
}

/// The levels a cluster finalizes by default, as (name, min, max):
/// group.version 1 and metadata.version at Wharf's level.
fn defaults() -> Vec<(String, i16, i16)> {
    vec![
        ("group.version".to_owned(), 1, 1),
        (
            "metadata.version".to_owned(),
            METADATA_VERSION_LEVEL,
            METADATA_VERSION_LEVEL,
        ),
    ]
}

fn finalized(r: &ApiVersionsResponse) -> Vec<(String, i16, i16)> {
    r.finalized_features
        .iter()
        .map(|f| (f.name.to_string(), f.min_version_level, f.max_version_level))
        .collect()
}

/// (feature, level, upgrade type; v0 sends a downgrade type as
/// allow_downgrade).
fn update(
    client: &mut Client,
    version: i16,
    updates: &[(&str, i16, i8)],
    validate_only: bool,
) -> UpdateFeaturesResponse {
    let mut request = UpdateFeaturesRequest::default();
    request.timeout_ms = 30_000;
    request.validate_only = validate_only;
    request.feature_updates = updates
        .iter()
        .map(|(name, level, kind)| {
            let mut u = FeatureUpdateKey::default();
            u.feature = StrBytes::from_string((*name).to_owned());
            u.max_version_level = *level;
            if version == 0 {
                u.allow_downgrade = *kind != 1;
            } else {
                u.upgrade_type = *kind;
            }
            u
        })
        .collect();
    client.call(ApiKey::UpdateFeatures, version, &request)
}

#[test]
fn api_versions_reports_features_from_v3_and_features_at_level_zero_only_from_v4() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    let old = api_versions(&mut client, 2);
    assert!(old.supported_features.is_empty() && old.finalized_features.is_empty());

    let v3 = api_versions(&mut client, 3);
    assert_eq!(supported(&v3), defaults()[1..].to_vec());
    // The epoch is the metadata offset, once the broker has joined its
    // (one-node) quorum.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let v4 = loop {
        let v4 = api_versions(&mut client, 4);
        if v4.finalized_features_epoch >= 0 || std::time::Instant::now() > deadline {
            break v4;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let all = supported(&v4);
    for name in [
        "metadata.version",
        "kraft.version",
        "transaction.version",
        "group.version",
        "share.version",
    ] {
        assert!(all.iter().any(|(n, _, _)| n == name), "{name} in {all:?}");
    }
    assert!(
        all.contains(&("transaction.version".to_owned(), 0, 0)),
        "{all:?}"
    );
    // Only levels above 0 are finalized; each with min = max = the level.
    assert_eq!(finalized(&v4), defaults());
    assert!(v4.finalized_features_epoch >= 0, "{v4:?}");
}

#[test]
fn update_features_refuses_what_wharf_cannot_run_with_invalid_update_version() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    for version in 0..=2 {
        // The current level of metadata.version, and an explicit 0 of a
        // feature at 0: accepted, nothing changes.
        let ok = update(
            &mut client,
            version,
            &[
                ("metadata.version", METADATA_VERSION_LEVEL, 1),
                ("share.version", 0, 1),
            ],
            false,
        );
        assert_eq!(ok.error_code, 0, "v{version}: {ok:?}");
        if version < 2 {
            assert_eq!(ok.results.len(), 2, "v{version}: {ok:?}");
            assert!(ok.results.iter().all(|r| r.error_code == 0));
        } else {
            assert!(ok.results.is_empty(), "v2 answers with no results: {ok:?}");
        }

        let refusals: [(&str, i16, i8, &str); 4] = [
            (
                "no.such.feature",
                1,
                1,
                "does not support the given feature",
            ),
            ("transaction.version", 2, 1, "only supports versions 0-0"),
            ("metadata.version", 21, 2, "only supports versions 27-27"),
            ("metadata.version", 21, 1, "only supports versions 27-27"),
        ];
        for (name, level, kind, why) in refusals {
            let r = update(
                &mut client,
                version,
                &[("share.version", 0, 1), (name, level, kind)],
                false,
            );
            assert_eq!(
                r.error_code,
                ResponseError::InvalidUpdateVersion.code(),
                "v{version} {name}={level}: {r:?}"
            );
            let message = r.error_message.as_ref().unwrap().to_string();
            assert!(
                message.starts_with(&format!(
                    "Invalid update version {level} for feature {name}."
                )) && message.contains(why),
                "{message}"
            );
            if version < 2 {
                // Every feature of the request carries the refusal.
                assert!(
                    r.results.iter().all(|x| x.error_code == r.error_code),
                    "{r:?}"
                );
            }
        }
    }
    // validate_only (v1+) decides without changing anything.
    let checked = update(&mut client, 1, &[("group.version", 0, 2)], true);
    assert_eq!(checked.error_code, 0, "{checked:?}");
    let v4 = api_versions(&mut client, 4);
    assert_eq!(finalized(&v4), defaults(), "{v4:?}");
}

#[test]
fn update_features_from_any_broker_of_a_cluster_is_decided_by_the_controller() {
    let cluster = Cluster::start(3);
    cluster.wait_for(&[0, 1, 2], &[1, 2, 3], Duration::from_secs(30));
    for node in &cluster.nodes {
        let mut client = node.client();
        let r = update(&mut client, 1, &[("kraft.version", 1, 1)], false);
        assert_eq!(
            r.error_code,
            ResponseError::InvalidUpdateVersion.code(),
            "{r:?}\n{}",
            cluster.logs()
        );
        let ok = update(
            &mut client,
            1,
            &[("metadata.version", METADATA_VERSION_LEVEL, 1)],
            false,
        );
        assert_eq!(ok.error_code, 0, "{ok:?}");
        // v0's allow_downgrade travels to the controller as an upgrade type.
        let ok = update(&mut client, 0, &[("share.version", 0, 2)], false);
        assert_eq!(ok.error_code, 0, "{ok:?}");
        // Every broker registered with the features it supports, so the
        // cluster finalizes metadata.version at Wharf's level.
        let v4 = api_versions(&mut client, 4);
        assert_eq!(finalized(&v4), defaults());
        assert!(v4.finalized_features_epoch > 0, "{v4:?}");
    }
}

fn list_config_resources(
    client: &mut Client,
    version: i16,
    types: &[i8],
) -> ListConfigResourcesResponse {
    let mut request = ListConfigResourcesRequest::default();
    request.resource_types = types.to_vec();
    client.call(ApiKey::ListConfigResources, version, &request)
}

fn resources(r: &ListConfigResourcesResponse) -> Vec<(i8, String)> {
    r.config_resources
        .iter()
        .map(|c| (c.resource_type, c.resource_name.to_string()))
        .collect()
}

#[test]
fn list_config_resources_lists_topics_and_brokers_by_type() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    create_topic(&mut client, "zeta", 1);
    create_topic(&mut client, "alpha", 2);

    // v0: client-metrics subscriptions only, and Wharf has none.
    let v0 = list_config_resources(&mut client, 0, &[]);
    assert_eq!((v0.error_code, resources(&v0)), (0, vec![]));

    let all = list_config_resources(&mut client, 1, &[]);
    assert_eq!(all.error_code, 0);
    assert_eq!(
        resources(&all),
        vec![
            (2, "alpha".to_owned()),
            (2, "zeta".to_owned()),
            (4, "1".to_owned())
        ]
    );
    let brokers = list_config_resources(&mut client, 1, &[4]);
    assert_eq!(resources(&brokers), vec![(4, "1".to_owned())]);
    let groups = list_config_resources(&mut client, 1, &[32, 16]);
    assert_eq!((groups.error_code, resources(&groups)), (0, vec![]));

    // BROKER_LOGGER and unknown types fail the whole request.
    for bad in [8, 99] {
        let r = list_config_resources(&mut client, 1, &[2, bad]);
        assert_eq!(r.error_code, ResponseError::UnsupportedVersion.code());
        assert!(r.config_resources.is_empty());
    }
}

/// `wharf kafka-features.sh ARGS` against `broker`: (exit ok, stdout, stderr).
fn features_tool(broker: &TestBroker, args: &[&str]) -> (bool, String, String) {
    let bootstrap = broker.addr.to_string();
    let mut all = vec!["kafka-features.sh", "--bootstrap-server", &bootstrap];
    all.extend(args);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(&all)
        .env_remove("WHARF_BOOTSTRAP")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn kafka_features_tool_describes_and_reports_refused_updates_as_kafkas_does() {
    let broker = TestBroker::start();
    let (ok, out, err) = features_tool(&broker, &["describe"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with(
            "Feature: metadata.version\tSupportedMinVersion: 4.1-IV1\tSupportedMaxVersion: 4.1-IV1\tFinalizedVersionLevel: 4.1-IV1\tEpoch: "
        )),
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "Feature: group.version\tSupportedMinVersion: 0\tSupportedMaxVersion: 1\tFinalizedVersionLevel: 1\tEpoch: "
        )),
        "{out}"
    );
    // Sorted by name.
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);

    let (ok, out, err) = features_tool(
        &broker,
        &["upgrade", "--feature", "transaction.version=2", "--dry-run"],
    );
    assert!(!ok);
    assert_eq!(
        out,
        "Could not upgrade transaction.version to 2. Invalid update version 2 for feature transaction.version. The controller only supports versions 0-0.\n"
    );
    assert!(err.contains("1 out of 1 operation(s) failed."), "{err}");

    let (ok, out, err) = features_tool(&broker, &["upgrade", "--metadata", "4.1"]);
    assert!(ok, "{out}{err}");
    assert_eq!(out, "metadata.version was upgraded to 4.1-IV1.\n");
    let (ok, out, _) = features_tool(
        &broker,
        &["disable", "--feature", "share.version", "--dry-run"],
    );
    assert!(ok, "{out}");
    assert_eq!(out, "share.version can be disabled.\n");
}

fn advertises(r: &ApiVersionsResponse, key: ApiKey) -> bool {
    r.api_keys.iter().any(|a| a.api_key == key as i16)
}

fn heartbeat_error(client: &mut Client) -> i16 {
    let mut request = ConsumerGroupHeartbeatRequest::default();
    request.group_id = kafka_protocol::messages::GroupId(StrBytes::from_static_str("g"));
    request.member_id = StrBytes::from_static_str("m-1");
    request.member_epoch = 0;
    request.rebalance_timeout_ms = 30_000;
    request.subscribed_topic_names = Some(vec![common::topic_name("t")]);
    request.topic_partitions = Some(Vec::new());
    let response: ConsumerGroupHeartbeatResponse =
        client.call(ApiKey::ConsumerGroupHeartbeat, 1, &request);
    response.error_code
}

#[test]
fn group_version_zero_switches_the_consumer_protocol_off_cluster_wide_and_one_back_on() {
    let cluster = Cluster::start(3);
    cluster.wait_for(&[0, 1, 2], &[1, 2, 3], Duration::from_secs(30));
    let mut first = cluster.nodes[0].client();
    assert!(advertises(
        &api_versions(&mut first, 4),
        ApiKey::ConsumerGroupHeartbeat
    ));
    // A downgrade needs a downgrade type.
    let refused = update(&mut first, 1, &[("group.version", 0, 1)], false);
    assert_eq!(
        refused.error_code,
        ResponseError::InvalidUpdateVersion.code()
    );
    let done = update(&mut first, 1, &[("group.version", 0, 2)], false);
    assert_eq!(done.error_code, 0, "{done:?}");
    // Every broker applies the change from the metadata log.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for node in &cluster.nodes {
        let mut client = node.client();
        loop {
            let v4 = api_versions(&mut client, 4);
            if !advertises(&v4, ApiKey::ConsumerGroupHeartbeat) {
                assert!(!advertises(&v4, ApiKey::ConsumerGroupDescribe));
                assert_eq!(finalized(&v4), defaults()[1..].to_vec());
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{v4:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            heartbeat_error(&mut client),
            ResponseError::UnsupportedVersion.code()
        );
    }
    // Back to 1 (an upgrade), from another broker: on again everywhere.
    let mut last = cluster.nodes[2].client();
    let done = update(&mut last, 2, &[("group.version", 1, 1)], false);
    assert_eq!(done.error_code, 0, "{done:?}");
    for node in &cluster.nodes {
        let mut client = node.client();
        loop {
            let v4 = api_versions(&mut client, 4);
            if advertises(&v4, ApiKey::ConsumerGroupHeartbeat) {
                assert_eq!(finalized(&v4), defaults());
                break;
            }
            assert!(
                std::time::Instant::now() < deadline + Duration::from_secs(10),
                "{v4:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let error = heartbeat_error(&mut last);
    assert_ne!(error, ResponseError::UnsupportedVersion.code(), "{error}");
}
