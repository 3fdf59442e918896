#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::PathBuf;

use super::*;

const KRAFT_COMBINED: &str = include_str!("../../tests/fixtures/kafka/kraft-combined.properties");
const KAFKA4_SERVER: &str = include_str!("../../tests/fixtures/kafka/kafka4-server.properties");
const KRAFT_BROKER: &str = include_str!("../../tests/fixtures/kafka/kraft-broker.properties");

fn parse(text: &str) -> KafkaMap {
    parse_properties(text.as_bytes(), "server.properties").unwrap()
}

fn value(map: &KafkaMap, key: &str) -> String {
    map.get(key).unwrap().value.clone()
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A properties file in a temp dir that lives as long as the returned guard.
fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.properties");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    (dir, path)
}

fn load_with(args: &[&str], env: &BTreeMap<String, String>) -> Result<Loaded, ConfigError> {
    load(
        std::iter::once("wharf-serve").chain(args.iter().copied()),
        env,
    )
}

/// Loads `text` as the --config file, with no flags and no environment.
fn load_file(text: &str) -> Result<Loaded, ConfigError> {
    let (_dir, path) = file(text);
    load_with(&["--config", path.to_str().unwrap()], &env(&[]))
}

/// Whether some notice contains `text`.
fn noticed(loaded: &Loaded, text: &str) -> bool {
    loaded.notices.iter().any(|n| n.contains(text))
}

fn setting<'a>(loaded: &'a Loaded, flag: &str) -> &'a Setting {
    loaded.settings.iter().find(|s| s.flag == flag).unwrap()
}

#[test]
fn properties_syntax_comments_continuations_escapes_and_colon() {
    let map = parse(concat!(
        "# a comment\n",
        "! another comment\n",
        "\n",
        "  node.id = 7\n",
        "broker.rack: rack-a\n",
        "log.dirs=/data/one,\\\n",
        "    /data/two\n",
        "log.cleanup.policy=compact\\,delete\n",
        "compression.type\tzstd\n",
        "advertised.listeners=PLAINTEXT://h\\u00e9:9092\n",
        "num.partitions=3\n",
        "num.partitions=4\n",
    ));
    assert_eq!(value(&map, "node.id"), "7");
    assert_eq!(value(&map, "broker.rack"), "rack-a");
    assert_eq!(value(&map, "log.dirs"), "/data/one,/data/two");
    assert_eq!(value(&map, "log.cleanup.policy"), "compact,delete");
    assert_eq!(value(&map, "compression.type"), "zstd");
    assert_eq!(value(&map, "advertised.listeners"), "PLAINTEXT://hé:9092");
    // The last of a repeated key wins, with its own line.
    assert_eq!(value(&map, "num.partitions"), "4");
    assert_eq!(
        map["num.partitions"].origin,
        Origin::File {
            path: "server.properties".into(),
            line: 12
        }
    );
    // A continued value is reported at the line it starts on.
    assert_eq!(
        map["log.dirs"].origin,
        Origin::File {
            path: "server.properties".into(),
            line: 6
        }
    );
}

#[test]
fn image_variables_map_to_kafka_keys() {
    assert_eq!(
        env_to_key("KAFKA_ADVERTISED_LISTENERS").as_deref(),
        Some("advertised.listeners")
    );
    assert_eq!(env_to_key("KAFKA_NODE_ID").as_deref(), Some("node.id"));
    assert_eq!(
        env_to_key("KAFKA_LISTENER_NAME_EXTERNAL_SASL___MECHANISM").as_deref(),
        Some("listener.name.external.sasl-mechanism")
    );
    assert_eq!(env_to_key("KAFKA_A__B").as_deref(), Some("a_b"));
    assert_eq!(env_to_key("KAFKA_A____B"), None);
    assert_eq!(env_to_key("WHARF_NODE_ID"), None);
}

#[test]
fn every_flag_in_the_key_table_exists() {
    let cmd = ServeFlags::command();
    for row in KEYS {
        let flag = match row.to {
            Use::Flag(flag) => flag,
            Use::Convert(flag, _) if !flag.is_empty() => flag,
            _ => continue,
        };
        assert!(
            cmd.get_arguments().any(|a| a.get_long() == Some(flag)),
            "{} -> --{flag}",
            row.key
        );
    }
}

