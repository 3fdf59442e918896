//! SASL SCRAM-SHA-256/512 against the real binary: credentials made with
//! AlterUserScramCredentials (after a PLAIN login as the admin), the full
//! exchange written here from RFC 5802, refusals, Kafka's credential API
//! errors, credentials surviving a restart and known to every broker of a
//! cluster, and `wharf kafka-configs.sh --entity-type users`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use common::cluster::Cluster;
use common::{Client, TestBroker};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use wharf_client::scram::Mechanism;

const JAAS: &str =
    "org.apache.kafka.common.security.plain.PlainLoginModule required user_admin=\"admin-secret\";";

fn sasl_broker(extra: &[&str]) -> TestBroker {
    let jaas = format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}");
    let mut args = vec![
        "--listener-name",
        "SASL_PLAINTEXT",
        "--security-config",
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        "--security-config",
        &jaas,
    ];
    args.extend_from_slice(extra);
    TestBroker::start_logged(&args)
}

fn handshake(client: &mut Client, mechanism: &str, version: i16) -> SaslHandshakeResponse {
    let mut request = SaslHandshakeRequest::default();
    request.mechanism = StrBytes::from_string(mechanism.into());
    client.call(ApiKey::SaslHandshake, version, &request)
}

fn authenticate(client: &mut Client, token: &[u8]) -> SaslAuthenticateResponse {
    let mut request = SaslAuthenticateRequest::default();
    request.auth_bytes = Bytes::copy_from_slice(token);
    client.call(ApiKey::SaslAuthenticate, 2, &request)
}

/// A connection logged in as the PLAIN admin.
fn admin(broker: &TestBroker) -> Client {
    let mut client = broker.client();
    assert_eq!(handshake(&mut client, "PLAIN", 1).error_code, 0);
    let auth = authenticate(&mut client, b"\0admin\0admin-secret");
    assert_eq!(auth.error_code, 0, "{:?}", auth.error_message);
    client
}

/// An upsertion as Kafka's admin client builds it: the password salted
/// here.
fn upsertion(
    user: &str,
    m: Mechanism,
    iterations: i32,
    password: &str,
) -> ScramCredentialUpsertion {
    let salt = format!("salt-of-{user}").into_bytes();
    let mut u = ScramCredentialUpsertion::default();
    u.name = StrBytes::from_string(user.into());
    u.mechanism = m.type_id();
    u.iterations = iterations;
    u.salted_password = m
        .salted_password(password.as_bytes(), &salt, iterations.max(1) as u32)
        .into();
    u.salt = salt.into();
    u
}

fn deletion(user: &str, mechanism: i8) -> ScramCredentialDeletion {
    let mut d = ScramCredentialDeletion::default();
    d.name = StrBytes::from_string(user.into());
    d.mechanism = mechanism;
    d
}

/// Each user's result code of an AlterUserScramCredentials.
fn alter(
    client: &mut Client,
    upsertions: Vec<ScramCredentialUpsertion>,
    deletions: Vec<ScramCredentialDeletion>,
) -> Vec<(String, i16)> {
    let mut request = AlterUserScramCredentialsRequest::default();
    request.upsertions = upsertions;
    request.deletions = deletions;
    let response: AlterUserScramCredentialsResponse =
        client.call(ApiKey::AlterUserScramCredentials, 0, &request);
    let mut out: Vec<(String, i16)> = response
        .results
        .iter()
        .map(|r| (r.user.to_string(), r.error_code))
        .collect();
    out.sort();
    out
}

/// A user, the error code, and (mechanism, iterations) of each credential.
type Described = (String, i16, Vec<(i8, i32)>);

