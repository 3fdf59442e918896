#!/usr/bin/env python3
"""Replication benchmark: a 3-broker Wharf cluster on loopback, measured with
real librdkafka clients, comparing in one run

  * RF 1 acks=1, RF 1 acks=all, RF 3 acks=1 and RF 3 acks=all:
    produce throughput (msgs/s, MB/s) of a bulk run of --count records of
    --size bytes into a fresh topic of --partitions partitions per case, and
    the brokers' CPU seconds per MB produced (the three brokers' utime+stime
    from /proc/<pid>/stat, read before and after each run);
  * produce-ack latency p50/p99 at paced rates (--rates, default 1,000 and
    10,000 msgs/s) for RF 1 acks=1 and RF 3 acks=all;
  * idle CPU: with an RF 3 topic fully in sync and no clients connected, the
    three brokers' total CPU% over --idle-seconds (followers long-poll their
    leader; they must not busy-poll).

Each broker gets its own temporary data directory (removed at the end); its
output goes to a log file in a temporary directory whose path is printed if
a broker dies or the run fails. The bulk and latency helpers are those of
bench/run.py (rdkafka_performance and bench/.bin/latency when
bench/build-rdkafka-performance.sh has built them, else confluent-kafka).

Run from the repository root after `bash .ci/run` (release binary + venv):

    compat-tests/.venv/bin/python bench/cluster.py            # full run
    compat-tests/.venv/bin/python bench/cluster.py --quick    # smoke test

--reps repeats the four throughput cases, alternating them to cancel machine
drift, and reports medians.
"""

import argparse
import gc
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as single  # noqa: E402  (bench/run.py)

from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

CASES = [("1", "1"), ("1", "all"), ("3", "1"), ("3", "all")]  # (rf, acks)
LATENCY_CASES = [("1", "1"), ("3", "all")]


class Cluster:
    """Three `wharf serve` processes forming one cluster on loopback."""

    def __init__(self, binary, log_level, size=3):
        self.log_dir = tempfile.mkdtemp(prefix="wharf-cluster-logs-")
        self.brokers, self.logs, self.addresses = [], [], []
        ports = [(single.free_port(), single.free_port()) for _ in range(size)]
        voters = ",".join(f"{i + 1}@127.0.0.1:{cp}" for i, (_, cp) in enumerate(ports))
        try:
            self._start(binary, log_level, ports, voters)
        except BaseException:
            self.stop()
            raise
        self.bootstrap = ",".join(self.addresses)

    def _start(self, binary, log_level, ports, voters):
        for i, (port, cport) in enumerate(ports):
            node = i + 1
            data = tempfile.TemporaryDirectory(prefix=f"wharf-cluster-{node}-")
            log = open(os.path.join(self.log_dir, f"broker-{node}.log"), "wb")
            self.logs.append(log)
            argv = [binary, "serve", "--node-id", str(node), "--listen", f"127.0.0.1:{port}",
                    "--controller-listen", f"127.0.0.1:{cport}",
                    "--controller-quorum-voters", voters, "--data-dir", data.name,
                    "--log-level", log_level]
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
            self.addresses.append(f"127.0.0.1:{port}")
            self.brokers.append(single.Broker(f"broker {node}", f"127.0.0.1:{port}", proc,
                                              data_dir=data))

    def check_alive(self):
        for b in self.brokers:
            if b.proc.poll() is not None:
                raise SystemExit(f"{b.label} exited with {b.proc.returncode}; "
                                 f"broker logs in {self.log_dir}")

    def dead(self):
        return [b for b in self.brokers if b.proc.poll() is not None]

    def cpu_seconds(self):
        self.check_alive()
        return sum(b.cpu_seconds() for b in self.brokers)

    def wait_ready(self, timeout=60):
        """Until every broker answers Metadata and Metadata lists all brokers."""
        deadline = time.monotonic() + timeout
        for b in self.brokers:
            port = int(b.bootstrap.rsplit(":", 1)[1])
            while not single.answered_metadata(port):
                self.check_alive()
                if time.monotonic() > deadline:
                    raise SystemExit(f"{b.label} did not answer Metadata within {timeout} s; "
                                     f"logs in {self.log_dir}")
                time.sleep(0.05)
        admin = self.admin()
        while True:
            self.check_alive()
            try:
                if len(admin.list_topics(timeout=5).brokers) == len(self.brokers):
                    return
            except Exception:  # KafkaException while the quorum forms
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"Metadata did not list {len(self.brokers)} brokers within "
                                 f"{timeout} s; logs in {self.log_dir}")
            time.sleep(0.2)

    def admin(self):
        return AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 3})

    def create_topic(self, partitions, rf, timeout=60):
        """A fresh topic, returned once every partition has a leader and rf ISR members."""
        name = f"bench-rf{rf}-{uuid.uuid4().hex[:8]}"
        admin = self.admin()
        admin.create_topics([NewTopic(name, partitions, rf)])[name].result(30)
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                topic = admin.list_topics(name, timeout=5).topics.get(name)
                parts = topic.partitions if topic and not topic.error else {}
                if len(parts) == partitions and all(
                        p.leader >= 0 and len(p.isrs) == rf for p in parts.values()):
                    return name
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"topic {name} did not reach {rf} in-sync replicas within "
                                 f"{timeout} s; logs in {self.log_dir}")
            time.sleep(0.1)

    def delete_topic(self, name):
        admin = self.admin()  # held until the deletion is answered
        try:
            admin.delete_topics([name])[name].result(30)
        except Exception as e:  # only frees disk space; not worth failing the run
            print(f"delete {name}: {e}", file=sys.stderr)

    def stop(self):
        for b in self.brokers:
            if b.proc.poll() is None:
                b.proc.send_signal(signal.SIGTERM)
        for b in self.brokers:
            b.stop()  # SIGTERM again, SIGKILL after 10 s; removes the data dir
        for log in self.logs:
            log.close()