#[test]
fn kafka3_combined_file_maps_onto_flags() {
    let loaded = load_file(KRAFT_COMBINED).unwrap();
    let c = &loaded.config;
    assert_eq!(c.listen, "0.0.0.0:9092");
    assert_eq!(c.advertised_listener.as_deref(), Some("localhost:9092"));
    assert_eq!(c.controller_listen.as_deref(), Some("0.0.0.0:9093"));
    assert_eq!(
        c.controller_quorum_voters.as_deref(),
        Some("1@localhost:9093")
    );
    assert_eq!(c.node_id, 1);
    assert_eq!(c.data_dir, Some(PathBuf::from("/tmp/kraft-combined-logs")));
    assert_eq!(c.max_request_size, 104_857_600);
    assert_eq!(c.log_retention_hours, Some(168));
    assert_eq!(c.segment_bytes, Some(1_073_741_824));
    assert_eq!(c.offsets_topic_replication_factor, Some(1));
    assert_eq!(c.transaction_state_log_replication_factor, Some(1));
    let listen = setting(&loaded, "listen");
    assert_eq!(listen.key.as_deref(), Some("listeners"));
    assert!(matches!(listen.origin, Origin::File { line: 10, .. }));
    // One notice per ignored key, in the file's order.
    let at = |key: &str| {
        loaded
            .notices
            .iter()
            .position(|n| n.contains(&format!(" {key}: ignored")))
            .unwrap()
    };
    assert!(at("num.network.threads") < at("num.io.threads"));
    assert!(at("num.io.threads") < at("socket.send.buffer.bytes"));
    for key in [
        "num.network.threads",
        "num.io.threads",
        "socket.send.buffer.bytes",
        "num.recovery.threads.per.data.dir",
        "transaction.state.log.min.isr",
    ] {
        let n = loaded
            .notices
            .iter()
            .filter(|n| n.contains(&format!(" {key}: ignored")))
            .count();
        assert_eq!(n, 1, "{key}: {:?}", loaded.notices);
    }
}

#[test]
fn kafka4_server_file_runs_as_its_own_single_voter() {
    let loaded = load_file(KAFKA4_SERVER).unwrap();
    let c = &loaded.config;
    assert_eq!(c.listen, "0.0.0.0:9092");
    assert_eq!(c.controller_listen, None);
    assert_eq!(c.controller_quorum_voters, None);
    assert!(noticed(
        &loaded,
        "controller.quorum.bootstrap.servers: ignored"
    ));
    assert!(noticed(&loaded, "CONTROLLER not bound"));
}

#[test]
fn broker_only_node_outside_the_voters_is_refused() {
    let err = load_file(KRAFT_BROKER).unwrap_err();
    assert!(
        err.0.contains("server.properties:5: process.roles=broker"),
        "{err}"
    );
    assert!(err.0.contains("broker-only node is not supported"), "{err}");
    // Among the voters, it runs combined, with a notice.
    let text = KRAFT_BROKER.replace("voters=1@localhost:9093", "voters=2@localhost:9093");
    let text = text.replace(
        "listeners=PLAINTEXT://localhost:9092\n",
        "listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093\n",
    );
    let loaded = load_file(&text).unwrap();
    assert_eq!(
        loaded.config.controller_listen.as_deref(),
        Some("localhost:9093")
    );
    assert!(noticed(&loaded, "combined mode"));
    // A controller-only node is refused.
    let err = load_file("process.roles=controller\n").unwrap_err();
    assert!(
        err.0.contains("controller-only node is not supported"),
        "{err}"
    );
}

