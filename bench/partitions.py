#!/usr/bin/env python3
"""Many partitions on one broker: start time, Metadata for all topics, idle
memory and open files, on a fresh broker and again after a restart on the
same data directory (the start that has to find every partition on disk).

    compat-tests/.venv/bin/python bench/partitions.py --topics 100 --partitions 100

Each partition gets one small record so its log has a segment with data.
"""

import argparse
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import ROOT, answered_metadata, free_port, metadata_v1_request  # noqa: E402


def metadata_all(port):
    """Seconds to fetch Metadata for all topics, and the response size."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        t0 = time.perf_counter()
        s.sendall(metadata_v1_request(7))
        head = b""
        while len(head) < 4:
            head += s.recv(4 - len(head))
        size = struct.unpack(">i", head)[0]
        got = 0
        while got < size:
            chunk = s.recv(min(1 << 20, size - got))
            if not chunk:
                raise SystemExit("connection closed mid-response")
            got += len(chunk)
        return time.perf_counter() - t0, size


def status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return None


def start(binary, data_dir):
    port = free_port()
    argv = [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir,
            "--log-level", "warn"]
    t0 = time.perf_counter()
    log = open(os.path.join(data_dir, "..", os.path.basename(data_dir) + ".log"), "ab")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)
    while not answered_metadata(port):
        if proc.poll() is not None:
            raise SystemExit(f"wharf exited during start-up (rc {proc.returncode})")
        if time.perf_counter() - t0 > 120:
            proc.kill()
            raise SystemExit("wharf did not answer Metadata within 120 s")
        time.sleep(0.0005)
    return proc, port, (time.perf_counter() - t0) * 1000


def report(label, proc, port, start_ms):
    meta_s, meta_bytes = metadata_all(port)
    time.sleep(1)
    fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
    print(f"{label:10} start {start_ms:8.1f} ms   Metadata(all) {meta_s * 1000:8.1f} ms "
          f"({meta_bytes / 1024:.0f} KiB)   RSS {status(proc.pid, 'VmRSS'):7.1f} MiB   "
          f"RssAnon {status(proc.pid, 'RssAnon'):7.1f} MiB   open fds {fds}")


def stop(proc):
    """SIGTERM, then the seconds the broker took to shut down cleanly."""
    t0 = time.perf_counter()
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wharf", default=os.path.join(ROOT, "target", "release", "wharf"))
    ap.add_argument("--topics", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=100, help="partitions per topic")
    ap.add_argument("--data-dir", help="use (and keep) this data directory instead of a temporary one")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="wharf-partitions-") as scratch:
        data = args.data_dir or scratch
        proc, port, start_ms = start(args.wharf, data)
        try:
            bootstrap = f"127.0.0.1:{port}"
            admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
            names = [f"p{i:05d}" for i in range(args.topics)]
            t0 = time.perf_counter()
            for i in range(0, len(names), 20):
                batch = [NewTopic(n, args.partitions, 1) for n in names[i:i + 20]]
                for f in admin.create_topics(batch, operation_timeout=60).values():
                    f.result(120)
            created_s = time.perf_counter() - t0
            producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50})
            for n in names:
                for p in range(args.partitions):
                    producer.produce(n, b"x", partition=p)
                producer.poll(0)
            if producer.flush(120):
                raise SystemExit("records left unflushed")
            total = args.topics * args.partitions
            print(f"{total} partitions ({args.topics} topics x {args.partitions}) "
                  f"created in {created_s:.1f} s")
            report("fresh", proc, port, start_ms)
            del producer, admin  # no client left retrying the stopped broker
        finally:
            print(f"{'':10} clean shutdown (SIGTERM to exit) {stop(proc):.2f} s")
        proc, port, start_ms = start(args.wharf, data)
        try:
            report("restarted", proc, port, start_ms)
        finally:
            print(f"{'':10} clean shutdown (SIGTERM to exit) {stop(proc):.2f} s")


if __name__ == "__main__":
    main()
