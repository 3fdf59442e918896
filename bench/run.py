#!/usr/bin/env python3
"""Whole-broker benchmark: start-up, memory, throughput and latency measured
with real librdkafka clients (librdkafka's own rdkafka_performance and the
bench/latency.c probe when bench/build-rdkafka-performance.sh has built
them, else confluent-kafka; or kcat with --client kcat), against a fresh `wharf serve` and optionally a second
Kafka-compatible broker, alternating A, B, A, B to cancel machine drift.

Run from the repository root after `bash .ci/run` (which builds the release
binary and the Python venv):

    compat-tests/.venv/bin/python bench/run.py                 # wharf alone
    compat-tests/.venv/bin/python bench/run.py --peer-bootstrap 127.0.0.1:9093
    compat-tests/.venv/bin/python bench/run.py --peer-cmd 'tansu broker ... {port} ...'

Broker CPU seconds, RSS and start time can only be read for brokers this
script starts (wharf, or --peer-cmd); an external --bootstrap gives
throughput and latency only.
"""

import argparse
import os
import re
import shlex
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RDKAFKA_PERFORMANCE = os.environ.get(
    "RDKAFKA_PERFORMANCE", os.path.join(ROOT, "bench", ".bin", "rdkafka_performance"))
LATENCY = os.path.join(ROOT, "bench", ".bin", "latency")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metadata_v1_request(correlation_id):
    # Header v1: api key 3, version 1, correlation id, client id "bench";
    # body: topics = null (all topics).
    client = b"bench"
    body = struct.pack(">hhih", 3, 1, correlation_id, len(client)) + client
    body += struct.pack(">i", -1)
    return struct.pack(">i", len(body)) + body


def answered_metadata(port):
    """True once the broker on `port` answers a Metadata request."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(metadata_v1_request(1))
            head = s.recv(8)
            return len(head) >= 8 and struct.unpack(">i", head[4:8])[0] == 1
    except OSError:
        return False


class Broker:
    """A broker to measure: started here (pid known) or external."""

    def __init__(self, label, bootstrap, proc=None, start_ms=None, data_dir=None):
        self.label = label
        self.bootstrap = bootstrap
        self.proc = proc
        self.start_ms = start_ms
        self.data_dir = data_dir

    def proc_status(self, field):
        if not self.proc:
            return None
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0  # MiB
        return None

    def cpu_seconds(self):
        if not self.proc:
            return None
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.data_dir:
            self.data_dir.cleanup()


def start(label, argv_for_port, data_dir=None):
    port = free_port()
    argv = argv_for_port(port)
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not answered_metadata(port):
        if proc.poll() is not None:
            raise SystemExit(f"{label} exited during start-up: {argv}")
        if time.perf_counter() - t0 > 30:
            proc.kill()
            raise SystemExit(f"{label} did not answer Metadata within 30 s")
        time.sleep(0.0005)
    start_ms = (time.perf_counter() - t0) * 1000
    return Broker(label, f"127.0.0.1:{port}", proc, start_ms, data_dir)


def start_wharf(binary):
    data = tempfile.TemporaryDirectory(prefix="wharf-bench-")
    return start(
        "wharf",
        lambda port: [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data.name,
                      "--log-level", "warn"],
        data,
    )


def create_topic(bootstrap, partitions):
    name = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    return name


def payload_file(count, size, directory):
    path = os.path.join(directory, f"msgs-{count}-{size}.txt")
    if not os.path.exists(path):
        line = (b"x" * (size - 1)) + b"\n"
        with open(path, "wb") as f:
            for _ in range(count):
                f.write(line)
    return path


class Sampler:
    """Samples a broker's RssAnon every 20 ms in the background; keeps the peak."""

    def __init__(self, broker):
        self.broker, self.peak, self._stop = broker, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            value = self.broker.proc_status("RssAnon")
            if value:
                self.peak = max(self.peak, value)
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run_kcat(args):
    t0 = time.perf_counter()
    out = subprocess.run(["kcat", *args], capture_output=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"kcat {' '.join(args)} failed: {out.stderr.decode()[-500:]}")
    return wall, out.stdout