#[test]
fn precedence_is_flag_then_wharf_env_then_kafka_env_then_file_then_default() {
    let (_dir, path) = file(
        "num.partitions=2\n\
         default.replication.factor=2\n\
         offsets.topic.num.partitions=5\n\
         message.max.bytes=2000\n",
    );
    let vars = env(&[
        ("WHARF_NUM_PARTITIONS", "4"),
        ("WHARF_OFFSETS_TOPIC_NUM_PARTITIONS", "6"),
        ("KAFKA_NUM_PARTITIONS", "3"),
        ("KAFKA_DEFAULT_REPLICATION_FACTOR", "3"),
        ("KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS", "7"),
    ]);
    let loaded = load_with(
        &["--config", path.to_str().unwrap(), "--num-partitions", "5"],
        &vars,
    )
    .unwrap();
    let c = &loaded.config;
    // flag over everything
    assert_eq!(c.num_partitions, 5);
    assert_eq!(setting(&loaded, "num-partitions").origin, Origin::Flag);
    // WHARF_* over KAFKA_* and the file
    assert_eq!(c.offsets_topic_num_partitions, 6);
    assert_eq!(
        setting(&loaded, "offsets-topic-num-partitions").origin,
        Origin::WharfEnv("WHARF_OFFSETS_TOPIC_NUM_PARTITIONS".into())
    );
    // KAFKA_* over the file
    assert_eq!(c.default_replication_factor, 3);
    assert_eq!(
        setting(&loaded, "default-replication-factor").origin,
        Origin::KafkaEnv("KAFKA_DEFAULT_REPLICATION_FACTOR".into())
    );
    // the file over the default
    assert_eq!(c.message_max_bytes, Some(2000));
    assert!(matches!(
        setting(&loaded, "message-max-bytes").origin,
        Origin::File { line: 4, .. }
    ));
    // the default
    assert_eq!(c.transaction_state_log_num_partitions, 50);
    assert_eq!(
        setting(&loaded, "transaction-state-log-num-partitions").origin,
        Origin::Default
    );
    let report = loaded.report();
    assert!(
        report.contains("# env KAFKA_DEFAULT_REPLICATION_FACTOR (default.replication.factor)"),
        "{report}"
    );
}

#[test]
fn wharf_config_variable_names_the_file_and_cluster_id_comes_from_the_image_variable() {
    let (_dir, path) = file("num.partitions=9\n");
    let vars = env(&[
        ("WHARF_CONFIG", path.to_str().unwrap()),
        ("CLUSTER_ID", "MkU3OEVBNTcwNTJENDM2Qk"),
        ("KAFKA_HEAP_OPTS", "-Xmx1G"),
    ]);
    let loaded = load_with(&[], &vars).unwrap();
    assert_eq!(loaded.config.num_partitions, 9);
    assert_eq!(
        loaded.config.cluster_id.as_deref(),
        Some("MkU3OEVBNTcwNTJENDM2Qk")
    );
    assert!(noticed(&loaded, "KAFKA_HEAP_OPTS"));
}

#[test]
fn advertised_listeners_alone_give_the_listener_as_the_image_does() {
    let vars = env(&[("KAFKA_ADVERTISED_LISTENERS", "PLAINTEXT://broker:19092")]);
    let loaded = load_with(&[], &vars).unwrap();
    assert_eq!(loaded.config.listen, "0.0.0.0:19092");
    assert_eq!(
        loaded.config.advertised_listener.as_deref(),
        Some("broker:19092")
    );
}

#[test]
fn unknown_key_names_the_file_and_line() {
    let err = load_file("num.partitions=1\n# fine\nno.such.key=1\n").unwrap_err();
    assert!(
        err.0.ends_with("server.properties:3: no.such.key: unknown Kafka setting (see the README's table of Kafka keys)"),
        "{err}"
    );
}

#[test]
fn an_unknown_kafka_variable_is_a_notice_not_an_error() {
    let loaded = load_with(
        &[],
        &env(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092"),
            ("KAFKA_NUM_PARTITIONS", "4"),
        ]),
    )
    .unwrap();
    assert_eq!(loaded.config.num_partitions, 4);
    assert!(
        loaded.notices.iter().any(|n| n
            == "env KAFKA_BOOTSTRAP_SERVERS: bootstrap.servers: not a Kafka broker setting Wharf knows; ignored"),
        "{:?}",
        loaded.notices
    );
}

#[test]
fn bad_value_names_the_file_line_key_and_reason() {
    let err = load_file("\nnum.partitions=many\n").unwrap_err();
    assert!(
        err.0
            .contains("server.properties:2: num.partitions=many: invalid value 'many'"),
        "{err}"
    );
    let err = load_file("auto.create.topics.enable=yes\n").unwrap_err();
    assert!(
        err.0
            .contains(":1: auto.create.topics.enable=yes: invalid value"),
        "{err}"
    );
    let err = load_with(&[], &env(&[("KAFKA_LOG_RETENTION_MINUTES", "x")])).unwrap_err();
    assert!(
        err.0
            .starts_with("env KAFKA_LOG_RETENTION_MINUTES: log.retention.minutes=x:"),
        "{err}"
    );
}

