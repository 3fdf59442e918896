//! TLS for SSL and SASL_SSL listeners, with rustls: the server's key and
//! certificate chain from Kafka's keystore keys (PEM or PKCS12), the
//! client CAs from its truststore keys, `ssl.client.auth` for mutual TLS,
//! TLS 1.2 and 1.3. A client's certificate names its principal as Kafka's
//! DEFAULT `ssl.principal.mapping.rules` does: `User:` and the subject's
//! distinguished name (`User:CN=alice,O=Acme`).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig, SupportedProtocolVersion};
use tokio_rustls::TlsAcceptor;

use super::keys::ListenerKeys;

/// Kafka's `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// A listener's TLS: what accepts its handshakes.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: TlsAcceptor,
    pub client_auth: ClientAuth,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("client_auth", &self.client_auth)
            .finish()
    }
}

/// The JKS file format's first four bytes.
const JKS_MAGIC: [u8; 4] = [0xFE, 0xED, 0xFE, 0xED];

impl Tls {
    pub fn build(keys: &ListenerKeys<'_>) -> Result<Tls, String> {
        let (chain, key) = keystore(keys)?;
        let client_auth = match keys
            .get("ssl.client.auth")
            .map(|v| v.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("none") => ClientAuth::None,
            Some("requested") => ClientAuth::Requested,
            Some("required") => ClientAuth::Required,
            Some(other) => {
                return Err(format!(
                    "ssl.client.auth={other}: not required, requested or none"
                ))
            }
        };
        let versions = protocol_versions(keys)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| format!("TLS versions: {e}"))?;
        let builder = match client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Requested | ClientAuth::Required => {
                let roots = truststore(keys)?.ok_or_else(|| {
                    "ssl.client.auth asks for client certificates: set ssl.truststore.location (or ssl.truststore.certificates) to the CAs that sign them".to_string()
                })?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if client_auth == ClientAuth::Requested {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| format!("client certificate verifier: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| format!("the keystore's key and certificate: {e}"))?;
        // Kafka speaks no ALPN; sessions resume through tickets or the cache.
        config.alpn_protocols.clear();
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            client_auth,
        })
    }
}

/// `ssl.enabled.protocols` (default both) or, failing that,
/// `ssl.protocol`'s version and the ones below it that Wharf serves.
fn protocol_versions(
    keys: &ListenerKeys<'_>,
) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let list = keys
        .get("ssl.enabled.protocols")
        .unwrap_or("TLSv1.2,TLSv1.3");
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match name {
            "TLSv1.2" => out.push(&rustls::version::TLS12),
            "TLSv1.3" => out.push(&rustls::version::TLS13),
            other => {
                return Err(format!(
                    "ssl.enabled.protocols: {other}: Wharf serves TLSv1.2 and TLSv1.3"
                ))
            }
        }
    }
    if out.is_empty() {
        return Err("ssl.enabled.protocols names no protocol".into());
    }
    Ok(out)
}

type KeyPair = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The server's certificate chain and private key.
fn keystore(keys: &ListenerKeys<'_>) -> Result<KeyPair, String> {
    let kind = keys.get("ssl.keystore.type").map(str::to_ascii_uppercase);
    let inline_chain = keys.get("ssl.keystore.certificate.chain");
    let inline_key = keys.get("ssl.keystore.key");
    if inline_chain.is_some() || inline_key.is_some() {
        let (Some(chain), Some(key)) = (inline_chain, inline_key) else {
            return Err("ssl.keystore.certificate.chain and ssl.keystore.key go together".into());
        };
        if kind.as_deref().is_some_and(|k| k != "PEM") {
            return Err(
                "ssl.keystore.certificate.chain and ssl.keystore.key need ssl.keystore.type=PEM"
                    .into(),
            );
        }
        return pem_pair(
            chain.as_bytes(),
            key.as_bytes(),
            "ssl.keystore.certificate.chain",
        );
    }
    let location = keys.get("ssl.keystore.location").ok_or_else(|| {
        "an SSL listener needs a keystore: ssl.keystore.location (PEM or PKCS12), or ssl.keystore.certificate.chain with ssl.keystore.key".to_string()
    })?;
    let data = read(location, "ssl.keystore.location")?;
    match store_kind(kind.as_deref(), &data, location, "ssl.keystore")? {
        StoreKind::Pem => pem_pair(&data, &data, location),
        StoreKind::Pkcs12 => {
            let password = keys
                .get("ssl.keystore.password")
                .or_else(|| keys.get("ssl.key.password"))
                .unwrap_or("");
            pkcs12_pair(&data, password, location)
        }
    }
}

/// The CAs client certificates must chain to; `None` when no truststore
/// is set.
fn truststore(keys: &ListenerKeys<'_>) -> Result<Option<RootCertStore>, String> {
    let kind = keys.get("ssl.truststore.type").map(str::to_ascii_uppercase);
    let certs = if let Some(inline) = keys.get("ssl.truststore.certificates") {
        pem_certs(inline.as_bytes(), "ssl.truststore.certificates")?
    } else if let Some(location) = keys.get("ssl.truststore.location") {
        let data = read(location, "ssl.truststore.location")?;
        match store_kind(kind.as_deref(), &data, location, "ssl.truststore")? {
            StoreKind::Pem => pem_certs(&data, location)?,
            StoreKind::Pkcs12 => {
                let password = keys.get("ssl.truststore.password").unwrap_or("");
                pkcs12_certs(&data, password, location)?
            }
        }
    } else {
        return Ok(None);
    };
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("truststore: a CA certificate is not usable: {e}"))?;
    }
    Ok(Some(roots))
}

