#!/usr/bin/env python3
"""Soak test: one broker under an hour (by default) of mixed, partly hostile
traffic, sampled as it runs.

    compat-tests/.venv/bin/python bench/soak.py                  # 60 minutes
    compat-tests/.venv/bin/python bench/soak.py --minutes 5      # a short run

Starts `target/release/wharf` (or $WHARF_BIN) on a free loopback port with a
fresh data directory, then runs side by side until the time is up:
- an idempotent acks=all producer (confluent-kafka) writing numbered records
  to a 6-partition topic at --rate records/s, remembering every acknowledged
  (partition, offset, number);
- consumers joining and leaving one group over and over (group churn), each
  reading and committing for a few seconds;
- an admin client creating, describing, altering and deleting topics;
- a hostile client: garbage frames, frames whose prefix claims a megabyte and
  that never finish, oversized frames, unknown APIs, and floods of
  connections opened and dropped;
- a probe timing a Metadata round trip on a fresh socket every second;
- a sampler reading the broker's RSS, anonymous memory and open descriptors
  every 10 s.

At the end it stops the load, reads the whole topic back, and checks that
every acknowledged record is there, at its offset, exactly once. It prints
the samples' first and last values and maxima per quarter of the run, the
probe's latency per quarter, the number of operations of each kind and the
errors seen, and exits non-zero if a record was lost or the broker died.
Not part of `.ci/run`: it runs for an hour.
"""

import argparse
import collections
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "compat-tests"))

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import (  # noqa: E402
    AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic)

import kafka_wire as kw  # noqa: E402

TOPIC = "soak"
PARTITIONS = 6


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = collections.Counter()
        self.errors = collections.Counter()

    def op(self, kind, n=1):
        with self.lock:
            self.ops[kind] += n

    def error(self, kind):
        with self.lock:
            self.errors[kind] += 1


def producer_loop(bootstrap, stop, rate, acked, stats):
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5, "socket.timeout.ms": 10000})
    seq = 0

    def report(err, msg):
        if err is not None:
            stats.error(f"produce: {err.name()}")
        else:
            acked[msg.partition()].append((msg.offset(), int(msg.value())))
            stats.op("records acknowledged")

    started = time.monotonic()
    while not stop.is_set():
        due = int((time.monotonic() - started) * rate)
        while seq < due:
            try:
                p.produce(TOPIC, value=str(seq).encode(), partition=seq % PARTITIONS,
                          on_delivery=report)
                seq += 1
            except BufferError:
                p.poll(0.05)
        p.poll(0.01)
    if p.flush(60) != 0:
        stats.error("produce: unflushed at the end")
    return seq


def group_churn_loop(bootstrap, stop, stats, worker):
    rnd = random.Random(worker)
    while not stop.is_set():
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": "soak-group",
                      "client.id": f"churn-{worker}", "auto.offset.reset": "earliest",
                      "enable.auto.commit": False, "session.timeout.ms": 6000})
        try:
            c.subscribe([TOPIC])
            stats.op("group joins")
            until = time.monotonic() + rnd.uniform(3, 15)
            while time.monotonic() < until and not stop.is_set():
                msg = c.poll(0.2)
                if msg is None:
                    continue
                if msg.error():
                    stats.error(f"consume: {msg.error().name()}")
                    continue
                stats.op("records consumed")
                if rnd.random() < 0.01:
                    try:
                        c.commit(message=msg, asynchronous=False)
                        stats.op("offset commits")
                    except KafkaException as e:
                        # Commits during a rebalance fail by design.
                        stats.error(f"commit: {e.args[0].name()}")
        finally:
            c.close()


def admin_loop(bootstrap, stop, stats):
    a = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})
    i = 0
    while not stop.is_set():
        name = f"churn-{i % 20}"
        i += 1
        try:
            a.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)],
                            request_timeout=15)[name].result(20)
            res = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[
                ConfigEntry("retention.ms", "3600000",
                            incremental_operation=AlterConfigOpType.SET)])
            a.incremental_alter_configs([res])[res].result(20)
            a.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, name)])
            a.list_topics(timeout=10)
            a.delete_topics([name], request_timeout=15)[name].result(20)
            stats.op("admin cycles")
        except KafkaException as e:
            stats.error(f"admin: {e.args[0].name()}")
        stop.wait(1.0)