def produce(cluster, topic, acks, args):
    """Seconds to produce and have acknowledged args.count records of args.size bytes."""
    if args.client == "rdkafka_performance":
        return single.produce_rdperf(cluster.bootstrap, topic, acks, args.count, args.size)
    return single.produce_confluent(cluster.bootstrap, topic, acks, args.count, args.size)


def throughput(cluster, rf, acks, args):
    topic = cluster.create_topic(args.partitions, int(rf))
    try:
        cpu0 = cluster.cpu_seconds()
        wall = produce(cluster, topic, acks, args)
        cpu1 = cluster.cpu_seconds()
    finally:
        cluster.delete_topic(topic)
    mb = args.count * args.size / 1e6
    return {"produce msgs/s": args.count / wall, "produce MB/s": mb / wall,
            "broker CPU s/MB": (cpu1 - cpu0) / mb}


def ack_latency_confluent(bootstrap, topic, acks, rate, seconds, size):
    """Paced production from a Python loop (linger.ms=0); produce-ack latencies in ms.
    At 10,000 msgs/s on 2 cores the interpreter's own delays show in the p99."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": acks})
    producer.produce(topic, b"warm-up")  # connect and learn the leader before timing
    if producer.flush(30):
        raise SystemExit(f"latency warm-up to {topic} was not acknowledged")
    latencies, failed = [], []

    def report(err, _msg, sent):
        if err:
            failed.append(err)
        else:
            latencies.append((time.monotonic_ns() - sent) / 1e6)

    value = b"p" * size
    total = int(rate * seconds)
    interval_ns = 1e9 / rate
    start_ns = time.monotonic_ns()
    for i in range(total):
        due = start_ns + i * interval_ns
        while True:  # sleep in poll() so delivery reports are timed as they come
            now = time.monotonic_ns()
            if now >= due:
                break
            producer.poll((due - now) / 1e9)
        sent = time.monotonic_ns()
        producer.produce(topic, value, on_delivery=lambda e, m, s=sent: report(e, m, s))
        producer.poll(0)
    left = producer.flush(60)
    if left or failed:
        raise SystemExit(f"latency run: {left} unacknowledged, errors: {failed[:3]}")
    return single.percentile(latencies, 50), single.percentile(latencies, 99)


def ack_latency_c(bootstrap, topic, acks, rate, seconds, size):
    """bench/.bin/latency (bench/latency.c) with the given acks; produce-ack p50/p99 in ms."""
    count = int(rate * seconds)
    out = subprocess.run([single.LATENCY, bootstrap, topic, str(rate), str(count), str(size), acks],
                         capture_output=True, text=True, timeout=seconds + 120)
    fields = out.stdout.split()
    if len(fields) < 4 or fields[0] != "ack_ms":
        raise SystemExit(f"latency probe failed ({out.returncode}): "
                         f"{out.stdout[-300:]} {out.stderr[-500:]}")
    if out.returncode != 0:
        print(f"latency probe @{rate}/s: {out.stdout.strip()}", file=sys.stderr)
    return float(fields[1]), float(fields[2])


def latency(cluster, rf, acks, rate, args):
    topic = cluster.create_topic(1, int(rf))
    try:
        probe = ack_latency_c if args.latency_client == "c" else ack_latency_confluent
        p50, p99 = probe(cluster.bootstrap, topic, acks, rate, args.latency_seconds,
                         args.latency_size)
    finally:
        cluster.delete_topic(topic)
    cluster.check_alive()
    return {f"ack p50 ms @{rate}/s": p50, f"ack p99 ms @{rate}/s": p99}


def idle_cpu(cluster, seconds):
    """Total CPU% of the brokers over `seconds` with an in-sync RF 3 topic and no clients."""
    topic = cluster.create_topic(1, 3)
    gc.collect()  # destroy the admin clients: no client connection may remain
    time.sleep(1)  # let the followers' first fetches settle into long polls
    per0 = [b.cpu_seconds() for b in cluster.brokers]
    t0 = time.monotonic()
    time.sleep(seconds)
    per1 = [b.cpu_seconds() for b in cluster.brokers]
    wall = time.monotonic() - t0
    cluster.check_alive()
    per = [(b - a) / wall * 100 for a, b in zip(per0, per1)]
    return topic, sum(per), per


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:.4f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wharf", default=os.path.join(single.ROOT, "target", "release", "wharf"),
                    help="wharf binary to start (default: target/release/wharf)")
    ap.add_argument("--count", type=int, default=200_000, help="records per bulk run")
    ap.add_argument("--size", type=int, default=1024, help="record size for bulk runs, bytes")
    ap.add_argument("--partitions", type=int, default=1, help="partitions of each bulk topic")
    ap.add_argument("--reps", type=int, default=1,
                    help="repetitions of the throughput cases (medians are reported)")
    ap.add_argument("--rates", type=int, nargs="*", default=[1000, 10000],
                    help="paced rates for latency runs, msgs/s")
    ap.add_argument("--latency-seconds", type=float, default=5)
    ap.add_argument("--latency-size", type=int, default=100, help="record size for latency runs")
    ap.add_argument("--idle-seconds", type=float, default=10)
    ap.add_argument("--log-level", default="warn", help="brokers' --log-level")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 20,000 records per bulk run, 2 s latency runs")
    have_rdperf = os.access(single.RDKAFKA_PERFORMANCE, os.X_OK)
    ap.add_argument("--client", choices=["rdkafka_performance", "confluent"],
                    default="rdkafka_performance" if have_rdperf else "confluent",
                    help="bulk client (default rdkafka_performance when "
                         "bench/build-rdkafka-performance.sh has built it)")
    have_latency = os.access(single.LATENCY, os.X_OK)
    ap.add_argument("--latency-client", choices=["c", "confluent"],
                    default="c" if have_latency else "confluent",
                    help="latency runs: bench/latency.c (default when built) or a Python loop")
    args = ap.parse_args()
    if args.quick:
        args.count, args.latency_seconds = min(args.count, 20_000), 2
    if args.latency_client == "c" and not have_latency:
        raise SystemExit(f"{single.LATENCY} not found: run bench/build-rdkafka-performance.sh")
    if args.client == "rdkafka_performance" and not have_rdperf:
        raise SystemExit(f"{single.RDKAFKA_PERFORMANCE} not found: "
                         "run bench/build-rdkafka-performance.sh")
    if not os.access(args.wharf, os.X_OK):
        raise SystemExit(f"{args.wharf} not found: cargo build --release")

    runs = {case: [] for case in CASES}
    lat = {case: {} for case in LATENCY_CASES}
    cluster = Cluster(args.wharf, args.log_level)
    ok = False
    try:
        t0 = time.monotonic()
        cluster.wait_ready()
        print(f"cluster of 3 ready in {time.monotonic() - t0:.1f} s at {cluster.bootstrap}; "
              f"broker logs in {cluster.log_dir}", file=sys.stderr)

        # Idle first, before any producer or consumer has connected.
        print(f"idle CPU over {args.idle_seconds:g} s ...", file=sys.stderr)
        idle_topic, idle_total, idle_per = idle_cpu(cluster, args.idle_seconds)
        cluster.delete_topic(idle_topic)

        for rep in range(args.reps):
            order = CASES if rep % 2 == 0 else CASES[::-1]
            for rf, acks in order:
                print(f"rep {rep + 1}/{args.reps}: throughput RF {rf} acks={acks}, "
                      f"{args.count} x {args.size} B ...", file=sys.stderr)
                runs[(rf, acks)].append(throughput(cluster, rf, acks, args))
        for rf, acks in LATENCY_CASES:
            for rate in args.rates:
                print(f"latency RF {rf} acks={acks} @{rate}/s for {args.latency_seconds:g} s ...",
                      file=sys.stderr)
                lat[(rf, acks)].update(latency(cluster, rf, acks, rate, args))
        ok = True
    finally:
        dead = cluster.dead()
        cluster.stop()
        if dead or not ok:
            for b in dead:
                print(f"{b.label} died (exit {b.proc.returncode})", file=sys.stderr)
            print(f"broker logs kept in {cluster.log_dir}", file=sys.stderr)
        else:
            for name in os.listdir(cluster.log_dir):
                os.unlink(os.path.join(cluster.log_dir, name))
            os.rmdir(cluster.log_dir)

    figures = {}
    for case in CASES:
        keys = runs[case][0].keys()
        figures[case] = {k: statistics.median(r[k] for r in runs[case]) for k in keys}
        figures[case].update(lat.get(case, {}))
    keys = list(figures[CASES[0]].keys())
    for case in LATENCY_CASES:
        keys += [k for k in figures[case] if k not in keys]

    print(f"\n3-broker wharf cluster ({args.wharf}); bulk: {args.count:,} x {args.size} B, "
          f"{args.partitions} partition(s), client {args.client}"
          + (f", median of {args.reps}" if args.reps > 1 else "")
          + f"; latency: {args.latency_seconds:g} s x {args.latency_size} B, "
            f"client {args.latency_client}")
    heads = [f"RF{rf} acks={acks}" for rf, acks in CASES]
    print(f"{'metric':26}" + "".join(f" {h:>14}" for h in heads))
    for key in keys:
        print(f"{key:26}" + "".join(f" {fmt(figures[c].get(key)):>14}" for c in CASES))
    print(f"{'idle CPU % (RF3, 3 brokers)':26} {fmt(idle_total):>14}   "
          f"(per broker: {', '.join(fmt(p) for p in idle_per)}; over {args.idle_seconds:g} s)")
    base = figures[("1", "1")]["produce msgs/s"]
    rf3 = figures[("3", "all")]["produce msgs/s"]
    print(f"RF3 acks=all throughput = {rf3 / base * 100:.0f}% of RF1 acks=1")


if __name__ == "__main__":
    main()
