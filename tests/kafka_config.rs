//! `wharf serve --config server.properties` with the apache/kafka image's
//! `KAFKA_*` variables, run as the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::wait_bounded;
use std::time::{Duration, Instant};

const KRAFT_COMBINED: &str = include_str!("fixtures/kafka/kraft-combined.properties");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kafka's shipped combined-mode file, on loopback ports and a temp dir.
fn server_properties(dir: &Path, port: u16, controller_port: u16) -> std::path::PathBuf {
    let text = KRAFT_COMBINED
        .replace(
            "listeners=PLAINTEXT://:9092,CONTROLLER://:9093",
            &format!(
                "listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"
            ),
        )
        .replace(
            "advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093",
            &format!(
                "advertised.listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}"
            ),
        )
        .replace(
            "controller.quorum.voters=1@localhost:9093",
            &format!("controller.quorum.voters=1@127.0.0.1:{controller_port}"),
        )
        .replace(
            "log.dirs=/tmp/kraft-combined-logs",
            &format!("log.dirs={}", dir.join("data").display()),
        );
    let path = dir.join("server.properties");
    std::fs::write(&path, text).unwrap();
    path
}

/// `wharf serve ARGS` with only `env` from the environment (so the test's
/// own environment cannot add `KAFKA_*` or `WHARF_*` variables).
fn serve(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_wharf"));
    command
        .arg("serve")
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    command
}