def hostile_loop(port, stop, stats):
    rnd = random.Random(7)
    held = collections.deque()
    while not stop.is_set():
        kind = rnd.choice(["garbage", "half-sent", "oversized", "unknown-api", "flood"])
        try:
            if kind == "flood":
                socks = []
                for _ in range(200):
                    socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
                for s in socks:
                    s.close()
            else:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                if kind == "garbage":
                    s.sendall(struct.pack(">i", 64) + os.urandom(64))
                elif kind == "half-sent":
                    s.sendall(struct.pack(">i", (1 << 20) + 1) + os.urandom(100))
                    held.append((time.monotonic(), s))
                    s = None
                elif kind == "oversized":
                    s.sendall(struct.pack(">i", 0x7FFFFFF0))
                elif kind == "unknown-api":
                    body = struct.pack(">hhih", 9999, 0, 1, 0)
                    s.sendall(struct.pack(">i", len(body)) + body)
                if s is not None:
                    s.close()
            stats.op(f"hostile {kind}")
        except OSError as e:
            stats.error(f"hostile {kind}: {type(e).__name__}")
        # Half-sent frames are held up to a minute, at most 50 at once.
        while held and (len(held) > 50 or time.monotonic() - held[0][0] > 60):
            held.popleft()[1].close()
        stop.wait(0.2)
    for _, s in held:
        s.close()


def probe_loop(bootstrap, stop, latencies, stats):
    while not stop.is_set():
        started = time.monotonic()
        try:
            with kw.Conn(bootstrap, timeout=10) as conn:
                kw.metadata(conn, 1, topics=[TOPIC], allow_auto_create=False)
            latencies.append((time.monotonic(), (time.monotonic() - started) * 1000))
            stats.op("probe metadata")
        except Exception as e:  # noqa: BLE001 - every failure is a finding
            stats.error(f"probe: {type(e).__name__}")
        stop.wait(1.0)