#[test]
fn what_wharf_cannot_do_is_refused_clearly() {
    let cases = [
        (
            "listeners=BROKER://:9093\nlistener.security.protocol.map=BROKER:TLS\n",
            "listener BROKER is TLS: not a security protocol",
        ),
        ("ssl.engine.factory.class=x.Y\n", "a Java class"),
        (
            "sasl.enabled.mechanisms=PLAIN,GSSAPI\n",
            "GSSAPI is not supported",
        ),
        ("ssl.client.auth=maybe\n", "not required, requested or none"),
        ("ssl.keystore.typo=/x\n", "not a TLS or SASL setting"),
        ("log.dirs=/a,/b\n", "one directory; 2 given"),
        (
            "delete.topic.enable=false\n",
            "always allows topic deletion",
        ),
        ("node.id=1\nbroker.id=2\n", "differs from node.id=1"),
        (
            "listeners=PLAINTEXT://:9092\ninter.broker.listener.name=INTERNAL\n",
            "not one of the broker listeners in listeners",
        ),
        (
            "listeners=PLAINTEXT://:9092\nadvertised.listeners=OTHER://h:1\n",
            "OTHER is not a listener in listeners",
        ),
    ];
    for (text, expected) in cases {
        let err = load_file(text).unwrap_err();
        assert!(err.0.contains(expected), "{text:?}: {err}");
        assert!(err.0.contains("server.properties:"), "{err}");
    }
}

#[test]
fn several_named_listeners_become_the_listen_and_extra_listeners() {
    // The apache/kafka image's usual compose setup: one listener for other
    // containers, one for the host, and the controller's.
    let loaded = load_file(
        "process.roles=broker,controller\n\
         node.id=1\n\
         controller.quorum.voters=1@localhost:29093\n\
         listeners=CONTROLLER://:29093,PLAINTEXT_HOST://:9092,PLAINTEXT://:19092\n\
         advertised.listeners=PLAINTEXT://broker:19092,PLAINTEXT_HOST://localhost:9092\n\
         listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT\n\
         controller.listener.names=CONTROLLER\n\
         inter.broker.listener.name=PLAINTEXT\n",
    )
    .unwrap();
    let c = &loaded.config;
    assert_eq!(c.listen, "0.0.0.0:19092");
    assert_eq!(c.listener_name, "PLAINTEXT");
    assert_eq!(c.advertised_listener.as_deref(), Some("broker:19092"));
    assert_eq!(
        c.extra_listeners,
        Some(crate::config::ListenerList(vec![
            crate::config::NamedListener {
                name: "PLAINTEXT_HOST".into(),
                host: String::new(),
                port: 9092,
            }
        ]))
    );
    assert_eq!(
        c.extra_advertised_listeners,
        Some(crate::config::ListenerList(vec![
            crate::config::NamedListener {
                name: "PLAINTEXT_HOST".into(),
                host: "localhost".into(),
                port: 9092,
            }
        ]))
    );
    assert_eq!(c.controller_listen.as_deref(), Some("0.0.0.0:29093"));

    // Without inter.broker.listener.name, the one named PLAINTEXT is the
    // brokers' own.
    let loaded = load_file(
        "listeners=EXTERNAL://127.0.0.1:9094,PLAINTEXT://127.0.0.1:9092\n\
         listener.security.protocol.map=EXTERNAL:PLAINTEXT,PLAINTEXT:PLAINTEXT\n",
    )
    .unwrap();
    assert_eq!(loaded.config.listen, "127.0.0.1:9092");
    assert_eq!(loaded.config.listener_name, "PLAINTEXT");
    assert_eq!(
        loaded
            .config
            .extra_listeners
            .as_ref()
            .map(|l| l.0[0].to_string()),
        Some("EXTERNAL://127.0.0.1:9094".to_string())
    );
}