fn describe(client: &mut Client, users: &[&str]) -> Vec<Described> {
    let mut request = DescribeUserScramCredentialsRequest::default();
    request.users = Some(
        users
            .iter()
            .map(|u| {
                let mut name = UserName::default();
                name.name = StrBytes::from_string(u.to_string());
                name
            })
            .collect(),
    );
    let response: DescribeUserScramCredentialsResponse =
        client.call(ApiKey::DescribeUserScramCredentials, 0, &request);
    response
        .results
        .iter()
        .map(|r| {
            let infos = r
                .credential_infos
                .iter()
                .map(|i| (i.mechanism, i.iterations))
                .collect();
            (r.user.to_string(), r.error_code, infos)
        })
        .collect()
}

/// The client side of a SCRAM exchange (RFC 5802) in SaslAuthenticate
/// requests: the final answer's error code and message. On success the
/// server's signature has been checked.
fn scram_login(client: &mut Client, m: Mechanism, user: &str, password: &str) -> (i16, String) {
    let shake = handshake(client, m.name(), 1);
    assert_eq!(shake.error_code, 0);
    let bare = format!("n={user},r=fyko+d2lbbFgONRv9qkxdawL");
    let first = authenticate(client, format!("n,,{bare}").as_bytes());
    if first.error_code != 0 {
        return (first.error_code, message(&first));
    }
    let server_first = String::from_utf8(first.auth_bytes.to_vec()).unwrap();
    let (last, expected) = client_final(m, password, &bare, &server_first);
    let done = authenticate(client, last.as_bytes());
    if done.error_code == 0 {
        assert_eq!(
            done.auth_bytes.as_ref(),
            expected.as_bytes(),
            "server signature"
        );
    }
    (done.error_code, message(&done))
}

fn message(r: &SaslAuthenticateResponse) -> String {
    r.error_message
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default()
}

