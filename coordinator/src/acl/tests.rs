use uuid::Uuid;

use super::authorizer::AclSet;
use super::decide::{create_acls, delete_acls};
use super::*;
use crate::metadata::{MetadataImage, MetadataRecord};

fn acl(
    resource_type: ResourceType,
    name: &str,
    pattern_type: PatternType,
    principal: &str,
    operation: Operation,
    permission: Permission,
) -> AclBinding {
    AclBinding {
        resource_type,
        resource_name: name.to_string(),
        pattern_type,
        principal: principal.to_string(),
        host: WILDCARD.to_string(),
        operation,
        permission,
    }
}

fn allow_topic(name: &str, pattern: PatternType, principal: &str, op: Operation) -> AclBinding {
    acl(
        ResourceType::Topic,
        name,
        pattern,
        principal,
        op,
        Permission::Allow,
    )
}

fn set(acls: &[AclBinding]) -> AclSet {
    let mut set = AclSet::default();
    for (i, a) in acls.iter().enumerate() {
        set.insert(Uuid::from_u128(i as u128 + 1), a.clone());
    }
    set
}

fn may(acls: &AclSet, principal: &str, op: Operation, topic: &str) -> bool {
    Authorizer::new("", false)
        .authorize(acls, principal, "127.0.0.1", op, ResourceType::Topic, topic)
        .allowed()
}

#[test]
fn literal_acl_allows_only_its_topic_operation_and_principal() {
    let acls = set(&[allow_topic(
        "orders",
        PatternType::Literal,
        "User:alice",
        Operation::Read,
    )]);
    assert!(may(&acls, "User:alice", Operation::Read, "orders"));
    assert!(!may(&acls, "User:alice", Operation::Write, "orders"));
    assert!(!may(&acls, "User:bob", Operation::Read, "orders"));
    assert!(!may(&acls, "User:alice", Operation::Read, "orders2"));
}

#[test]
fn prefixed_acl_covers_names_starting_with_it() {
    let acls = set(&[allow_topic(
        "ord",
        PatternType::Prefixed,
        "User:alice",
        Operation::Write,
    )]);
    assert!(may(&acls, "User:alice", Operation::Write, "orders"));
    assert!(may(&acls, "User:alice", Operation::Write, "ord"));
    assert!(!may(&acls, "User:alice", Operation::Write, "payments"));
}

#[test]
fn wildcard_name_principal_and_host_match_anything() {
    let mut a = allow_topic("*", PatternType::Literal, "User:*", Operation::Read);
    a.host = "*".into();
    let acls = set(&[a]);
    assert!(may(&acls, "User:anyone", Operation::Read, "whatever"));
    let mut b = allow_topic("t", PatternType::Literal, "User:alice", Operation::Read);
    b.host = "10.0.0.1".into();
    let acls = set(&[b]);
    assert!(
        !may(&acls, "User:alice", Operation::Read, "t"),
        "other host"
    );
}

#[test]
fn deny_wins_over_allow() {
    let acls = set(&[
        allow_topic("*", PatternType::Literal, "User:alice", Operation::All),
        acl(
            ResourceType::Topic,
            "secret",
            PatternType::Prefixed,
            "User:*",
            Operation::Read,
            Permission::Deny,
        ),
    ]);
    assert!(may(&acls, "User:alice", Operation::Read, "orders"));
    assert!(!may(&acls, "User:alice", Operation::Read, "secret-plans"));
    // A DENY READ does not deny DESCRIBE.
    assert!(may(
        &acls,
        "User:alice",
        Operation::Describe,
        "secret-plans"
    ));
}