#[test]
fn conversions_and_kafka_only_values() {
    let loaded = load_file(
        "log.retention.minutes=5\n\
         queued.max.request.bytes=-1\n\
         log.retention.bytes=-1\n\
         delete.topic.enable=true\n\
         zookeeper.connect=localhost:2181\n\
         broker.id=0\n\
         log.dir=/var/wharf\n\
         auto.create.topics.enable=FALSE\n",
    )
    .unwrap();
    let c = &loaded.config;
    assert_eq!(c.log_retention_ms, Some(300_000));
    assert_eq!(c.queued_max_request_bytes, 256 * 1024 * 1024);
    assert_eq!(c.log_retention_bytes, Some(-1));
    assert_eq!(c.node_id, 0);
    assert_eq!(c.data_dir, Some(PathBuf::from("/var/wharf")));
    assert!(!c.auto_create_topics);
    assert!(noticed(&loaded, "zookeeper.connect: ignored"));
}

#[test]
fn the_readme_lists_every_key_of_the_table() {
    let readme = include_str!("../../README.md");
    for row in KEYS {
        let cell = if row.key.ends_with('.') {
            format!("| `{}*` |", row.key)
        } else {
            format!("| `{}` |", row.key)
        };
        assert!(readme.contains(&cell), "README lacks {cell}");
    }
    for var in IGNORED_ENV {
        assert!(
            readme.contains(&format!("`{var}`")) || *var == "KAFKA_HEAP_OPT",
            "README lacks {var}"
        );
    }
}

#[test]
fn memory_mode_ignores_log_dirs_and_excludes_data_dir() {
    let (_dir, path) = file("log.dirs=/var/lib/kafka/data\nnum.partitions=3\n");
    let path = path.to_str().unwrap();
    for (args, vars) in [
        (vec!["--memory", "--config", path], env(&[])),
        (vec!["--config", path], env(&[("WHARF_MEMORY", "true")])),
        (
            vec!["--memory"],
            env(&[("KAFKA_LOG_DIRS", "/var/lib/kafka/data")]),
        ),
    ] {
        let loaded = load_with(&args, &vars).unwrap();
        assert!(loaded.config.memory, "{args:?} {vars:?}");
        assert_eq!(loaded.config.data_dir, None, "{args:?} {vars:?}");
        assert!(
            noticed(&loaded, "ignored: --memory keeps the logs in memory"),
            "{:?}",
            loaded.notices
        );
    }
    // Without --memory, log.dirs is the data directory as before.
    let loaded = load_with(&["--config", path], &env(&[])).unwrap();
    assert!(!loaded.config.memory);
    assert_eq!(
        loaded.config.data_dir,
        Some(PathBuf::from("/var/lib/kafka/data"))
    );
    // --memory=false is the default spelled out.
    let loaded = load_with(&["--memory=false", "--config", path], &env(&[])).unwrap();
    assert!(!loaded.config.memory);
    // A data directory given as Wharf's own setting conflicts.
    let err = load_with(&["--memory", "--data-dir", "/tmp/x"], &env(&[])).unwrap_err();
    assert!(err.0.contains("--data-dir"), "{err}");
    let err = load_with(&["--memory"], &env(&[("WHARF_DATA_DIR", "/tmp/x")])).unwrap_err();
    assert!(err.0.contains("--data-dir"), "{err}");
}

