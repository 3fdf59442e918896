//! Kafka's `ssl.*` and `sasl.*` keys, plain or per listener
//! (`listener.name.<name>.<key>`): which Wharf uses, which it ignores and
//! which it refuses, and how a listener reads them.

use std::collections::BTreeMap;
use std::fmt;

/// What Wharf does with one security key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    Used,
    /// Accepted with a notice: nothing in Wharf to set.
    Ignored(&'static str),
    /// Stops the start.
    Refused(&'static str),
}

/// The SASL mechanisms Wharf serves.
pub const MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// Keys (after any `listener.name.<name>.` prefix) Wharf reads.
pub const USED: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.key.password",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.certificates",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.protocol",
    "ssl.principal.mapping.rules",
    "sasl.enabled.mechanisms",
    "sasl.jaas.config",
];

const JVM: &str = "a JVM security-provider setting; rustls has no equivalent";

/// Keys accepted and not used, each with why.
pub const IGNORED: &[(&str, &str)] = &[
    (
        "ssl.cipher.suites",
        "rustls offers its own fixed set of modern cipher suites",
    ),
    (
        "ssl.endpoint.identification.algorithm",
        "a client-side check of the server's host name",
    ),
    ("ssl.keymanager.algorithm", JVM),
    ("ssl.trustmanager.algorithm", JVM),
    ("ssl.secure.random.implementation", JVM),
    ("ssl.provider", JVM),
    (
        "ssl.allow.dn.changes",
        "certificates are read at start only",
    ),
    (
        "ssl.allow.san.changes",
        "certificates are read at start only",
    ),
    (
        "sasl.mechanism.inter.broker.protocol",
        "brokers reach each other over PLAINTEXT",
    ),
    (
        "sasl.mechanism.controller.protocol",
        "controllers reach each other over PLAINTEXT",
    ),
];

/// Key prefixes accepted and not used.
const IGNORED_PREFIXES: &[(&str, &str)] = &[
    ("sasl.kerberos.", "Wharf has no GSSAPI (Kerberos)"),
    (
        "sasl.login.",
        "login modules are Java's; Wharf reads the JAAS users itself",
    ),
    ("sasl.oauthbearer.", "Wharf has no OAUTHBEARER yet"),
];

/// Keys refused by name.
const REFUSED: &[(&str, &str)] = &[
    (
        "ssl.engine.factory.class",
        "a Java class; Wharf's TLS is rustls",
    ),
    (
        "sasl.server.callback.handler.class",
        "a Java class; Wharf checks PLAIN passwords against the JAAS users",
    ),
    (
        "sasl.client.callback.handler.class",
        "a Java class; Wharf has no SASL client",
    ),
    (
        "ssl.keystore.alias",
        "the keystore's one private key is used",
    ),
];

/// What Wharf does with `key` (a security key, plain or per listener).
pub fn classify(key: &str) -> KeyUse {
    let base = strip_listener(key).map_or(key, |(_, rest)| rest);
    let base = strip_mechanism(base).unwrap_or(base);
    if USED.contains(&base) {
        return KeyUse::Used;
    }
    if let Some((_, why)) = REFUSED.iter().find(|(k, _)| *k == base) {
        return KeyUse::Refused(why);
    }
    if let Some((_, why)) = IGNORED.iter().find(|(k, _)| *k == base) {
        return KeyUse::Ignored(why);
    }
    if let Some((_, why)) = IGNORED_PREFIXES.iter().find(|(p, _)| base.starts_with(p)) {
        return KeyUse::Ignored(why);
    }
    if base.ends_with(".sasl.server.callback.handler.class") {
        return KeyUse::Refused(
            "a Java class; Wharf checks PLAIN passwords against the JAAS users",
        );
    }
    KeyUse::Refused("not a TLS or SASL setting Wharf knows")
}

