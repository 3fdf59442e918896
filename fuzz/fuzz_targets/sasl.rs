//! What a client sends on a SASL listener before it is authenticated, and
//! the JAAS text users are read from. `[mode][data]`: mode even, `data` is
//! a connection's bytes, cut into frames and fed to a `SaslSession` (as the
//! connection task does) until it authenticates, fails or closes; mode odd,
//! `data` is a JAAS configuration for the parser.
//!
//! Asserts: no panic; every reply is one whole frame (its size prefix
//! matches); a session authenticates only with alice's exact password, as
//! `User:alice`; after a failure or a close nothing more is read; a parsed
//! JAAS text has a class and a control flag for each module.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wharf::security::sasl::{parse_jaas, SaslServer, SaslSession, Step};
use wharf::security::SecurityKeys;
use wharf_protocol::frame::FrameDecoder;

const PASSWORD: &str = "alice-secret";

fn server() -> SaslServer {
    let mut keys = SecurityKeys::default();
    keys.0.insert(
        "sasl.jaas.config".into(),
        format!(
            "org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"{PASSWORD}\";"
        ),
    );
    SaslServer::build(&keys.listener("SASL_PLAINTEXT")).expect("a valid JAAS text")
}

fn whole_frame(reply: &[u8]) {
    let (size, body) = reply.split_first_chunk::<4>().expect("a size prefix");
    assert_eq!(i32::from_be_bytes(*size) as usize, body.len());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    if mode % 2 == 1 {
        if let Ok(modules) = parse_jaas(&String::from_utf8_lossy(data)) {
            assert!(!modules.is_empty());
            for m in modules {
                assert!(!m.class.is_empty());
                assert!(matches!(
                    m.flag.as_str(),
                    "required" | "requisite" | "sufficient" | "optional"
                ));
            }
        }
        return;
    }
    let server = server();
    let mut session = SaslSession::default();
    let decoder = FrameDecoder::new(1 << 20);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        let token = frame.clone();
        // No SCRAM users: this target is PLAIN's (see `scram` for SCRAM).
        match session.on_frame(&server, &|_, _| None, frame) {
            Step::Dispatch(_) => {}
            Step::Reply(reply) => whole_frame(&reply),
            Step::Authenticated {
                reply, principal, ..
            } => {
                if reply.len() > 4 {
                    whole_frame(&reply);
                }
                assert_eq!(principal, "User:alice");
                let text = String::from_utf8_lossy(&token);
                assert!(text.contains(PASSWORD), "authenticated without the password");
                return;
            }
            Step::Failed { reply, refusal, .. } => {
                if let Some(reply) = reply {
                    whole_frame(&reply);
                }
                assert!(!refusal.message.contains(PASSWORD));
                return;
            }
            Step::Close(_) => return,
        }
    }
});
