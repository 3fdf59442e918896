//! The SCRAM messages a client sends (`security::scram`). `[mode][data]`:
//! mode 0 mod 3, `data` is a client-first message for the parser; 1, a
//! client-final message for the parser; 2, `data` cut at NUL bytes into
//! the messages of one SCRAM-SHA-256 exchange with user alice's credential.
//!
//! Asserts: no panic; a parsed client-first names a non-empty user, a
//! nonce without `,`, and its bare part ends the input; a parsed
//! client-final's part without the proof starts the input; an exchange
//! never authenticates (the proof would have to be forged) and ends at
//! its first refusal; a refusal's message never holds the password.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wharf::security::scram::{
    parse_client_final, parse_client_first, Mechanism, ScramExchange, ScramStep,
};
use wharf_coordinator::metadata::scram::ScramCredential;

const PASSWORD: &str = "alice-secret";

fn credential() -> &'static ScramCredential {
    static CREDENTIAL: OnceLock<ScramCredential> = OnceLock::new();
    CREDENTIAL.get_or_init(|| {
        let m = Mechanism::Sha256;
        let salt = b"fuzz-salt".to_vec();
        let salted = m.salted_password(PASSWORD.as_bytes(), &salt, 4096);
        let (_, stored_key, server_key) = m.keys(&salted);
        ScramCredential {
            salt,
            stored_key,
            server_key,
            iterations: 4096,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            if let Ok(first) = parse_client_first(data) {
                assert!(!first.user.is_empty());
                assert!(!first.nonce.is_empty() && !first.nonce.contains(','));
                assert!(data.ends_with(first.bare.as_bytes()));
                assert!(data.starts_with(first.gs2_header.as_bytes()));
            }
        }
        1 => {
            if let Ok(last) = parse_client_final(data) {
                assert!(data.starts_with(last.without_proof.as_bytes()));
                assert!(!last.nonce.contains(','));
            }
        }
        _ => {
            let lookup = |user: &str| (user == "alice").then(|| credential().clone());
            let mut exchange = ScramExchange::new(Mechanism::Sha256);
            for message in data.split(|b| *b == 0) {
                match exchange.step(message, &lookup) {
                    ScramStep::Challenge(reply) => {
                        assert!(reply.starts_with(b"r="));
                    }
                    ScramStep::Authenticated { .. } => {
                        panic!("authenticated without a proof made from the password")
                    }
                    ScramStep::Refused(refusal) => {
                        assert!(!refusal.message.contains(PASSWORD));
                        return;
                    }
                }
            }
        }
    }
});
