//! Listener security against the real binary: TLS (with and without client
//! certificates) and SASL/PLAIN, and what happens to clients that get it
//! wrong: the connection is closed and the broker says why, naming the
//! peer. Certificates are made here with rcgen.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::TestBroker;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio_rustls::rustls;

/// A CA and certificates it signs, as PEM files in a temp dir.
struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "wharf test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = params.self_signed(&ca_key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca, ca_key }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A certificate for `cn` (a server's for localhost, or a client's),
    /// written as `<name>.pem` (chain) and `<name>.key`.
    fn issue(&self, name: &str, cn: &str, org: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, org);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        std::fs::write(self.path(&format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(self.path(&format!("{name}.key")), key.serialize_pem()).unwrap();
        (cert, key)
    }

    /// A PKCS12 keystore with a server key and certificate, under
    /// `password`.
    fn pkcs12(&self, password: &str) -> PathBuf {
        let (cert, key) = self.issue("server", "localhost", "Wharf");
        let chain = p12_keystore::PrivateKeyChain::new(
            vec![1u8],
            p12_keystore::PrivateKey::from_der(&key.serialize_der()).unwrap(),
            [p12_keystore::Certificate::from_der(cert.der()).unwrap()],
        );
        let mut store = p12_keystore::KeyStore::new();
        store.add_entry(
            "server",
            p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
        );
        let path = self.path("server.p12");
        std::fs::write(&path, store.writer(password).write().unwrap()).unwrap();
        path
    }

    /// A broker whose `--listen` listener is `protocol`, with this PKI's
    /// server certificate and `extra` flags, its log kept.
    fn broker(&self, protocol: &str, extra: &[&str]) -> TestBroker {
        let chain = self.path("server.pem");
        let key = self.path("server.key");
        if !chain.exists() {
            self.issue("server", "localhost", "Wharf");
        }
        let pem = std::fs::read_to_string(&key).unwrap();
        let combined = self.path("server-keystore.pem");
        std::fs::write(
            &combined,
            format!("{pem}{}", std::fs::read_to_string(&chain).unwrap()),
        )
        .unwrap();
        let mut args: Vec<String> = vec![
            "--listener-name".into(),
            protocol.into(),
            "--security-config".into(),
            "ssl.keystore.type=PEM".into(),
            "--security-config".into(),
            format!("ssl.keystore.location={}", combined.display()),
            "--security-config".into(),
            format!("ssl.truststore.location={}", self.path("ca.pem").display()),
            "--request-read-timeout-ms".into(),
            "1000".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        TestBroker::start_logged(&refs)
    }

    /// A TLS client trusting this CA, with `identity` (cert, key) if given.
    fn client_config(
        &self,
        identity: Option<(&rcgen::Certificate, &rcgen::KeyPair)>,
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![cert.der().clone()],
                    rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
                )
                .unwrap(),
        };
        Arc::new(config)
    }
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls_connect(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// One request and its response over any stream; `None` when the broker
/// closed the connection (or the TLS session failed).
fn call<S: Read + Write, Req: Encodable, Resp: Decodable>(
    stream: &mut S,
    key: ApiKey,
    version: i16,
    request: &Req,
) -> Option<Resp> {
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = 7;
    header.client_id = Some(StrBytes::from_static_str("security-tests"));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, key.request_header_version(version))
        .unwrap();
    request.encode(&mut body, version).unwrap();
    let mut frame = Vec::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    stream.write_all(&frame).ok()?;
    stream.flush().ok()?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).ok()?;
    let mut response = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut response).ok()?;
    let mut response = Bytes::from(response);
    let header_version = if key == ApiKey::ApiVersions {
        0
    } else {
        key.response_header_version(version)
    };
    let header = ResponseHeader::decode(&mut response, header_version).unwrap();
    assert_eq!(header.correlation_id, 7);
    Some(Resp::decode(&mut response, version).unwrap())
}

fn api_versions<S: Read + Write>(stream: &mut S) -> Option<ApiVersionsResponse> {
    call(
        stream,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    )
}

fn metadata<S: Read + Write>(stream: &mut S) -> Option<MetadataResponse> {
    call(stream, ApiKey::Metadata, 12, &MetadataRequest::default())
}

/// Waits for `text` in the broker's log.
fn wait_for_log(broker: &TestBroker, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = broker.log();
        if log.contains(text) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {text:?} in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether the peer closed the plain socket (reads end or fail).
fn closed(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 64];
    matches!(stream.read(&mut buf), Ok(0) | Err(_))
}

