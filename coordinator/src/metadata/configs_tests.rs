#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::metadata::controller::ControllerConfig;
use crate::metadata::testkit::{apply_all, cluster, create, new_topic};

fn topic_with(configs: &[(&str, &str)]) -> MetadataImage {
    let mut image = cluster(&[1]);
    let mut topic = new_topic("t", 1, 1);
    topic.configs = configs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
        .collect();
    create(&mut image, &ControllerConfig::default(), &[topic]);
    image
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn overrides(image: &MetadataImage) -> BTreeMap<String, String> {
    image
        .configs(&ConfigResource::Topic("t".into()))
        .cloned()
        .unwrap_or_default()
}

#[test]
fn replacing_sets_new_and_changed_keys_and_deletes_absent_ones() {
    let mut image = topic_with(&[("cleanup.policy", "compact"), ("retention.ms", "1000")]);
    let wanted = map(&[("retention.ms", "2000"), ("segment.bytes", "1048576")]);
    let records = set_topic_configs(&image, "t", &wanted).unwrap();
    assert_eq!(records.len(), 3, "{records:?}");
    assert!(records.contains(&MetadataRecord::Config(ConfigRecord {
        resource_type: CONFIG_RESOURCE_TOPIC,
        resource_name: "t".into(),
        name: "cleanup.policy".into(),
        value: None,
    })));
    apply_all(&mut image, &records);
    assert_eq!(overrides(&image), wanted);
}

#[test]
fn replacing_with_the_current_configs_changes_nothing() {
    let image = topic_with(&[("retention.ms", "1000")]);
    let records = set_topic_configs(&image, "t", &map(&[("retention.ms", "1000")])).unwrap();
    assert!(records.is_empty(), "{records:?}");
}

#[test]
fn replacing_with_nothing_deletes_every_override() {
    let mut image = topic_with(&[("a", "1"), ("b", "2")]);
    let records = set_topic_configs(&image, "t", &BTreeMap::new()).unwrap();
    assert_eq!(records.len(), 2);
    apply_all(&mut image, &records);
    assert!(overrides(&image).is_empty());
}

#[test]
fn configs_of_an_unknown_topic_are_unknown_topic_or_partition() {
    let image = cluster(&[1]);
    let err = set_topic_configs(&image, "missing", &map(&[("a", "1")])).unwrap_err();
    assert_eq!(err.code, ResponseError::UnknownTopicOrPartition);
    let err = alter_topic_configs(&image, "missing", &[]).unwrap_err();
    assert_eq!(err.code, ResponseError::UnknownTopicOrPartition);
}

#[test]
fn incremental_operations_leave_other_keys_alone_and_the_last_one_on_a_key_wins() {
    let mut image = topic_with(&[("a", "1"), ("b", "2")]);
    let ops = [
        ConfigOp::Set("c".into(), "3".into()),
        ConfigOp::Delete("a".into()),
        ConfigOp::Delete("c".into()),
        ConfigOp::Set("c".into(), "4".into()),
        ConfigOp::Delete("absent".into()),
    ];
    let records = alter_topic_configs(&image, "t", &ops).unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    apply_all(&mut image, &records);
    assert_eq!(overrides(&image), map(&[("b", "2"), ("c", "4")]));
}
