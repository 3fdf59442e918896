//! `wharf consume --group` processes sharing a topic's partitions against a
//! real `wharf serve`: with the cooperative-sticky assignor (the default)
//! and with range, two members split 6 partitions 3/3, a third brings them
//! to 2/2/2, and every record produced is printed exactly once across the
//! members. Assignments are read with `wharf group describe --output json`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Output};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::{run_with_input, spawn_lines, wait_bounded, TestBroker};
use serde_json::Value;

fn wharf(bootstrap: &str, args: &[&str], stdin: &[u8]) -> Output {
    run_with_input(
        Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(args)
            .args(["--bootstrap-server", bootstrap]),
        stdin,
    )
}

fn ok(bootstrap: &str, args: &[&str], stdin: &[u8]) -> String {
    let out = wharf(bootstrap, args, stdin);
    assert!(
        out.status.success(),
        "wharf {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `wharf consume --group` process; its stdout lines arrive on `lines`.
struct Member {
    child: Child,
    lines: Receiver<String>,
    printed: Vec<String>,
}

impl Member {
    fn spawn(bootstrap: &str, args: &[&str]) -> Self {
        let (child, lines) = spawn_lines(
            Command::new(env!("CARGO_BIN_EXE_wharf"))
                .args(args)
                .args(["--bootstrap-server", bootstrap]),
        );
        Self {
            child,
            lines,
            printed: Vec::new(),
        }
    }

    /// Takes what the process printed so far.
    fn drain(&mut self) {
        while let Ok(line) = self.lines.try_recv() {
            self.printed.push(line);
        }
    }

    /// SIGTERM; the process must exit 0 within 20 s. Returns every line it
    /// printed.
    fn terminate(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = wait_bounded(self.child, Duration::from_secs(20));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        loop {
            match self.lines.recv_timeout(Duration::from_secs(10)) {
                Ok(line) => self.printed.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("stdout never closed"),
            }
        }
        self.printed
    }
}

/// The group's protocol and each member's partitions, by member id, when
/// the group is Stable.
fn stable(bootstrap: &str, group: &str) -> Option<(String, BTreeMap<String, Vec<i64>>)> {
    let out = wharf(
        bootstrap,
        &["group", "describe", group, "--output", "json"],
        b"",
    );
    if !out.status.success() {
        return None;
    }
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    if d["state"] != "Stable" {
        return None;
    }
    let members = d["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let mut partitions: Vec<i64> = m["assignment"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["partition"].as_i64().unwrap())
                .collect();
            partitions.sort_unstable();
            (m["member_id"].as_str().unwrap().to_string(), partitions)
        })
        .collect();
    Some((d["protocol"].as_str().unwrap_or("").to_string(), members))
}

/// Waits (at most 60 s) until the group is Stable with `sizes.len()`
/// members holding that many partitions each (in any order).
fn wait_for_split(
    bootstrap: &str,
    group: &str,
    sizes: &[usize],
    members: &mut [&mut Member],
) -> (String, BTreeMap<String, Vec<i64>>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = None;
    loop {
        for m in members.iter_mut() {
            m.drain();
        }
        if let Some((protocol, assignment)) = stable(bootstrap, group) {
            let mut got: Vec<usize> = assignment.values().map(Vec::len).collect();
            got.sort_unstable();
            let mut want = sizes.to_vec();
            want.sort_unstable();
            if got == want {
                return (protocol, assignment);
            }
            last = Some(assignment);
        }
        assert!(
            Instant::now() < deadline,
            "the group never split as {sizes:?}; last seen: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Produces `keys` records `key:value` (value = key) and returns their keys.
fn produce(bootstrap: &str, topic: &str, keys: std::ops::Range<u32>) -> Vec<String> {
    let keys: Vec<String> = keys.map(|i| format!("key-{i}")).collect();
    let input: String = keys.iter().map(|k| format!("{k}:{k}\n")).collect();
    ok(
        bootstrap,
        &["produce", topic, "--key-separator", ":"],
        input.as_bytes(),
    );
    keys
}

/// Waits (at most 60 s) until the members printed `count` records in all.
fn wait_for_records(members: &mut [&mut Member], count: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for m in members.iter_mut() {
            m.drain();
        }
        let total: usize = members.iter().map(|m| m.printed.len()).sum();
        if total >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {total} of {count} records printed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every key printed, across the members, must be one of `expected`, each
/// exactly once.
fn assert_exactly_once(printed: &[Vec<String>], expected: &[String]) {
    let mut all: Vec<String> = printed
        .iter()
        .flatten()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    all.sort();
    let mut want = expected.to_vec();
    want.sort();
    assert_eq!(all, want, "each record exactly once");
}

fn all_partitions(assignment: &BTreeMap<String, Vec<i64>>) -> Vec<i64> {
    let mut all: Vec<i64> = assignment.values().flatten().copied().collect();
    all.sort_unstable();
    all
}

/// A broker with a topic of 6 partitions; its bootstrap address.
fn broker_with_six_partitions(topic: &str) -> (TestBroker, String) {
    let broker = TestBroker::start();
    let bootstrap = broker.addr.to_string();
    ok(
        &bootstrap,
        &["topic", "create", topic, "--partitions", "6"],
        b"",
    );
    (broker, bootstrap)
}

#[test]
fn cooperative_members_split_six_partitions_and_a_third_takes_one_from_each() {
    let (_broker, bootstrap) = broker_with_six_partitions("work");
    let args = [
        "consume",
        "work",
        "--group",
        "coop",
        "--from-beginning",
        "--print-key",
    ];
    let mut a = Member::spawn(&bootstrap, &args);
    wait_for_split(&bootstrap, "coop", &[6], &mut [&mut a]);
    let mut b = Member::spawn(&bootstrap, &args);
    let (protocol, two) = wait_for_split(&bootstrap, "coop", &[3, 3], &mut [&mut a, &mut b]);
    assert_eq!(protocol, "cooperative-sticky");
    assert_eq!(all_partitions(&two), [0, 1, 2, 3, 4, 5]);

    let mut expected = produce(&bootstrap, "work", 0..60);
    wait_for_records(&mut [&mut a, &mut b], 60);

    // Records keep coming while the third member joins: the first two go
    // on reading their partitions through the rebalance.
    let mut c = Member::spawn(&bootstrap, &args);
    for from in (60..90).step_by(10) {
        expected.extend(produce(&bootstrap, "work", from..from + 10));
    }
    let (protocol, three) = wait_for_split(
        &bootstrap,
        "coop",
        &[2, 2, 2],
        &mut [&mut a, &mut b, &mut c],
    );
    assert_eq!(protocol, "cooperative-sticky");
    assert_eq!(all_partitions(&three), [0, 1, 2, 3, 4, 5]);
    // Sticky: the two first members kept two of their three partitions.
    for (member, partitions) in &two {
        let now: BTreeSet<i64> = three[member].iter().copied().collect();
        let before: BTreeSet<i64> = partitions.iter().copied().collect();
        assert!(now.is_subset(&before), "{two:?} then {three:?}");
    }

    expected.extend(produce(&bootstrap, "work", 90..120));
    wait_for_records(&mut [&mut a, &mut b, &mut c], 120);
    let printed = [a.terminate(), b.terminate(), c.terminate()];
    assert_exactly_once(&printed, &expected);
    assert!(printed.iter().all(|p| !p.is_empty()), "{printed:?}");

    // What they printed is committed: a new member finds nothing to read.
    let out = ok(
        &bootstrap,
        &["consume", "work", "--group", "coop", "--timeout-ms", "2000"],
        b"",
    );
    assert_eq!(out, "");
}

#[test]
fn range_members_split_six_partitions_in_ranges_and_a_member_offering_both_joins_them() {
    let (_broker, bootstrap) = broker_with_six_partitions("jobs");
    let range = [
        "consume",
        "jobs",
        "--group",
        "ranged",
        "--from-beginning",
        "--print-key",
        "--assignor",
        "range",
    ];
    let mut a = Member::spawn(&bootstrap, &range);
    let mut b = Member::spawn(&bootstrap, &range);
    let (protocol, two) = wait_for_split(&bootstrap, "ranged", &[3, 3], &mut [&mut a, &mut b]);
    assert_eq!(protocol, "range");
    // Range: contiguous ranges in member-id order.
    let ranges: Vec<&Vec<i64>> = two.values().collect();
    assert_eq!(ranges, [&vec![0, 1, 2], &vec![3, 4, 5]]);

    let mut expected = produce(&bootstrap, "jobs", 0..60);
    wait_for_records(&mut [&mut a, &mut b], 60);

    // A member offering cooperative-sticky and range: range is the one
    // every member supports.
    let mut c = Member::spawn(&bootstrap, &range[..6]);
    let (protocol, three) = wait_for_split(
        &bootstrap,
        "ranged",
        &[2, 2, 2],
        &mut [&mut a, &mut b, &mut c],
    );
    assert_eq!(protocol, "range");
    let ranges: Vec<&Vec<i64>> = three.values().collect();
    assert_eq!(ranges, [&vec![0, 1], &vec![2, 3], &vec![4, 5]]);

    expected.extend(produce(&bootstrap, "jobs", 60..120));
    wait_for_records(&mut [&mut a, &mut b, &mut c], 120);
    let printed = [a.terminate(), b.terminate(), c.terminate()];
    assert_exactly_once(&printed, &expected);
}
