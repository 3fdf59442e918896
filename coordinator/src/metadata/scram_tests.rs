#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::metadata::testkit::apply_all;

fn derive(_: i8, salted: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    Some((salted.iter().map(|b| b ^ 1).collect(), salted.to_vec()))
}

fn upsert(name: &str, mechanism: i8, iterations: i32) -> Upsertion {
    Upsertion {
        name: name.into(),
        mechanism,
        iterations,
        salt: b"salt".to_vec(),
        salted_password: vec![7; 32],
    }
}

fn delete(name: &str, mechanism: i8) -> Deletion {
    Deletion {
        name: name.into(),
        mechanism,
    }
}

fn codes(alteration: &Alteration) -> Vec<(String, Option<ResponseError>)> {
    alteration
        .results
        .iter()
        .map(|(n, r)| (n.clone(), r.as_ref().err().map(|e| e.code)))
        .collect()
}

#[test]
fn an_upsertion_becomes_a_credential_record_the_image_holds() {
    let mut image = MetadataImage::new();
    let out = alter_credentials(&image, &[], &[upsert("alice", SCRAM_SHA_256, 8192)], derive);
    assert_eq!(codes(&out), vec![("alice".to_string(), None)]);
    apply_all(&mut image, &out.records);
    let credential = image.scram_credential("alice", SCRAM_SHA_256).unwrap();
    assert_eq!(credential.iterations, 8192);
    assert_eq!(credential.server_key, vec![7; 32]);
    assert_eq!(credential.stored_key, vec![6; 32]);
    assert!(image.scram_credential("alice", SCRAM_SHA_512).is_none());
    // The snapshot form rebuilds it.
    let mut rebuilt = MetadataImage::new();
    apply_all(&mut rebuilt, &image.to_records());
    assert_eq!(rebuilt, image);

    let out = alter_credentials(&image, &[delete("alice", SCRAM_SHA_256)], &[], derive);
    assert_eq!(codes(&out), vec![("alice".to_string(), None)]);
    apply_all(&mut image, &out.records);
    assert!(image.scram_credential("alice", SCRAM_SHA_256).is_none());
    assert_eq!(image.scram_users().count(), 0);
}

#[test]
fn refusals_follow_kafkas_scram_control_manager() {
    let image = MetadataImage::new();
    let out = alter_credentials(
        &image,
        &[delete("ghost", SCRAM_SHA_256), delete("dup", SCRAM_SHA_512)],
        &[
            upsert("", SCRAM_SHA_256, 8192),
            upsert("few", SCRAM_SHA_256, 4095),
            upsert("many", SCRAM_SHA_512, 16385),
            upsert("md5", 3, 8192),
            upsert("twice", SCRAM_SHA_256, 4096),
            upsert("twice", SCRAM_SHA_512, 16384),
            upsert("ok", SCRAM_SHA_512, 16384),
        ],
        derive,
    );
    assert_eq!(
        codes(&out),
        vec![
            ("ghost".into(), Some(ResponseError::ResourceNotFound)),
            ("dup".into(), Some(ResponseError::ResourceNotFound)),
            ("".into(), Some(ResponseError::UnacceptableCredential)),
            ("few".into(), Some(ResponseError::UnacceptableCredential)),
            ("many".into(), Some(ResponseError::UnacceptableCredential)),
            ("md5".into(), Some(ResponseError::UnsupportedSaslMechanism)),
            ("twice".into(), Some(ResponseError::DuplicateResource)),
            ("ok".into(), None),
        ]
    );
    assert_eq!(out.records.len(), 1, "only ok's credential is written");
}

#[test]
fn removing_a_missing_credential_is_refused_by_the_image() {
    let mut image = MetadataImage::new();
    let record = MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
        name: "nobody".into(),
        mechanism: SCRAM_SHA_256,
    });
    assert!(image.apply(&record).is_err());
}

#[test]
fn credential_records_round_trip_and_hide_their_keys_in_debug() {
    let record = UserScramCredentialRecord {
        name: "alice".into(),
        mechanism: SCRAM_SHA_512,
        salt: vec![1, 2, 3],
        stored_key: vec![4; 64],
        server_key: vec![5; 64],
        iterations: 4096,
    };
    assert!(!format!("{record:?}").contains("4, 4"));
    let wrapped = MetadataRecord::UserScramCredential(record);
    let bytes = wrapped.encode();
    // Frame version 1, api key 11, version 0.
    assert_eq!(&bytes[..3], &[1, 11, 0]);
    assert_eq!(MetadataRecord::decode(&bytes).unwrap(), wrapped);
    let remove = MetadataRecord::RemoveUserScramCredential(RemoveUserScramCredentialRecord {
        name: "alice".into(),
        mechanism: SCRAM_SHA_512,
    });
    let bytes = remove.encode();
    assert_eq!(&bytes[..3], &[1, 22, 0]);
    assert_eq!(MetadataRecord::decode(&bytes).unwrap(), remove);
    for cut in 0..bytes.len() {
        assert!(MetadataRecord::decode(&bytes[..cut]).is_err());
    }
}