#[test]
fn read_write_delete_alter_imply_describe_and_alter_configs_implies_describe_configs() {
    for op in [
        Operation::Read,
        Operation::Write,
        Operation::Delete,
        Operation::Alter,
    ] {
        let acls = set(&[allow_topic("t", PatternType::Literal, "User:a", op)]);
        assert!(may(&acls, "User:a", Operation::Describe, "t"), "{op}");
        assert!(
            !may(&acls, "User:a", Operation::DescribeConfigs, "t"),
            "{op}"
        );
    }
    let acls = set(&[allow_topic(
        "t",
        PatternType::Literal,
        "User:a",
        Operation::AlterConfigs,
    )]);
    assert!(may(&acls, "User:a", Operation::DescribeConfigs, "t"));
    assert!(!may(&acls, "User:a", Operation::Describe, "t"));
    let acls = set(&[allow_topic(
        "t",
        PatternType::Literal,
        "User:a",
        Operation::Describe,
    )]);
    assert!(!may(&acls, "User:a", Operation::Read, "t"), "no reverse");
}

#[test]
fn super_users_may_do_anything_even_against_a_deny() {
    let acls = set(&[acl(
        ResourceType::Cluster,
        CLUSTER_NAME,
        PatternType::Literal,
        "User:*",
        Operation::All,
        Permission::Deny,
    )]);
    let authorizer = Authorizer::new(" User:admin ; User:bob", false);
    for who in ["User:admin", "User:bob"] {
        let d = authorizer.authorize(
            &acls,
            who,
            "h",
            Operation::Alter,
            ResourceType::Cluster,
            CLUSTER_NAME,
        );
        assert_eq!(d, Decision::SuperUser);
    }
    let d = authorizer.authorize(
        &acls,
        "User:carol",
        "h",
        Operation::Alter,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    assert!(matches!(d, Decision::Denied(_)));
}

#[test]
fn allow_everyone_if_no_acl_found_applies_only_to_resources_without_acls() {
    let acls = set(&[allow_topic(
        "guarded",
        PatternType::Literal,
        "User:alice",
        Operation::Read,
    )]);
    let open = Authorizer::new("", true);
    let closed = Authorizer::new("", false);
    let check = |a: &Authorizer, topic: &str| {
        a.authorize(
            &acls,
            "User:bob",
            "h",
            Operation::Read,
            ResourceType::Topic,
            topic,
        )
    };
    assert_eq!(check(&open, "free"), Decision::NoAclAllowed);
    assert_eq!(check(&closed, "free"), Decision::NoAclDenied);
    assert_eq!(check(&open, "guarded"), Decision::NoMatchingAllow);
    // ACLs on another resource type do not count.
    let d = open.authorize(
        &acls,
        "User:bob",
        "h",
        Operation::Read,
        ResourceType::Group,
        "guarded",
    );
    assert!(d.allowed());
}

#[test]
fn filters_match_literal_prefixed_and_match_patterns() {
    let lit = allow_topic("orders", PatternType::Literal, "User:a", Operation::Read);
    let wild = allow_topic("*", PatternType::Literal, "User:a", Operation::Read);
    let pre = allow_topic("ord", PatternType::Prefixed, "User:a", Operation::Read);
    let other = allow_topic("pay", PatternType::Prefixed, "User:a", Operation::Read);
    let mut f = AclFilter::any();
    f.resource_name = Some("orders".into());
    f.pattern_type = PatternType::Match;
    assert!(f.matches(&lit) && f.matches(&wild) && f.matches(&pre));
    assert!(!f.matches(&other));
    f.pattern_type = PatternType::Any;
    assert!(f.matches(&lit) && !f.matches(&wild) && !f.matches(&pre));
    f.pattern_type = PatternType::Prefixed;
    f.resource_name = Some("ord".into());
    assert!(f.matches(&pre) && !f.matches(&lit));
    let mut g = AclFilter::any();
    g.principal = Some("User:b".into());
    assert!(!g.matches(&lit));
    g.principal = None;
    g.permission = Permission::Deny;
    assert!(!g.matches(&lit));
    assert!(AclFilter::exact(&lit).matches(&lit));
}

#[test]
fn filters_with_unknown_codes_are_refused() {
    assert!(AclFilter::from_wire(2, None, 0, None, None, 1, 1).is_err());
    assert!(AclFilter::from_wire(0, None, 1, None, None, 1, 1).is_err());
    assert!(AclFilter::from_wire(2, None, 1, None, None, 99, 1).is_err());
    assert!(AclFilter::from_wire(1, None, 1, None, None, 1, 1).is_ok());
}

#[test]
fn create_refuses_invalid_bindings_and_skips_duplicates() {
    let good = allow_topic("t", PatternType::Literal, "User:a", Operation::Read);
    let mut bad_pattern = good.clone();
    bad_pattern.pattern_type = PatternType::Match;
    let mut bad_cluster = good.clone();
    bad_cluster.resource_type = ResourceType::Cluster;
    let mut bad_principal = good.clone();
    bad_principal.principal = "alice".into();
    let mut n = 0u128;
    let (results, records) = create_acls(
        &AclSet::default(),
        &[
            good.clone(),
            bad_pattern,
            bad_cluster,
            bad_principal,
            good.clone(),
        ],
        || {
            n += 1;
            Uuid::from_u128(n)
        },
    );
    let oks: Vec<bool> = results.iter().map(Result::is_ok).collect();
    assert_eq!(oks, [true, false, false, false, true]);
    assert_eq!(records.len(), 1, "the duplicate adds no record");
    let mut image = MetadataImage::new();
    for r in &records {
        image.apply(r).unwrap();
    }
    let (_, again) = create_acls(image.acls(), std::slice::from_ref(&good), Uuid::new_v4);
    assert!(again.is_empty(), "an existing ACL adds no record");
}

#[test]
fn delete_removes_each_match_once_and_reports_it_per_filter() {
    let a = allow_topic("t", PatternType::Literal, "User:a", Operation::Read);
    let b = allow_topic("u", PatternType::Literal, "User:a", Operation::Read);
    let acls = set(&[a.clone(), b]);
    let mut only_t = AclFilter::any();
    only_t.resource_name = Some("t".into());
    let (matched, records) = delete_acls(&acls, &[only_t, AclFilter::any()]);
    assert_eq!(matched[0].len(), 1);
    assert_eq!(matched[0][0].1, a);
    assert_eq!(matched[1].len(), 2);
    assert_eq!(records.len(), 2);
}

#[test]
fn acl_records_round_trip_and_rebuild_the_image() {
    let a = allow_topic("t", PatternType::Prefixed, "User:a", Operation::Write);
    let add =
        MetadataRecord::AccessControlEntry(crate::metadata::records::AccessControlEntryRecord {
            id: Uuid::from_u128(7),
            acl: a,
        });
    let bytes = add.encode();
    assert_eq!(&bytes[..3], &[1, 18, 0]);
    assert_eq!(MetadataRecord::decode(&bytes).unwrap(), add);
    let mut image = MetadataImage::new();
    image.apply(&add).unwrap();
    let mut rebuilt = MetadataImage::new();
    for r in image.to_records() {
        rebuilt.apply(&r).unwrap();
    }
    assert_eq!(rebuilt, image);
    let remove = MetadataRecord::RemoveAccessControlEntry(
        crate::metadata::records::RemoveAccessControlEntryRecord {
            id: Uuid::from_u128(7),
        },
    );
    assert_eq!(MetadataRecord::decode(&remove.encode()).unwrap(), remove);
    image.apply(&remove).unwrap();
    assert!(image.acls().is_empty());
    assert!(image.apply(&remove).is_err(), "unknown id");
    // An undefined operation code is refused.
    let mut bad = add.encode();
    let last = bad.len() - 3;
    bad[last] = 99;
    assert!(MetadataRecord::decode(&bad).is_err());
}

#[test]
fn names_parse_as_the_tool_writes_them() {
    assert_eq!(
        ResourceType::parse("transactional-id"),
        Some(ResourceType::TransactionalId)
    );
    assert_eq!(
        Operation::parse("IDEMPOTENT_WRITE"),
        Some(Operation::IdempotentWrite)
    );
    assert_eq!(PatternType::parse("prefixed"), Some(PatternType::Prefixed));
    assert_eq!(Permission::parse("nope"), None);
}
