#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

/// A client's side of the exchange, written from RFC 5802: the
/// client-final message for `server_first`, and the server signature it
/// must get back.
fn client_final(
    m: Mechanism,
    password: &str,
    client_first_bare: &str,
    server_first: &str,
) -> (String, String) {
    let fields: Vec<&str> = server_first.split(',').collect();
    let nonce = fields[0].strip_prefix("r=").unwrap();
    let salt = STANDARD
        .decode(fields[1].strip_prefix("s=").unwrap())
        .unwrap();
    let iterations: u32 = fields[2].strip_prefix("i=").unwrap().parse().unwrap();
    let salted = m.salted_password(password.as_bytes(), &salt, iterations);
    let (client_key, stored_key, server_key) = m.keys(&salted);
    let without_proof = format!("c=biws,r={nonce}");
    let auth = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = m.hmac(&stored_key, auth.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let server_signature = m.hmac(&server_key, auth.as_bytes());
    (
        format!("{without_proof},p={}", STANDARD.encode(proof)),
        format!("v={}", STANDARD.encode(server_signature)),
    )
}

fn credential(m: Mechanism, password: &str, iterations: i32) -> ScramCredential {
    let salt = b"0123456789abcdef".to_vec();
    let salted = m.salted_password(password.as_bytes(), &salt, iterations as u32);
    let (stored_key, server_key) = derive_keys(m.type_id(), &salted).unwrap();
    ScramCredential {
        salt,
        stored_key,
        server_key,
        iterations,
    }
}

fn exchange(m: Mechanism, user: &str, password: &str) -> Result<String, Refusal> {
    let stored = credential(m, "alice-secret", 4096);
    let lookup = move |u: &str| (u == "alice").then(|| stored.clone());
    let mut server = ScramExchange::new(m);
    let bare = format!("n={user},r=clientnonce123");
    let server_first = match server.step(format!("n,,{bare}").as_bytes(), &lookup) {
        ScramStep::Challenge(c) => String::from_utf8(c).unwrap(),
        ScramStep::Refused(r) => return Err(r),
        other => panic!("{other:?}"),
    };
    assert!(server_first.starts_with("r=clientnonce123"));
    assert!(server_first.ends_with(",i=4096"));
    let (last, expected) = client_final(m, password, &bare, &server_first);
    match server.step(last.as_bytes(), &lookup) {
        ScramStep::Authenticated { principal, reply } => {
            assert_eq!(String::from_utf8(reply).unwrap(), expected);
            Ok(principal)
        }
        ScramStep::Refused(r) => Err(r),
        other => panic!("{other:?}"),
    }
}

#[test]
fn both_mechanisms_authenticate_the_right_password() {
    for m in [Mechanism::Sha256, Mechanism::Sha512] {
        assert_eq!(exchange(m, "alice", "alice-secret").unwrap(), "User:alice");
    }
}

#[test]
fn a_wrong_password_or_unknown_user_is_refused_without_the_reason() {
    for m in [Mechanism::Sha256, Mechanism::Sha512] {
        let wrong = exchange(m, "alice", "guess").unwrap_err();
        assert_eq!(wrong.user.as_deref(), Some("alice"));
        assert!(wrong.message.contains(m.name()), "{}", wrong.message);
        assert!(wrong.detail.unwrap().contains("proof"));
        let ghost = exchange(m, "ghost", "alice-secret").unwrap_err();
        assert_eq!(ghost.user.as_deref(), Some("ghost"));
        assert_eq!(ghost.message, wrong.message);
    }
}

#[test]
fn parses_escaped_names_authzid_and_extensions() {
    let first = parse_client_first(b"n,a=a=3Db,n=a=3Db,r=abc,tokenauth=true").unwrap();
    assert_eq!(first.user, "a=b");
    assert_eq!(first.authzid, "a=b");
    assert_eq!(first.gs2_header, "n,a=a=3Db,");
    assert_eq!(first.bare, "n=a=3Db,r=abc,tokenauth=true");
    assert_eq!(first.extensions, vec![("tokenauth".into(), "true".into())]);
    assert_eq!(parse_client_first(b"n,,n=x=2Cy,r=1").unwrap().user, "x,y");
    for bad in [
        &b""[..],
        b"n,,",
        b"y,,n=a,r=b",
        b"p=tls-unique,,n=a,r=b",
        b"n,,n=,r=b",
        b"n,,n=a=4,r=b",
        b"n,,r=b,n=a",
        b"n,,n=a",
        b"n,,n=a,r=",
        b"n,,n=a,r=b,=x",
        b"n,x,n=a,r=b",
        b"n,,n=a,r=b\xff",
    ] {
        assert!(parse_client_first(bad).is_err(), "{bad:?}");
    }
    let last = parse_client_final(b"c=biws,r=abc,p=AAEC").unwrap();
    assert_eq!(last.channel_binding, b"n,,");
    assert_eq!(last.proof, vec![0, 1, 2]);
    assert_eq!(last.without_proof, "c=biws,r=abc");
    for bad in [
        &b""[..],
        b"c=biws,r=abc",
        b"c=biws,r=abc,p=!!",
        b"c=%%,r=abc,p=AAEC",
        b"r=abc,c=biws,p=AAEC",
        b"c=biws,p=AAEC",
    ] {
        assert!(parse_client_final(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn malformed_messages_tokens_and_replays_are_refused() {
    let stored = credential(Mechanism::Sha256, "pw", 4096);
    let lookup = move |_: &str| Some(stored.clone());
    let refused = |steps: &[&[u8]]| {
        let mut server = ScramExchange::new(Mechanism::Sha256);
        steps
            .iter()
            .any(|s| matches!(server.step(s, &lookup), ScramStep::Refused(_)))
    };
    assert!(refused(&[b"garbage"]));
    assert!(refused(&[b"n,,n=alice,r=abc,tokenauth=true"]));
    assert!(refused(&[b"n,a=bob,n=alice,r=abc"]));
    assert!(
        refused(&[b"n,,n=alice,r=abc", b"c=biws,r=abc,p=AAEC"]),
        "nonce"
    );
    assert!(refused(&[b"n,,n=alice,r=abc", b"\xff\xfe"]));
    // A well-formed final with the server's nonce but a wrong proof length.
    let mut server = ScramExchange::new(Mechanism::Sha256);
    let ScramStep::Challenge(first) = server.step(b"n,,n=alice,r=abc", &lookup) else {
        panic!()
    };
    let first = String::from_utf8(first).unwrap();
    let nonce = first.split(',').next().unwrap().strip_prefix("r=").unwrap();
    let last = format!("c=biws,r={nonce},p=AAEC");
    assert!(matches!(
        server.step(last.as_bytes(), &lookup),
        ScramStep::Refused(_)
    ));
    // Nothing after the end.
    assert!(matches!(
        server.step(b"n,,n=alice,r=abc", &lookup),
        ScramStep::Refused(_)
    ));
}