#[test]
fn tls_serves_requests_and_closes_plaintext_clients_with_a_clear_log_line() {
    let pki = Pki::new();
    let broker = pki.broker("SSL", &[]);
    let mut tls = tls_connect(broker.addr, pki.client_config(None));
    let versions = api_versions(&mut tls).expect("ApiVersions over TLS");
    assert_eq!(versions.error_code, 0);
    let meta = metadata(&mut tls).expect("Metadata over TLS");
    assert_eq!(meta.brokers.len(), 1);
    assert!(tls.conn.protocol_version().is_some());

    // Plain Kafka on the TLS port: closed, and the log names the peer.
    let mut plain = TcpStream::connect(broker.addr).unwrap();
    let local = plain.local_addr().unwrap();
    assert!(api_versions(&mut plain).is_none(), "no answer in plaintext");
    let log = wait_for_log(
        &broker,
        "a plaintext Kafka request arrived on a TLS listener",
    );
    assert!(log.contains(&local.to_string()), "{log}");

    // A client that starts a handshake and stalls: closed at the timeout.
    let mut stalled = TcpStream::connect(broker.addr).unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).unwrap();
    let started = Instant::now();
    assert!(closed(&mut stalled));
    assert!(started.elapsed() < Duration::from_secs(8));
    wait_for_log(&broker, "TLS handshake not completed within 1000 ms");

    // The TLS client is still served.
    assert!(metadata(&mut tls).is_some());
}

#[test]
fn a_tls_hello_on_a_plaintext_listener_is_closed_and_logged() {
    let broker = TestBroker::start_logged(&[]);
    let pki = Pki::new();
    let mut tls = tls_connect(broker.addr, pki.client_config(None));
    let local = tls.sock.local_addr().unwrap();
    assert!(api_versions(&mut tls).is_none());
    let log = wait_for_log(
        &broker,
        "a TLS handshake arrived on PLAINTEXT/SASL_PLAINTEXT listener PLAINTEXT",
    );
    assert!(log.contains(&local.to_string()), "{log}");
    // Nothing else is affected.
    let mut client = broker.client();
    let meta: MetadataResponse = client.call(ApiKey::Metadata, 12, &MetadataRequest::default());
    assert_eq!(meta.brokers.len(), 1);
}

#[test]
fn mutual_tls_requires_a_certificate_from_the_trusted_ca() {
    let pki = Pki::new();
    let (alice, alice_key) = pki.issue("alice", "alice", "Acme");
    let broker = pki.broker("SSL", &["--security-config", "ssl.client.auth=required"]);

    let mut trusted = tls_connect(broker.addr, pki.client_config(Some((&alice, &alice_key))));
    assert!(
        metadata(&mut trusted).is_some(),
        "a trusted client certificate is served"
    );

    let mut anonymous = tls_connect(broker.addr, pki.client_config(None));
    assert!(
        metadata(&mut anonymous).is_none(),
        "no certificate: refused"
    );

    // A certificate from another CA.
    let other = Pki::new();
    let (mallory, mallory_key) = other.issue("mallory", "mallory", "Evil");
    let mut untrusted = tls_connect(
        broker.addr,
        pki.client_config(Some((&mallory, &mallory_key))),
    );
    assert!(
        metadata(&mut untrusted).is_none(),
        "untrusted certificate: refused"
    );
    wait_for_log(&broker, "TLS handshake failed");
    assert!(metadata(&mut trusted).is_some());
}

#[test]
fn a_pkcs12_keystore_serves_tls() {
    let pki = Pki::new();
    let path = pki.pkcs12("store-secret");
    let location = format!("ssl.keystore.location={}", path.display());
    let broker = TestBroker::start_logged(&[
        "--listener-name",
        "SSL",
        "--security-config",
        "ssl.keystore.type=PKCS12",
        "--security-config",
        &location,
        "--security-config",
        "ssl.keystore.password=store-secret",
    ]);
    let mut tls = tls_connect(broker.addr, pki.client_config(None));
    assert!(metadata(&mut tls).is_some());
    assert!(!broker.log().contains("store-secret"));
}

#[test]
fn a_wrong_keystore_password_stops_the_start_without_echoing_it() {
    let pki = Pki::new();
    let path = pki.pkcs12("right");
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["serve", "--listen", "127.0.0.1:0", "--listener-name", "SSL"])
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--security-config")
        .arg(format!("ssl.keystore.location={}", path.display()))
        .args(["--security-config", "ssl.keystore.password=wrong-guess"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot open the PKCS12 store"), "{stderr}");
    assert!(!stderr.contains("wrong-guess"), "{stderr}");
}

const JAAS: &str =
    "org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"alice-secret\";";

fn sasl_broker(extra: &[&str]) -> TestBroker {
    let jaas = format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}");
    let mut args = vec![
        "--listener-name",
        "SASL_PLAINTEXT",
        "--security-config",
        "sasl.enabled.mechanisms=PLAIN",
        "--security-config",
        &jaas,
    ];
    args.extend_from_slice(extra);
    TestBroker::start_logged(&args)
}