def produce_confluent(bootstrap, topic, acks, count, size):
    """Produces as fast as librdkafka accepts; returns seconds until all are acknowledged."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": acks,
                         "queue.buffering.max.messages": 1_000_000})
    failed = []
    value = b"x" * size
    t0 = time.perf_counter()
    for _ in range(count):
        while True:
            try:
                producer.produce(topic, value, on_delivery=lambda err, _m: err and failed.append(err))
                break
            except BufferError:
                producer.poll(0.001)
    left = producer.flush(120)
    wall = time.perf_counter() - t0
    if left or failed:
        raise SystemExit(f"produce to {bootstrap}: {left} unflushed, errors: {failed[:3]}")
    return wall


def consume_confluent(bootstrap, topic, partitions, count):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen = 0
    t0 = time.perf_counter()
    while seen < count:
        for msg in consumer.consume(10_000, 1.0):
            if not msg.error():
                seen += 1
        if time.perf_counter() - t0 > 300:
            raise SystemExit(f"consumed only {seen} of {count} from {bootstrap}")
    wall = time.perf_counter() - t0
    consumer.close()
    return wall


def produce_kcat(bootstrap, topic, acks, path):
    wall, _ = run_kcat(["-P", "-b", bootstrap, "-t", topic, "-l", "-X", f"acks={acks}",
                        "-X", "queue.buffering.max.messages=1000000", path])
    return wall


def consume_kcat(bootstrap, topic, count):
    wall, _ = run_kcat(["-C", "-b", bootstrap, "-t", topic, "-o", "beginning",
                        "-c", str(count), "-e", "-q", "-f", "%o\n"])
    return wall


def run_rdperf(args):
    """Runs rdkafka_performance; returns the seconds it reports for the run."""
    out = subprocess.run([RDKAFKA_PERFORMANCE, *args], capture_output=True, text=True)
    text = out.stdout + out.stderr
    # "... 200000 delivered ... in 218ms: ..." / "... consumed in 129ms: ..."
    found = re.findall(r"(?:delivered|consumed).* in (\d+)ms", text)
    if out.returncode != 0 or not found:
        raise SystemExit(f"rdkafka_performance {' '.join(args)} failed: {text[-800:]}")
    return max(int(found[-1]), 1) / 1000


def produce_rdperf(bootstrap, topic, acks, count, size):
    # rdkafka_performance sets linger.ms=1000 of its own accord; give back
    # librdkafka's default (5 ms), which real applications run with.
    return run_rdperf(["-P", "-q", "-t", topic, "-b", bootstrap, "-s", str(size),
                       "-c", str(count), "-a", "-1" if acks == "all" else acks,
                       "-X", "linger.ms=5"])


def consume_rdperf(bootstrap, topic, partitions, count):
    parts = [a for p in range(partitions) for a in ("-p", str(p))]
    return run_rdperf(["-C", "-q", "-t", topic, "-b", bootstrap, *parts, "-o", "beginning",
                       "-c", str(count)])


def bulk(broker, partitions, acks, args, scratch):
    """Produces `args.count` records of `args.size` bytes, then consumes them."""
    count, size = args.count, args.size
    topic = create_topic(broker.bootstrap, partitions)
    cpu0 = broker.cpu_seconds()
    with Sampler(broker) as mem:
        if args.client == "kcat":
            wall = produce_kcat(broker.bootstrap, topic, acks, payload_file(count, size, scratch))
        elif args.client == "rdkafka_performance":
            wall = produce_rdperf(broker.bootstrap, topic, acks, count, size)
        else:
            wall = produce_confluent(broker.bootstrap, topic, acks, count, size)
        cpu1 = broker.cpu_seconds()
        if args.client == "kcat":
            cwall = consume_kcat(broker.bootstrap, topic, count)
        elif args.client == "rdkafka_performance":
            cwall = consume_rdperf(broker.bootstrap, topic, partitions, count)
        else:
            cwall = consume_confluent(broker.bootstrap, topic, partitions, count)
        cpu2 = broker.cpu_seconds()
    mb = count * size / 1e6
    result = {
        "produce msgs/s": count / wall,
        "produce MB/s": mb / wall,
        "consume msgs/s": count / cwall,
        "consume MB/s": mb / cwall,
        "peak anon MiB": mem.peak or None,
    }
    if cpu0 is not None:
        result["produce broker CPU s"] = cpu1 - cpu0
        result["consume broker CPU s/GB"] = (cpu2 - cpu1) / (mb / 1000)
    return result


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def latency(broker, rate, seconds, client, size=100):
    """Paced production at `rate` msgs/s; end-to-end and produce-ack latency in ms."""
    if client == "c":
        return latency_c(broker, rate, seconds, size)
    return latency_confluent(broker, rate, seconds, size)


def latency_figures(rate, e2e, ack):
    """The figures of one latency run from its (p50, p99, max) in ms."""
    figures = {}
    for name, values in (("e2e", e2e), ("ack", ack)):
        for stat, value in zip(("p50", "p99", "max"), values):
            figures[f"{name} {stat} ms @{rate}/s"] = value
    return figures


def latency_c(broker, rate, seconds, size):
    """bench/.bin/latency (bench/latency.c on librdkafka): no client thread spins."""
    topic = create_topic(broker.bootstrap, 1)
    count = int(rate * seconds)
    out = subprocess.run([LATENCY, broker.bootstrap, topic, str(rate), str(count), str(size), "1"],
                         capture_output=True, text=True, timeout=seconds + 120)
    fields = out.stdout.split()
    if len(fields) < 8 or fields[0] != "ack_ms":
        raise SystemExit(f"latency probe failed ({out.returncode}): {out.stdout[-300:]} {out.stderr[-500:]}")
    ack = [float(v) for v in fields[1:4]]
    e2e = [float(v) for v in fields[5:8]]
    if out.returncode != 0:
        print(f"latency probe @{rate}/s: {out.stdout.strip()}", file=sys.stderr)
    return latency_figures(rate, e2e, ack)


def latency_confluent(broker, rate, seconds, size):
    """The same measurement from a Python loop: the interpreter's own delays
    (and its GIL, shared with the consumer thread) show in the figures."""
    topic = create_topic(broker.bootstrap, 1)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "acks": 1})
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "bench",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 500})
    consumer.assign([TopicPartition(topic, 0, 0)])
    total = int(rate * seconds)
    e2e, acks, done = [], [], threading.Event()

    def consume():
        seen = 0
        while seen < total and not done.is_set():
            msg = consumer.poll(0.1)
            if msg is None or msg.error():
                continue
            sent = struct.unpack(">q", msg.value()[:8])[0]
            e2e.append((time.monotonic_ns() - sent) / 1e6)
            seen += 1

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    time.sleep(1)  # let the consumer's first fetch start waiting
    pad = b"p" * (size - 8)
    start_ns = time.monotonic_ns()
    interval_ns = 1e9 / rate
    sent_count = 0
    # Wait between sends in poll(timeout), which sleeps but serves each
    # delivery report as it arrives, rather than spin: on a small machine a
    # spinning client takes the CPU the broker and the consumer need, and the
    # latency measured becomes the client's. A send that falls due while
    # waiting goes out on waking, stamped with its real send time.
    while sent_count < total:
        due = start_ns + sent_count * interval_ns
        now = time.monotonic_ns()
        if now < due:
            producer.poll((due - now) / 1e9)
            continue
        sent = time.monotonic_ns()
        producer.produce(topic, struct.pack(">q", sent) + pad,
                         on_delivery=lambda err, msg, sent=sent: acks.append(
                             (time.monotonic_ns() - sent) / 1e6))
        producer.poll(0)
        sent_count += 1
    producer.flush(30)
    reader.join(30)
    done.set()
    consumer.close()
    def summary(values):
        return [percentile(values, 50), percentile(values, 99),
                max(values) if values else float("nan")]

    return latency_figures(rate, summary(e2e), summary(acks))


def start_times(make, count):
    """Start-up times of `count` more fresh brokers, each stopped at once."""
    times = []
    for _ in range(count):
        broker = make()
        try:
            times.append(broker.start_ms)
        finally:
            broker.stop()
    return times


def measure(broker, args, scratch):
    figures = {}
    if broker.start_ms is not None:
        figures["start ms"] = broker.start_ms
        time.sleep(1)
        figures["idle RSS MiB"] = broker.proc_status("VmRSS")
    for partitions in (1, 6):
        for acks in ("1", "all"):
            res = bulk(broker, partitions, acks, args, scratch)
            for k, v in res.items():
                figures[f"{k} [{partitions}p acks={acks}]"] = v
    for rate in args.rates:
        figures.update(latency(broker, rate, args.latency_seconds, args.latency_client))
    return figures


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wharf", default=os.path.join(ROOT, "target", "release", "wharf"),
                    help="wharf binary to start (default: target/release/wharf)")
    ap.add_argument("--bootstrap", help="measure this running broker as A instead of starting wharf")
    ap.add_argument("--peer-bootstrap", help="a running broker to measure as B")
    ap.add_argument("--peer-cmd", help="command starting broker B; {port} is replaced by a free port")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (medians are reported)")
    ap.add_argument("--starts", type=int, default=9,
                    help="fresh starts timed per repetition (their median is the repetition's figure)")
    ap.add_argument("--count", type=int, default=200_000, help="records per bulk run")
    ap.add_argument("--size", type=int, default=1024, help="record size for bulk runs, bytes")
    ap.add_argument("--rates", type=int, nargs="*", default=[1000, 10000],
                    help="paced rates for latency runs, msgs/s")
    ap.add_argument("--latency-seconds", type=float, default=5)
    have_rdperf = os.access(RDKAFKA_PERFORMANCE, os.X_OK)
    ap.add_argument("--client", choices=["rdkafka_performance", "confluent", "kcat"],
                    default="rdkafka_performance" if have_rdperf else "confluent",
                    help="bulk client: librdkafka's rdkafka_performance (default when "
                         "bench/build-rdkafka-performance.sh has built it, or $RDKAFKA_PERFORMANCE "
                         "names it), confluent-kafka (Python-bound, so slower than the broker), or "
                         "kcat (Debian's librdkafka 2.0.2, which some brokers cannot serve)")
    have_latency = os.access(LATENCY, os.X_OK)
    ap.add_argument("--latency-client", choices=["c", "confluent"],
                    default="c" if have_latency else "confluent",
                    help="latency runs: bench/latency.c (default when "
                         "bench/build-rdkafka-performance.sh has built it) or a confluent-kafka "
                         "Python loop (whose own delays dominate the p99 at 10,000 msgs/s on 2 cores)")
    args = ap.parse_args()
    if args.latency_client == "c" and not have_latency:
        raise SystemExit(f"{LATENCY} not found: run bench/build-rdkafka-performance.sh")
    if args.client == "rdkafka_performance" and not have_rdperf:
        raise SystemExit(f"{RDKAFKA_PERFORMANCE} not found: run bench/build-rdkafka-performance.sh")

    def make_a():
        return Broker("A", args.bootstrap) if args.bootstrap else start_wharf(args.wharf)

    def make_b():
        if args.peer_bootstrap:
            return Broker("B", args.peer_bootstrap)
        if args.peer_cmd:
            return start("peer", lambda port: shlex.split(args.peer_cmd.replace("{port}", str(port))))
        return None

    results = {"A": [], "B": []}
    with tempfile.TemporaryDirectory(prefix="bench-scratch-") as scratch:
        for rep in range(args.reps):
            for label, make in (("A", make_a), ("B", make_b)):
                broker = make()
                if broker is None:
                    continue
                try:
                    print(f"rep {rep + 1}/{args.reps}: {label} at {broker.bootstrap}", file=sys.stderr)
                    figures = measure(broker, args, scratch)
                finally:
                    broker.stop()
                if broker.start_ms is not None:
                    # A few milliseconds are easily swayed by the machine:
                    # each repetition's figure is the median of several starts.
                    starts = [broker.start_ms] + start_times(make, args.starts - 1)
                    figures["start ms"] = statistics.median(starts)
                results[label].append(figures)

    keys = list(results["A"][0].keys())
    has_b = bool(results["B"])
    print(f"\nmedians of {args.reps} repetitions; A = {args.bootstrap or 'wharf ' + args.wharf}"
          + (f"; B = {args.peer_bootstrap or args.peer_cmd}" if has_b else ""))
    print(f"{'metric':44} {'A':>12}" + (f" {'B':>12} {'A/B':>8}" if has_b else ""))
    for key in keys:
        a = median(results["A"], key)
        line = f"{key:44} {fmt(a):>12}"
        if has_b:
            b = median(results["B"], key)
            ratio = a / b if a is not None and b not in (None, 0) else None
            line += f" {fmt(b):>12} {fmt(ratio):>8}"
        print(line)


def median(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def fmt(v):
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"


if __name__ == "__main__":
    main()