/// Checks one key and its value: an error for a refused key or a value
/// Wharf cannot honour, a notice for an ignored key.
pub fn check(key: &str, value: &str) -> Result<Option<String>, String> {
    match classify(key) {
        KeyUse::Refused(why) => return Err(why.to_string()),
        KeyUse::Ignored(why) => return Ok(Some(format!("{key}: ignored, {why}"))),
        KeyUse::Used => {}
    }
    let base = strip_listener(key).map_or(key, |(_, rest)| rest);
    let value = value.trim();
    match base {
        "ssl.client.auth" => match value.to_ascii_lowercase().as_str() {
            "required" | "requested" | "none" => Ok(None),
            _ => Err("not required, requested or none".into()),
        },
        "ssl.keystore.type" | "ssl.truststore.type" => match value.to_ascii_uppercase().as_str() {
            "PEM" | "PKCS12" | "JKS" => Ok(None),
            _ => Err("Wharf reads PEM and PKCS12 stores".into()),
        },
        "ssl.principal.mapping.rules" => match value {
            "DEFAULT" => Ok(None),
            _ => Err("only the DEFAULT rule is supported (the certificate's subject DN)".into()),
        },
        "sasl.enabled.mechanisms" => {
            for mechanism in value.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                if !MECHANISMS.contains(&mechanism) {
                    return Err(format!(
                        "mechanism {mechanism} is not supported (Wharf serves {})",
                        MECHANISMS.join(", ")
                    ));
                }
            }
            Ok(None)
        }
        "ssl.enabled.protocols" => {
            for protocol in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                if !matches!(protocol, "TLSv1.2" | "TLSv1.3") {
                    return Err(format!("{protocol}: Wharf serves TLSv1.2 and TLSv1.3 only"));
                }
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

/// Whether `key`'s value is a secret: shown as `[hidden]`, never logged.
pub fn is_sensitive(key: &str) -> bool {
    key.contains("password") || key.ends_with("jaas.config") || key.ends_with("keystore.key")
}

/// `listener.name.<name>.<rest>` split into the name and the rest.
fn strip_listener(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix("listener.name.")?.split_once('.')
}

/// `<mechanism>.sasl.jaas.config` (Kafka's per-mechanism JAAS key) without
/// the mechanism.
fn strip_mechanism(key: &str) -> Option<&str> {
    let (first, rest) = key.split_once('.')?;
    (first != "ssl" && first != "sasl" && rest == "sasl.jaas.config").then_some(rest)
}

/// Every security key given (`ssl.*`, `sasl.*`, `listener.name.*`), from
/// flags and Kafka's configuration. Its `Debug` hides secret values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecurityKeys(pub BTreeMap<String, String>);

impl fmt::Debug for SecurityKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(k, v)| (k, shown(k, v))))
            .finish()
    }
}

/// One `--security-config KEY=VALUE`, as given (`value` is `None`
/// without `=`). Its `Debug` hides a secret value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecurityEntry {
    pub key: String,
    pub value: Option<String>,
}

impl SecurityEntry {
    pub fn split(entry: &str) -> SecurityEntry {
        match entry.split_once('=') {
            Some((key, value)) => SecurityEntry {
                key: key.trim().to_string(),
                value: Some(value.trim().to_string()),
            },
            None => SecurityEntry {
                key: entry.trim().to_string(),
                value: None,
            },
        }
    }

    /// The key and value, checked as Kafka's configuration's are; the
    /// error names the key, never a secret value.
    pub fn check(&self) -> Result<(String, String), String> {
        let value = self
            .value
            .as_deref()
            .ok_or_else(|| "--security-config: a value is not KEY=VALUE".to_string())?;
        // The value stays out of the message: a mistyped key's may be a
        // secret.
        SecurityKeys::parse_entry(&format!("{}={value}", self.key))
            .map_err(|e| format!("--security-config {e}"))
    }
}

impl fmt::Debug for SecurityEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.value.as_deref().unwrap_or("");
        write!(f, "{}={}", self.key, shown(&self.key, value))
    }
}

/// `value` as it may be printed.
pub fn shown<'a>(key: &str, value: &'a str) -> &'a str {
    if is_sensitive(key) {
        "[hidden]"
    } else {
        value
    }
}

impl SecurityKeys {
    /// Parses `KEY=VALUE` (a `--security-config` flag).
    pub fn parse_entry(entry: &str) -> Result<(String, String), String> {
        let (key, value) = entry
            .split_once('=')
            .ok_or_else(|| "not KEY=VALUE".to_string())?;
        let key = key.trim();
        if !(key.starts_with("ssl.")
            || key.starts_with("sasl.")
            || key.starts_with("listener.name."))
        {
            return Err(format!(
                "{key}: not an ssl.*, sasl.* or listener.name.* key"
            ));
        }
        check(key, value).map_err(|why| format!("{key}: {why}"))?;
        Ok((key.to_string(), value.trim().to_string()))
    }