/// The client-final message for `server_first` and the server-final
/// message the server must answer with.
fn client_final(m: Mechanism, password: &str, bare: &str, server_first: &str) -> (String, String) {
    let fields: Vec<&str> = server_first.split(',').collect();
    let nonce = fields[0].strip_prefix("r=").unwrap();
    assert!(nonce.starts_with("fyko+d2lbbFgONRv9qkxdawL") && nonce.len() > 24);
    let salt = STANDARD
        .decode(fields[1].strip_prefix("s=").unwrap())
        .unwrap();
    let iterations: u32 = fields[2].strip_prefix("i=").unwrap().parse().unwrap();
    let salted = m.salted_password(password.as_bytes(), &salt, iterations);
    let client_key = m.hmac(&salted, b"Client Key");
    let stored_key = m.hash(&client_key);
    let server_key = m.hmac(&salted, b"Server Key");
    let without_proof = format!("c=biws,r={nonce}");
    let auth = format!("{bare},{server_first},{without_proof}");
    let signature = m.hmac(&stored_key, auth.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    (
        format!("{without_proof},p={}", STANDARD.encode(proof)),
        format!(
            "v={}",
            STANDARD.encode(m.hmac(&server_key, auth.as_bytes()))
        ),
    )
}

fn metadata_served(client: &mut Client) -> bool {
    let response: MetadataResponse = client.call(ApiKey::Metadata, 12, &MetadataRequest::default());
    !response.brokers.is_empty()
}

#[test]
fn scram_logins_with_credentials_from_the_metadata_survive_a_restart() {
    let mut broker = sasl_broker(&[]);
    let mut admin_client = admin(&broker);
    assert_eq!(
        alter(
            &mut admin_client,
            vec![
                upsertion("alice", Mechanism::Sha256, 8192, "alice-secret"),
                upsertion("bob", Mechanism::Sha512, 4096, "bob-secret"),
            ],
            vec![],
        ),
        vec![("alice".into(), 0), ("bob".into(), 0)]
    );
    assert_eq!(
        describe(&mut admin_client, &["alice", "bob"]),
        vec![
            ("alice".into(), 0, vec![(1, 8192)]),
            ("bob".into(), 0, vec![(2, 4096)]),
        ]
    );
    drop(admin_client);

    for round in 0..2 {
        for (m, user, password) in [
            (Mechanism::Sha256, "alice", "alice-secret"),
            (Mechanism::Sha512, "bob", "bob-secret"),
        ] {
            let mut client = broker.client();
            let (code, message) = scram_login(&mut client, m, user, password);
            assert_eq!(code, 0, "round {round} {user}: {message}");
            assert!(metadata_served(&mut client));
        }
        // Only alice has a SCRAM-SHA-256 credential.
        let mut client = broker.client();
        assert_eq!(
            scram_login(&mut client, Mechanism::Sha512, "alice", "alice-secret").0,
            58
        );
        if round == 0 {
            broker.restart(true);
        }
    }

    // SaslHandshake v0: the tokens travel as bare frames.
    let mut client = broker.client();
    assert_eq!(handshake(&mut client, "SCRAM-SHA-256", 0).error_code, 0);
    let bare = "n=alice,r=fyko+d2lbbFgONRv9qkxdawL";
    client.send_frame(format!("n,,{bare}").as_bytes());
    let server_first = String::from_utf8(client.read_frame().unwrap().to_vec()).unwrap();
    let (last, expected) = client_final(Mechanism::Sha256, "alice-secret", bare, &server_first);
    client.send_frame(last.as_bytes());
    assert_eq!(client.read_frame().unwrap().as_ref(), expected.as_bytes());
    assert!(metadata_served(&mut client));
    assert!(!broker.log().contains("alice-secret"));
}

#[test]
fn wrong_passwords_unknown_users_and_malformed_messages_fail_after_the_delay() {
    let broker = sasl_broker(&["--connection-failed-authentication-delay-ms", "300"]);
    let mut admin_client = admin(&broker);
    alter(
        &mut admin_client,
        vec![upsertion("alice", Mechanism::Sha256, 4096, "alice-secret")],
        vec![],
    );
    let refused =
        "Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256";

    let mut client = broker.client();
    let started = Instant::now();
    let (code, message) = scram_login(&mut client, Mechanism::Sha256, "alice", "guess-pass");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!((code, message.as_str()), (58, refused));
    assert!(client.is_closed());

    let mut client = broker.client();
    let (code, message) = scram_login(&mut client, Mechanism::Sha256, "mallory", "x");
    assert_eq!((code, message.as_str()), (58, refused));
    assert!(client.is_closed());

    for first in [
        &b""[..],
        b"n,,n=alice",
        b"y,,n=alice,r=abc",
        b"\xff\xfe\x00",
        b"n,,n=alice,r=abc,tokenauth=true",
    ] {
        let mut client = broker.client();
        assert_eq!(handshake(&mut client, "SCRAM-SHA-256", 1).error_code, 0);
        let answer = authenticate(&mut client, first);
        assert_eq!(answer.error_code, 58, "{first:?}");
        assert!(client.is_closed());
    }
    // A malformed final message.
    let mut client = broker.client();
    assert_eq!(handshake(&mut client, "SCRAM-SHA-256", 1).error_code, 0);
    assert_eq!(authenticate(&mut client, b"n,,n=alice,r=abc").error_code, 0);
    assert_eq!(
        authenticate(&mut client, b"c=biws,r=abc,p=!").error_code,
        58
    );
    assert!(client.is_closed());

    let log = broker.log();
    let audit: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("authentication failed"))
        .collect();
    assert!(audit
        .iter()
        .any(|l| l.contains("User:alice") && l.contains("proof")));
    assert!(audit.iter().any(|l| l.contains("User:mallory")));
    assert!(!log.contains("guess-pass") && !log.contains("alice-secret"));
}