/// The environment testcontainers-java's `KafkaContainer` gives the
/// apache/kafka image (its listener list comes from a Java set, so in any
/// order), plus the advertised listeners its start script exports.
fn testcontainers_env(listeners: &str) -> BTreeMap<String, String> {
    env(&[
        ("CLUSTER_ID", "4L6g3nShT-eMCtK--X86sw"),
        ("KAFKA_LISTENERS", listeners),
        (
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
            "CONTROLLER:PLAINTEXT,BROKER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        ),
        ("KAFKA_INTER_BROKER_LISTENER_NAME", "BROKER"),
        ("KAFKA_PROCESS_ROLES", "broker,controller"),
        ("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER"),
        ("KAFKA_NODE_ID", "1"),
        ("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9094"),
        ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1"),
        ("KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS", "1"),
        ("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1"),
        ("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1"),
        ("KAFKA_LOG_FLUSH_INTERVAL_MESSAGES", "9223372036854775807"),
        ("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0"),
        (
            "KAFKA_ADVERTISED_LISTENERS",
            "PLAINTEXT://localhost:32768,BROKER://0123456789ab:9093",
        ),
    ])
}

#[test]
fn testcontainers_kafka_container_environment_is_accepted_in_any_listener_order() {
    for listeners in [
        "PLAINTEXT://0.0.0.0:9092,BROKER://0.0.0.0:9093,CONTROLLER://0.0.0.0:9094",
        "CONTROLLER://0.0.0.0:9094,PLAINTEXT://0.0.0.0:9092,BROKER://0.0.0.0:9093",
    ] {
        let loaded = load_with(&[], &testcontainers_env(listeners)).unwrap();
        let c = &loaded.config;
        assert_eq!(c.listen, "0.0.0.0:9093", "{listeners}");
        assert_eq!(c.listener_name, "BROKER");
        assert_eq!(c.advertised_listener.as_deref(), Some("0123456789ab:9093"));
        assert_eq!(
            c.extra_advertised_listeners
                .as_ref()
                .map(|l| l.0[0].to_string()),
            Some("PLAINTEXT://localhost:32768".to_string())
        );
        assert_eq!(c.controller_listen.as_deref(), Some("0.0.0.0:9094"));
        assert_eq!(c.cluster_id.as_deref(), Some("4L6g3nShT-eMCtK--X86sw"));
        // `wharf health` in that container checks the brokers' listener.
        assert_eq!(c.local_address().unwrap(), "127.0.0.1:9093");
    }
}

#[test]
fn security_keys_reach_the_listeners_and_secrets_stay_hidden() {
    let loaded = load_with(
        &["--config", file(
            "listeners=SASL_SSL://:9094,PLAINTEXT://127.0.0.1:9092\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL\n\
             ssl.keystore.location=/etc/wharf/server.p12\n\
             ssl.keystore.password=hunter2-store\n\
             ssl.cipher.suites=TLS_AES_128_GCM_SHA256\n\
             listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"hunter2-alice\";\n\
             connection.failed.authentication.delay.ms=250\n",
        ).1.to_str().unwrap(),
        "--security-config", "ssl.truststore.password=hunter2-flag"],
        &env(&[("KAFKA_SSL_CLIENT_AUTH", "required")]),
    );
    // The file's guard is gone by now, but the file was read already.
    let loaded = loaded.unwrap();
    let c = &loaded.config;
    assert_eq!(c.listener_name, "PLAINTEXT");
    assert_eq!(
        c.listener_security_protocol_map.as_deref(),
        Some("PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL")
    );
    assert_eq!(c.connection_failed_authentication_delay_ms, 250);
    let keys = c.security_keys().unwrap();
    assert_eq!(
        keys.0.get("ssl.keystore.location").map(String::as_str),
        Some("/etc/wharf/server.p12")
    );
    assert_eq!(
        keys.0.get("ssl.client.auth").map(String::as_str),
        Some("required")
    );
    assert_eq!(
        keys.0.get("ssl.truststore.password").map(String::as_str),
        Some("hunter2-flag")
    );
    assert!(keys
        .listener("SASL_SSL")
        .jaas("PLAIN")
        .is_some_and(|j| j.contains("user_alice")));
    // Ignored keys are noticed and not kept.
    assert!(noticed(&loaded, "ssl.cipher.suites: ignored"));
    assert!(!keys.0.contains_key("ssl.cipher.suites"));
    let report = loaded.report();
    assert!(report.contains("ssl.keystore.location"), "{report}");
    assert!(!report.contains("hunter2"), "{report}");
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn a_refused_secret_is_not_echoed() {
    let err = load_file("ssl.keystore.passwordx=hunter2\n").unwrap_err();
    assert!(!err.0.contains("hunter2"), "{err}");
    let err = load_with(&["--security-config", "sasl.jaas.config"], &env(&[])).unwrap_err();
    assert!(err.0.contains("KEY=VALUE"), "{err}");
    // A mistyped key: refused, and its value (a secret) not echoed.
    let err = load_with(
        &["--security-config", "ssl.keystore.passwd=hunter2"],
        &env(&[]),
    )
    .unwrap_err();
    assert!(err.0.contains("ssl.keystore.passwd"), "{err}");
    assert!(!err.0.contains("hunter2"), "{err}");
}