    /// The keys as listener `name` reads them.
    pub fn listener<'a>(&'a self, name: &str) -> ListenerKeys<'a> {
        ListenerKeys {
            keys: self,
            prefix: format!("listener.name.{}.", name.to_ascii_lowercase()),
        }
    }
}

/// The keys of one listener: `listener.name.<name>.<key>` first, then
/// `<key>`.
pub struct ListenerKeys<'a> {
    keys: &'a SecurityKeys,
    prefix: String,
}

impl ListenerKeys<'_> {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.keys
            .0
            .get(&format!("{}{key}", self.prefix))
            .or_else(|| self.keys.0.get(key))
            .map(String::as_str)
    }

    /// The JAAS configuration for `mechanism`: Kafka's
    /// `listener.name.<l>.<mechanism>.sasl.jaas.config`, then the same
    /// without the listener, then `sasl.jaas.config`.
    pub fn jaas(&self, mechanism: &str) -> Option<&str> {
        let per_mechanism = format!("{}.sasl.jaas.config", mechanism.to_ascii_lowercase());
        self.get(&per_mechanism)
            .or_else(|| self.get("sasl.jaas.config"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn classifies_plain_per_listener_and_per_mechanism_keys() {
        assert_eq!(classify("ssl.keystore.location"), KeyUse::Used);
        assert_eq!(
            classify("listener.name.sasl_ssl.ssl.keystore.location"),
            KeyUse::Used
        );
        assert_eq!(
            classify("listener.name.sasl_ssl.plain.sasl.jaas.config"),
            KeyUse::Used
        );
        assert!(matches!(classify("ssl.cipher.suites"), KeyUse::Ignored(_)));
        assert!(matches!(
            classify("sasl.kerberos.service.name"),
            KeyUse::Ignored(_)
        ));
        assert!(matches!(
            classify("ssl.engine.factory.class"),
            KeyUse::Refused(_)
        ));
        assert!(matches!(classify("ssl.keystore.typo"), KeyUse::Refused(_)));
        assert!(matches!(
            classify("listener.name.x.plain.sasl.server.callback.handler.class"),
            KeyUse::Refused(_)
        ));
    }

    #[test]
    fn checks_values_wharf_cannot_honour() {
        assert!(check("ssl.client.auth", "required").is_ok());
        assert!(check("ssl.client.auth", "maybe").is_err());
        assert!(check("sasl.enabled.mechanisms", "PLAIN").is_ok());
        assert!(check("sasl.enabled.mechanisms", "PLAIN,GSSAPI").is_err());
        assert!(check("ssl.enabled.protocols", "TLSv1.2,TLSv1.3").is_ok());
        assert!(check("ssl.enabled.protocols", "TLSv1.1").is_err());
        assert!(check("ssl.principal.mapping.rules", "RULE:^CN=(.*)$/$1/").is_err());
        assert!(check("ssl.keystore.type", "BCFKS").is_err());
    }

    #[test]
    fn a_listener_key_wins_over_the_plain_key() {
        let mut keys = SecurityKeys::default();
        keys.0.insert("ssl.client.auth".into(), "none".into());
        keys.0.insert(
            "listener.name.secure.ssl.client.auth".into(),
            "required".into(),
        );
        keys.0.insert("sasl.jaas.config".into(), "plain one".into());
        keys.0.insert(
            "listener.name.secure.plain.sasl.jaas.config".into(),
            "per listener".into(),
        );
        assert_eq!(
            keys.listener("SECURE").get("ssl.client.auth"),
            Some("required")
        );
        assert_eq!(keys.listener("OTHER").get("ssl.client.auth"), Some("none"));
        assert_eq!(keys.listener("SECURE").jaas("PLAIN"), Some("per listener"));
        assert_eq!(keys.listener("OTHER").jaas("PLAIN"), Some("plain one"));
    }

    #[test]
    fn debug_hides_secrets() {
        let mut keys = SecurityKeys::default();
        keys.0
            .insert("ssl.keystore.password".into(), "hunter2".into());
        keys.0.insert(
            "listener.name.a.plain.sasl.jaas.config".into(),
            "user_bob=\"pw\"".into(),
        );
        keys.0
            .insert("ssl.keystore.location".into(), "/k.p12".into());
        let text = format!("{keys:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("pw\""),
            "{text}"
        );
        assert!(text.contains("/k.p12"));
    }
}
