//! `wharf serve --memory`: the logs live on the memory filesystem, nothing
//! is written under a data directory on disk, and the data is gone when the
//! broker stops (or at the next memory-mode start, after a kill).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{create_topic, fetch_partition, produce_batch, TestBroker};

fn two_records() -> Vec<u8> {
    wharf_protocol::batch::build_batch(
        0,
        &[
            (Some(&b"k"[..]), Some(&b"one"[..]), 1_700_000_000_000),
            (Some(&b"k"[..]), Some(&b"two"[..]), 1_700_000_000_000),
        ],
        wharf_protocol::compression::Compression::None,
    )
    .unwrap()
}

/// A memory filesystem directory of the test's own, where its brokers make
/// their directories (WHARF_MEMORY_ROOT): other tests' memory-mode starts
/// sweep /dev/shm itself.
fn memory_root() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm").unwrap()
}

/// Starts a memory-mode broker under `root`.
fn start_in(root: &tempfile::TempDir) -> TestBroker {
    let root = root.path().to_str().unwrap();
    TestBroker::start_logged_env(&["--memory"], &[("WHARF_MEMORY_ROOT", root)])
}

/// The memory-mode directory of the broker with `pid` under `root`.
fn memory_dir(root: &tempfile::TempDir, pid: u32) -> PathBuf {
    let prefix = format!("wharf-memory-{pid}-");
    let found: Vec<PathBuf> = std::fs::read_dir(root.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    found.into_iter().next().unwrap()
}

#[test]
fn memory_mode_keeps_the_logs_in_memory_and_removes_them_on_stop() {
    let root = memory_root();
    let mut broker = start_in(&root);
    let pid = broker.pid();
    let dir = memory_dir(&root, pid);
    let log = broker.log();
    let first = log.lines().next().unwrap_or_default();
    assert!(
        first.contains("memory mode") && first.contains(&dir.display().to_string()),
        "the first log line says so: {first}"
    );

    let mut client = broker.client();
    assert_eq!(create_topic(&mut client, "kept", 1).topics[0].error_code, 0);
    let (error, base) = produce_batch(&mut client, "kept", 0, two_records());
    assert_eq!((error, base), (0, 0));
    let fetched = fetch_partition(&mut client, "kept", 0, 0);
    assert_eq!(fetched.error_code, 0);
    assert_eq!(fetched.high_watermark, 2);
    assert!(fetched.records.unwrap().len() > 61);

    // The partition's files are on the memory filesystem; the directory a
    // disk-mode broker would have used got nothing.
    assert!(dir.join("kept-0").is_dir(), "{}", dir.display());
    assert_eq!(std::fs::read_dir(broker.dir.path()).unwrap().count(), 0);

    broker.stop(true);
    assert!(!dir.exists(), "a graceful stop removes {}", dir.display());
    assert!(broker.log().contains("memory mode: data removed"));
}

#[test]
fn a_killed_memory_broker_data_is_removed_by_the_next_start() {
    let root = memory_root();
    let mut killed = start_in(&root);
    let dir = memory_dir(&root, killed.pid());
    let mut client = killed.client();
    assert_eq!(create_topic(&mut client, "left", 1).topics[0].error_code, 0);
    assert!(dir.join("left-0").is_dir());
    killed.stop(false);
    assert!(dir.exists(), "kill -9 leaves the data behind");

    let next = start_in(&root);
    assert!(!dir.exists(), "the next start removes {}", dir.display());
    assert!(next
        .log()
        .contains("memory mode: removed the data a stopped broker left"));
    // The new broker starts empty.
    let mut client = next.client();
    let fetched = fetch_partition(&mut client, "left", 0, 0);
    assert_ne!(fetched.error_code, 0);
}

#[test]
fn memory_mode_is_refused_for_a_member_of_a_quorum() {
    let out = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args([
            "serve",
            "--memory",
            "--listen",
            "127.0.0.1:0",
            "--node-id",
            "1",
            "--controller-listen",
            "127.0.0.1:0",
            "--controller-quorum-voters",
            "1@127.0.0.1:1,2@127.0.0.1:2,3@127.0.0.1:3",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--memory keeps nothing across a restart"),
        "{stderr}"
    );
    assert!(!stderr.contains("wharf is ready"), "{stderr}");
}