fn handshake<S: Read + Write>(stream: &mut S, mechanism: &str) -> Option<SaslHandshakeResponse> {
    let mut request = SaslHandshakeRequest::default();
    request.mechanism = StrBytes::from_string(mechanism.into());
    call(stream, ApiKey::SaslHandshake, 1, &request)
}

fn authenticate<S: Read + Write>(
    stream: &mut S,
    user: &str,
    password: &str,
) -> Option<SaslAuthenticateResponse> {
    let mut request = SaslAuthenticateRequest::default();
    request.auth_bytes = Bytes::from(format!("\0{user}\0{password}"));
    call(stream, ApiKey::SaslAuthenticate, 2, &request)
}

#[test]
fn sasl_plain_authenticates_before_any_other_request() {
    let broker = sasl_broker(&[]);

    // ApiVersions is answered before authentication, and lists SASL.
    let mut client = TcpStream::connect(broker.addr).unwrap();
    let versions = api_versions(&mut client).unwrap();
    assert!(versions
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::SaslHandshake as i16 && k.max_version == 1));
    assert!(versions
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::SaslAuthenticate as i16 && k.max_version == 2));
    let shake = handshake(&mut client, "PLAIN").unwrap();
    assert_eq!(shake.error_code, 0);
    assert_eq!(shake.mechanisms, vec![StrBytes::from_static_str("PLAIN")]);
    let auth = authenticate(&mut client, "alice", "alice-secret").unwrap();
    assert_eq!(auth.error_code, 0, "{:?}", auth.error_message);
    assert!(metadata(&mut client).is_some(), "served once authenticated");
    // A second handshake after authentication: ILLEGAL_SASL_STATE.
    assert_eq!(handshake(&mut client, "PLAIN").unwrap().error_code, 34);

    // Anything else first closes the connection.
    let mut eager = TcpStream::connect(broker.addr).unwrap();
    let local = eager.local_addr().unwrap();
    assert!(metadata(&mut eager).is_none());
    let log = wait_for_log(&broker, "unexpected Metadata request during SASL handshake");
    assert!(log.contains(&local.to_string()));
}

#[test]
fn a_wrong_password_is_refused_after_the_delay_and_audited() {
    let broker = sasl_broker(&["--connection-failed-authentication-delay-ms", "300"]);
    let mut client = TcpStream::connect(broker.addr).unwrap();
    let local = client.local_addr().unwrap();
    assert_eq!(handshake(&mut client, "PLAIN").unwrap().error_code, 0);
    let started = Instant::now();
    let auth = authenticate(&mut client, "alice", "not-her-password").unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(auth.error_code, 58, "SASL_AUTHENTICATION_FAILED");
    assert_eq!(
        auth.error_message.unwrap().as_str(),
        "Authentication failed: Invalid username or password"
    );
    assert!(closed(&mut client), "closed after the failure");
    let log = wait_for_log(&broker, "authentication failed");
    let line = log
        .lines()
        .find(|l| l.contains("authentication failed"))
        .unwrap();
    assert!(line.contains(&local.to_string()), "{line}");
    assert!(line.contains("User:alice"), "{line}");
    assert!(!log.contains("not-her-password"));
    assert!(!log.contains("alice-secret"));

    // An unknown mechanism: UNSUPPORTED_SASL_MECHANISM, then closed.
    let mut client = TcpStream::connect(broker.addr).unwrap();
    let shake = handshake(&mut client, "SCRAM-SHA-512").unwrap();
    assert_eq!(shake.error_code, 33);
    assert!(closed(&mut client));
}

#[test]
fn sasl_handshake_on_a_plaintext_listener_is_an_illegal_state() {
    let broker = TestBroker::start();
    let mut client = broker.client();
    let mut request = SaslHandshakeRequest::default();
    request.mechanism = StrBytes::from_static_str("PLAIN");
    let response: SaslHandshakeResponse = client.call(ApiKey::SaslHandshake, 1, &request);
    assert_eq!(response.error_code, 34);
    // Still served.
    let meta: MetadataResponse = client.call(ApiKey::Metadata, 12, &MetadataRequest::default());
    assert_eq!(meta.brokers.len(), 1);
}

#[test]
fn a_sasl_listener_without_users_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--listener-name",
            "SASL_PLAINTEXT",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SASL PLAIN needs its users"), "{stderr}");
}