def proc_sample(pid):
    status = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon"):
                status[key] = int(value.split()[0]) // 1024
    status["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return status


def sampler_loop(pid, stop, samples):
    while not stop.is_set():
        try:
            samples.append((time.monotonic(), proc_sample(pid)))
        except OSError:
            return
        stop.wait(10.0)


def verify(bootstrap, acked):
    """Every acknowledged record at its offset, exactly once: (checked, lost)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "soak-verify",
                  "enable.auto.commit": False, "enable.partition.eof": True})
    c.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    stored = {p: {} for p in range(PARTITIONS)}
    eof = set()
    deadline = time.monotonic() + 600
    while len(eof) < PARTITIONS and time.monotonic() < deadline:
        msg = c.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == -191:  # _PARTITION_EOF
                eof.add(msg.partition())
            continue
        stored[msg.partition()][msg.offset()] = int(msg.value())
    c.close()
    checked = lost = 0
    seen = collections.Counter()
    for p, entries in acked.items():
        for offset, seq in entries:
            checked += 1
            if stored[p].get(offset) != seq:
                lost += 1
    for p in stored:
        seen.update(stored[p].values())
    duplicates = sum(1 for n in seen.values() if n > 1)
    return checked, lost, duplicates


def quarters(points):
    """Split (time, value) points into four equal spans of time."""
    if not points:
        return []
    t0, t1 = points[0][0], points[-1][0]
    span = max(t1 - t0, 1e-9) / 4
    out = [[] for _ in range(4)]
    for t, v in points:
        out[min(int((t - t0) / span), 3)].append(v)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--rate", type=int, default=500, help="records/s produced")
    ap.add_argument("--consumers", type=int, default=3)
    ap.add_argument("--binary", default=os.environ.get(
        "WHARF_BIN", os.path.join(ROOT, "target", "release", "wharf")))
    args = ap.parse_args()

    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    data = tempfile.mkdtemp(prefix="wharf-soak-")
    log_path = os.path.join(data + ".log")
    log = open(log_path, "wb")
    broker = subprocess.Popen([args.binary, "serve", "--listen", bootstrap, "--data-dir", data,
                               "--num-partitions", str(PARTITIONS)], stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                broker.kill()
                sys.exit("broker did not start")
            time.sleep(0.05)
    try:
        return run(args, broker, bootstrap, port, log, log_path)
    finally:
        if broker.poll() is None:
            broker.kill()
            broker.wait()


def run(args, broker, bootstrap, port, log, log_path):
    setup = AdminClient({"bootstrap.servers": bootstrap})
    setup.create_topics(
        [NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)])[TOPIC].result(20)

    stats = Stats()
    stop = threading.Event()
    acked = {p: [] for p in range(PARTITIONS)}
    latencies, samples = [], []
    samples.append((time.monotonic(), proc_sample(broker.pid)))
    produced = []
    threads = [
        threading.Thread(target=lambda: produced.append(
            producer_loop(bootstrap, stop, args.rate, acked, stats))),
        threading.Thread(target=admin_loop, args=(bootstrap, stop, stats)),
        threading.Thread(target=hostile_loop, args=(port, stop, stats)),
        threading.Thread(target=probe_loop, args=(bootstrap, stop, latencies, stats)),
        threading.Thread(target=sampler_loop, args=(broker.pid, stop, samples)),
    ] + [threading.Thread(target=group_churn_loop, args=(bootstrap, stop, stats, i))
         for i in range(args.consumers)]
    for t in threads:
        t.daemon = True
        t.start()
    started = time.monotonic()
    end = started + args.minutes * 60
    while time.monotonic() < end and broker.poll() is None:
        time.sleep(min(30, max(0.1, end - time.monotonic())))
        elapsed = (time.monotonic() - started) / 60
        last = samples[-1][1] if samples else {}
        print(f"[{elapsed:5.1f} min] acked={stats.ops['records acknowledged']} "
              f"rss={last.get('VmRSS')}MiB anon={last.get('RssAnon')}MiB fds={last.get('fds')} "
              f"errors={sum(stats.errors.values())}", flush=True)
    alive = broker.poll() is None
    stop.set()
    for t in threads:
        t.join(120)
    if alive:
        samples.append((time.monotonic(), proc_sample(broker.pid)))
        checked, lost, dups = verify(bootstrap, acked)
        broker.terminate()
        broker.wait(60)
    else:
        checked, lost, dups = 0, -1, -1
    log.close()

    print("\n== soak summary ==")
    print(f"duration: {(time.monotonic() - started) / 60:.1f} min; broker "
          f"{'alive to the end' if alive else 'DIED (see ' + log_path + ')'}; exit {broker.returncode}")
    print(f"records produced {produced[0] if produced else '?'}, acknowledged {checked}, "
          f"lost {lost}, stored more than once {dups}")
    for key in ("VmRSS", "RssAnon", "fds"):
        pts = [(t, s[key]) for t, s in samples if key in s]
        qs = quarters(pts)
        unit = "" if key == "fds" else " MiB"
        print(f"{key:8s} start {pts[0][1]}{unit}, end {pts[-1][1]}{unit}, max per quarter "
              f"{[max(q) if q else None for q in qs]}")
    qs = quarters(latencies)
    print("metadata probe ms p50/p99/max per quarter: " + ", ".join(
        f"{statistics.median(q):.2f}/{sorted(q)[int(len(q) * 0.99) - 1 if len(q) > 1 else 0]:.2f}"
        f"/{max(q):.2f}" if q else "-" for q in qs))
    print("operations: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.ops.items())))
    print("errors: " + (", ".join(f"{k} {v}" for k, v in sorted(stats.errors.items())) or "none"))
    with open(log_path, "rb") as f:
        text = f.read().decode(errors="replace")
    levels = collections.Counter(w for line in text.splitlines() for w in ("WARN", "ERROR")
                                 if f" {w} " in line)
    print(f"broker log: {dict(levels)} ({log_path})")
    return 0 if alive and lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