enum StoreKind {
    Pem,
    Pkcs12,
}

/// The store's format: its type key, else what the file looks like.
/// Kafka's default type is JKS, which Java (9 and later) reads from a
/// PKCS12 file as well: so does Wharf; a real JKS file is refused.
fn store_kind(
    kind: Option<&str>,
    data: &[u8],
    location: &str,
    prefix: &str,
) -> Result<StoreKind, String> {
    let looks_pem = data.trim_ascii_start().starts_with(b"-----BEGIN");
    if data.starts_with(&JKS_MAGIC) {
        return Err(format!(
            "{location} is a JKS store, which Wharf cannot read: convert it with `keytool -importkeystore -srckeystore {location} -destkeystore store.p12 -deststoretype PKCS12` and set {prefix}.type=PKCS12"
        ));
    }
    match kind {
        Some("PEM") => Ok(StoreKind::Pem),
        Some("PKCS12") | Some("JKS") => Ok(StoreKind::Pkcs12),
        Some(other) => Err(format!("{prefix}.type={other}: Wharf reads PEM and PKCS12")),
        None if looks_pem => Ok(StoreKind::Pem),
        None => Ok(StoreKind::Pkcs12),
    }
}

fn read(location: &str, key: &str) -> Result<Vec<u8>, String> {
    std::fs::read(Path::new(location)).map_err(|e| format!("{key}: cannot read {location}: {e}"))
}

fn pem_certs(data: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: bad PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no CERTIFICATE in it"));
    }
    Ok(certs)
}

fn pem_pair(chain: &[u8], key: &[u8], what: &str) -> Result<KeyPair, String> {
    let certs = pem_certs(chain, what)?;
    if key
        .windows(b"ENCRYPTED PRIVATE KEY".len())
        .any(|w| w == b"ENCRYPTED PRIVATE KEY")
    {
        return Err(format!(
            "{what}: the private key is encrypted; Wharf reads unencrypted PEM keys (or a PKCS12 keystore with its password)"
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| format!("{what}: no usable private key: {e}"))?;
    Ok((certs, key))
}

fn pkcs12_store(
    data: &[u8],
    password: &str,
    location: &str,
) -> Result<p12_keystore::KeyStore, String> {
    p12_keystore::KeyStore::from_pkcs12(data, password, p12_keystore::Pkcs12ImportPolicy::Relaxed)
        .map_err(|e| format!("{location}: cannot open the PKCS12 store (wrong password?): {e}"))
}

fn pkcs12_pair(data: &[u8], password: &str, location: &str) -> Result<KeyPair, String> {
    let store = pkcs12_store(data, password, location)?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or_else(|| format!("{location}: no private key in the PKCS12 store"))?;
    let certs: Vec<CertificateDer<'static>> = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    if certs.is_empty() {
        return Err(format!("{location}: the private key has no certificate"));
    }
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()));
    Ok((certs, key))
}

fn pkcs12_certs(
    data: &[u8],
    password: &str,
    location: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let store = pkcs12_store(data, password, location)?;
    let mut out = Vec::new();
    for (_, entry) in store.entries() {
        match entry {
            p12_keystore::KeyStoreEntry::Certificate(cert) => {
                out.push(CertificateDer::from(cert.as_der().to_vec()));
            }
            p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => {
                // A store holding a key and its chain: trust the chain's
                // last certificate (its CA), as Java does with such stores.
                if let Some(last) = chain.certs().last() {
                    out.push(CertificateDer::from(last.as_der().to_vec()));
                }
            }
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(format!(
            "{location}: no certificate in the PKCS12 truststore"
        ));
    }
    Ok(out)
}

/// Kafka's principal for a client certificate (DEFAULT mapping rule):
/// `User:` and the subject DN in RFC 2253 order (`CN=...,O=...`).
pub fn principal_of(cert: &CertificateDer<'_>) -> Option<String> {
    use x509_cert::der::Decode;
    let cert = x509_cert::Certificate::from_der(cert.as_ref()).ok()?;
    Some(format!("User:{}", cert.tbs_certificate().subject()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn principal_is_the_subject_dn_most_specific_first() {
        let mut params = rcgen::CertificateParams::new(vec!["client".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CountryName, "US");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let der = CertificateDer::from(cert.der().to_vec());
        assert_eq!(principal_of(&der).unwrap(), "User:CN=alice,O=Acme,C=US");
    }

    #[test]
    fn a_jks_file_is_refused_with_the_keytool_command() {
        let err = store_kind(
            None,
            &[0xFE, 0xED, 0xFE, 0xED, 0, 0],
            "/k.jks",
            "ssl.keystore",
        )
        .err()
        .unwrap();
        assert!(err.contains("keytool -importkeystore"), "{err}");
    }
}