#[test]
fn credential_requests_get_kafkas_errors() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    let code = |e: ResponseError| e.code();
    assert_eq!(
        alter(
            &mut client,
            vec![
                upsertion("few", Mechanism::Sha256, 4095, "pw"),
                upsertion("many", Mechanism::Sha512, 16385, "pw"),
                upsertion("", Mechanism::Sha256, 8192, "pw"),
                upsertion("twice", Mechanism::Sha256, 8192, "pw"),
                upsertion("twice", Mechanism::Sha512, 8192, "pw"),
                upsertion("ok", Mechanism::Sha256, 16384, "pw"),
            ],
            vec![deletion("ghost", 1), deletion("md5", 3)],
        ),
        vec![
            ("".into(), code(ResponseError::UnacceptableCredential)),
            ("few".into(), code(ResponseError::UnacceptableCredential)),
            ("ghost".into(), code(ResponseError::ResourceNotFound)),
            ("many".into(), code(ResponseError::UnacceptableCredential)),
            ("md5".into(), code(ResponseError::UnsupportedSaslMechanism)),
            ("ok".into(), 0),
            ("twice".into(), code(ResponseError::DuplicateResource)),
        ]
    );
    assert_eq!(
        describe(&mut client, &["ok", "twice", "nobody", "nobody"]),
        vec![
            ("ok".into(), 0, vec![(1, 16384)]),
            (
                "twice".into(),
                code(ResponseError::ResourceNotFound),
                vec![]
            ),
            (
                "nobody".into(),
                code(ResponseError::DuplicateResource),
                vec![]
            ),
        ]
    );
    // Removing the only credential removes the user.
    assert_eq!(
        alter(&mut client, vec![], vec![deletion("ok", 1)]),
        vec![("ok".into(), 0)]
    );
    assert_eq!(describe(&mut client, &[]), vec![]);
}

#[test]
fn every_broker_of_a_cluster_knows_the_credentials() {
    let cluster = Cluster::start(3);
    cluster.wait_for(&[0, 1, 2], &[1, 2, 3], Duration::from_secs(30));
    // Through every node, so that some requests are forwarded to the
    // controller.
    for (i, node) in cluster.nodes.iter().enumerate() {
        let user = format!("user{i}");
        let mut client = node.client();
        assert_eq!(
            alter(
                &mut client,
                vec![upsertion(&user, Mechanism::Sha512, 4096 + i as i32, "pw")],
                vec![],
            ),
            vec![(user, 0)]
        );
    }
    for node in &cluster.nodes {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut client = node.client();
            let seen = describe(&mut client, &["user0", "user1", "user2"]);
            if seen.iter().all(|(_, code, _)| *code == 0) {
                assert_eq!(seen[2].2, vec![(2, 4098)]);
                break;
            }
            assert!(Instant::now() < deadline, "{seen:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn kafka_configs_sets_describes_and_deletes_scram_credentials() {
    let broker = TestBroker::start();
    let bootstrap = broker.addr.to_string();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
            .arg("kafka-configs.sh")
            .args(["--bootstrap-server", &bootstrap])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (ok, out, err) = run(&[
        "--alter",
        "--add-config",
        "SCRAM-SHA-256=[iterations=8192,password=alice-secret],SCRAM-SHA-512=[password=alice-secret]",
        "--entity-type",
        "users",
        "--entity-name",
        "alice",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "Completed updating config for user alice.\n");
    let (ok, out, _) = run(&[
        "--describe",
        "--entity-type",
        "users",
        "--entity-name",
        "alice",
    ]);
    assert!(ok);
    assert_eq!(
        out,
        "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=iterations=8192, SCRAM-SHA-512=iterations=4096\n"
    );
    let (ok, _, err) = run(&[
        "--alter",
        "--delete-config",
        "SCRAM-SHA-512",
        "--entity-type",
        "users",
        "--entity-name",
        "alice",
    ]);
    assert!(ok, "{err}");
    let (ok, out, _) = run(&["--describe", "--entity-type", "users"]);
    assert!(ok);
    assert_eq!(
        out,
        "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=iterations=8192\n"
    );
    let (ok, _, err) = run(&[
        "--alter",
        "--add-config",
        "SCRAM-SHA-256=[iterations=1000,password=x]",
        "--entity-type",
        "users",
        "--entity-name",
        "bob",
    ]);
    assert!(!ok);
    assert!(err.contains("less than the minimum 4096"), "{err}");
}