/// A client command against `bootstrap`; must succeed; returns stdout.
fn client(bootstrap: &str, args: &[&str]) -> String {
    let child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .arg("--bootstrap-server")
        .arg(bootstrap)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_bounded(child, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "wharf {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Stops the broker with SIGTERM when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while matches!(self.0.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serves_from_kafkas_server_properties_with_kafka_variables_on_top() {
    let dir = tempfile::tempdir().unwrap();
    let (port, controller_port) = (free_port(), free_port());
    let config = server_properties(dir.path(), port, controller_port);
    let child = serve(
        &["--config", config.to_str().unwrap()],
        &[("KAFKA_NUM_PARTITIONS", "3"), ("WHARF_LOG_LEVEL", "info")],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(dir.path().join("wharf.log")).unwrap())
    .spawn()
    .unwrap();
    let mut broker = Running(child);
    let bootstrap = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&bootstrap).is_err() {
        if let Some(status) = broker.0.try_wait().unwrap() {
            let err = std::fs::read_to_string(dir.path().join("wharf.log")).unwrap_or_default();
            panic!("broker exited at start ({status}): {err}");
        }
        assert!(Instant::now() < deadline, "broker did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The topic takes the partition count from KAFKA_NUM_PARTITIONS (the
    // file says 1).
    client(&bootstrap, &["topic", "create", "orders"]);
    let list = client(&bootstrap, &["topic", "list"]);
    let row: Vec<&str> = list
        .lines()
        .find(|l| l.starts_with("orders"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row, ["orders", "3", "1"], "{list}");
    // The data went where log.dirs says.
    assert!(dir.path().join("data").join("orders-0").exists());
    drop(broker);
}

#[test]
fn print_config_shows_origins_and_a_bad_key_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = server_properties(dir.path(), 19092, 19093);
    let out = serve(
        &[
            "--config",
            config.to_str().unwrap(),
            "--print-config",
            "--node-id",
            "1",
        ],
        &[
            ("KAFKA_NUM_PARTITIONS", "3"),
            ("WHARF_LOG_RETENTION_HOURS", "24"),
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let line = |flag: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(flag))
            .unwrap_or_else(|| panic!("no {flag} in {text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        line("listen"),
        "listen 127.0.0.1:19092 # server.properties:10 (listeners)"
            .replace("server.properties", &config.display().to_string())
    );
    assert_eq!(
        line("num-partitions"),
        "num-partitions 3 # env KAFKA_NUM_PARTITIONS (num.partitions)"
    );
    assert_eq!(
        line("log-retention-hours"),
        "log-retention-hours 24 # env WHARF_LOG_RETENTION_HOURS"
    );
    assert_eq!(line("node-id"), "node-id 1 # flag");
    assert_eq!(line("max-connections"), "max-connections 10000 # default");
    assert!(text.contains("num.network.threads: ignored"), "{text}");
    // Nothing was started: no data directory.
    assert!(!dir.path().join("data").exists());

    let bad = dir.path().join("bad.properties");
    // Exit code 1 and stderr of a start on `text`.
    let refused = |text: &str| {
        std::fs::write(&bad, text).unwrap();
        let out = serve(&["--config", bad.to_str().unwrap()], &[])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8(out.stderr).unwrap()
    };
    let err = refused("node.id=1\nlog.flush.interval.ms=soon\n");
    assert!(
        err.contains(&format!(
            "{}:2: log.flush.interval.ms=soon: invalid value 'soon'",
            bad.display()
        )),
        "{err}"
    );
    let err = refused("node.id=1\n\nnum.brokers=3\n");
    assert!(
        err.contains(":3: num.brokers: unknown Kafka setting"),
        "{err}"
    );
}

/// `wharf health ARGS` with only `env` from the environment: its exit code,
/// stdout and stderr.
fn health(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .arg("health")
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_bounded(child, Duration::from_secs(30));
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn health_without_an_address_checks_the_listener_of_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let (port, controller_port) = (free_port(), free_port());
    let config = server_properties(dir.path(), port, controller_port);
    let config = config.to_str().unwrap();
    let log = dir.path().join("wharf.log");
    let child = serve(&["--config", config], &[("WHARF_LOG_LEVEL", "info")])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut broker = Running(child);
    // Kafka's line for a broker that starts serving, which testcontainers'
    // KafkaContainer waits for, once.
    let ready = "Transitioning from RECOVERY to RUNNING";
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log).unwrap().contains(ready) {
        if let Some(status) = broker.0.try_wait().unwrap() {
            panic!(
                "broker exited at start ({status}): {}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        assert!(Instant::now() < deadline, "no {ready:?} line logged");
        std::thread::sleep(Duration::from_millis(20));
    }
    client(&format!("127.0.0.1:{port}"), &["topic", "create", "t"]);
    assert_eq!(
        std::fs::read_to_string(&log)
            .unwrap()
            .matches(ready)
            .count(),
        1
    );

    let answers = format!("ok: 127.0.0.1:{port} answers\n");
    let listeners = format!("PLAINTEXT://:{port}");
    let listen = format!("0.0.0.0:{port}");
    for (args, env) in [
        (vec!["--config", config], vec![]),
        (vec![], vec![("WHARF_CONFIG", config)]),
        (vec![], vec![("KAFKA_LISTENERS", listeners.as_str())]),
        (vec![], vec![("WHARF_LISTEN", listen.as_str())]),
    ] {
        let (code, out, err) = health(&args, &env);
        assert_eq!(
            (code, out.as_str()),
            (Some(0), answers.as_str()),
            "{env:?}: {err}"
        );
    }
    // The configuration names a port nothing listens on: unhealthy.
    let closed = format!("PLAINTEXT://127.0.0.1:{}", free_port());
    let (code, _, err) = health(
        &["--timeout-ms", "1000"],
        &[("KAFKA_LISTENERS", closed.as_str())],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("unhealthy"), "{err}");
    // A configuration the broker would refuse: unhealthy, saying why.
    let (code, _, err) = health(&[], &[("KAFKA_NUM_PARTITIONS", "many")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("KAFKA_NUM_PARTITIONS"), "{err}");
    drop(broker);
}

#[test]
fn broker_defaults_of_topic_configs_apply_from_kafka_variables() {
    // min.insync.replicas=2 on one broker: acks=all produces cannot be
    // acknowledged, acks=1 ones can; a topic override of 1 lifts it.
    let broker = common::TestBroker::start_logged_env(
        &[],
        &[
            ("KAFKA_MIN_INSYNC_REPLICAS", "2"),
            ("KAFKA_LOG_ROLL_HOURS", "1"),
            ("KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE", "true"),
        ],
    );
    let mut kafka = broker.client();
    assert_eq!(
        common::create_topic(&mut kafka, "guarded", 1).topics[0].error_code,
        0
    );
    let record = || {
        wharf_protocol::batch::build_batch(
            0,
            &[(Some(&b"k"[..]), Some(&b"v"[..]), 1_700_000_000_000)],
            wharf_protocol::compression::Compression::None,
        )
        .unwrap()
    };
    let (code, _) = common::produce_batch(&mut kafka, "guarded", 0, record());
    assert_eq!(
        code,
        kafka_protocol::ResponseError::NotEnoughReplicas.code(),
        "{}",
        broker.log()
    );
    // The broker's defaults are what a describe of the topic shows.
    let bootstrap = broker.addr.to_string();
    let described = client(&bootstrap, &["config", "describe", "--topic", "guarded"]);
    for line in [
        "min.insync.replicas",
        "segment.ms",
        "unclean.leader.election.enable",
    ] {
        let row = described
            .lines()
            .find(|l| l.split_whitespace().next() == Some(line))
            .unwrap_or_else(|| panic!("{line} missing: {described}"));
        let expected = match line {
            "min.insync.replicas" => "2",
            "segment.ms" => "3600000",
            _ => "true",
        };
        assert!(
            row.split_whitespace().nth(1) == Some(expected),
            "{row} ({described})"
        );
    }
}
