"""Fixtures that run the real `wharf` binary for the compat tests.

* `wharf_bin` (session): builds `target/release/wharf` once with cargo, unless
  the environment variable WHARF_BIN names a binary to use instead.
* `broker_factory` (function): starts brokers on free loopback ports, each
  with a fresh temporary data dir; every broker it started is stopped and its
  dir removed when the test ends.
* `broker`: one broker with default flags.

When a test fails, the stderr log of every broker it started is attached to
the failure report.

With WHARF_COMPAT_MEMORY=1 every broker runs with `--memory` instead of a
data dir (its `data_dir` is then the memory-mode directory the broker made),
and tests marked `disk` (those that need data to outlive a restart) are
skipped: `.ci/run` runs the core files this way as well as on disk.
"""

import gc
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
MEMORY = os.environ.get("WHARF_COMPAT_MEMORY") == "1"


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One `wharf serve` process; restartable on the same port and data dir."""

    def __init__(self, binary, log_dir, extra_args=()):
        self.binary = str(binary)
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.bootstrap = f"{self.host}:{self.port}"
        # Memory mode: set at each start to the directory the broker makes.
        self.data_dir = None if MEMORY else Path(tempfile.mkdtemp(prefix="wharf-data-"))
        self.log_path = Path(log_dir) / f"wharf-{self.port}.log"
        self.extra_args = [str(a) for a in extra_args]
        self.proc = None
        self.starts = 0

    @property
    def argv(self):
        where = ["--memory"] if MEMORY else ["--data-dir", str(self.data_dir)]
        return [self.binary, "serve", "--listen", self.bootstrap, *where, *self.extra_args]

    def start(self):
        assert self.proc is None, "broker already running"
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        self._wait_ready()
        if MEMORY:
            self.data_dir, = Path("/dev/shm").glob(f"wharf-memory-{self.proc.pid}-*")

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.proc = None
                raise RuntimeError(f"wharf exited with code {rc} before accepting "
                                   f"connections on {self.bootstrap}\n{self.log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"wharf did not accept connections on {self.bootstrap} "
                                   f"within {READY_TIMEOUT_S}s\n{self.log()}")
            time.sleep(0.05)

    def stop(self, graceful=True):
        """Stop the broker. graceful: SIGTERM, and the exit code must be 0.
        Otherwise SIGKILL. Returns the exit code."""
        assert self.proc is not None, "broker is not running"
        proc, self.proc = self.proc, None
        if proc.poll() is not None:
            raise AssertionError(f"wharf had already exited with code {proc.returncode}")
        if graceful:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError(f"wharf did not exit within {STOP_TIMEOUT_S}s of SIGTERM; "
                                     f"its log ends:\n{self.log()[-4000:]}")
            assert rc == 0, f"wharf exited with code {rc} after SIGTERM (expected 0)"
            return rc
        proc.kill()
        return proc.wait()

    def restart(self, graceful=True):
        self.stop(graceful=graceful)
        self.start()

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "<no log>"

    def partition_dirs(self, topic):
        """Names of entries in the data dir that look like `<topic>-<n>`."""
        out = []
        for entry in self.data_dir.iterdir():
            name = entry.name
            if name.startswith(topic + "-") and name[len(topic) + 1:].isdigit():
                out.append(name)
        return sorted(out)

    def teardown(self):
        """Stop whatever still runs and remove the data dir. Returns an error
        message if the broker had died on its own (crash), else None."""
        problem = None
        if self.proc is not None:
            rc = self.proc.poll()
            if rc is not None:
                problem = f"wharf exited on its own during the test with code {rc}"
            else:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        return problem


@pytest.fixture(scope="session")
def wharf_bin():
    env = os.environ.get("WHARF_BIN")
    if env:
        path = Path(env)
        assert path.is_file() and os.access(path, os.X_OK), f"WHARF_BIN={env} is not an executable file"
        return path
    subprocess.run(["cargo", "build", "--release", "--bin", "wharf"], cwd=REPO_ROOT, check=True)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO_ROOT / "target"))
    if not target.is_absolute():
        target = REPO_ROOT / target
    path = target / "release" / "wharf"
    assert path.is_file(), f"cargo build did not produce {path}"
    return path


@pytest.fixture
def broker_factory(wharf_bin, request, tmp_path_factory):
    """Call with keyword flags, e.g. broker_factory(num_partitions=6,
    auto_create=False, max_request_size=65536, advertised_listener="h:p",
    extra_args=[...]). Returns a started Broker."""
    started = []
    request.node.wharf_brokers = started
    # Logs live under pytest's own temp area (kept for the last few runs);
    # data dirs are removed at teardown.
    log_dir = tmp_path_factory.mktemp("wharf-logs")

    def make(num_partitions=None, auto_create=None, max_request_size=None,
             advertised_listener=None, node_id=None, log_level=None, extra_args=()):
        args = []
        if num_partitions is not None:
            args += ["--num-partitions", num_partitions]
        if auto_create is not None:
            args += ["--auto-create-topics", "true" if auto_create else "false"]
        if max_request_size is not None:
            args += ["--max-request-size", max_request_size]
        if advertised_listener is not None:
            args += ["--advertised-listener", advertised_listener]
        if node_id is not None:
            args += ["--node-id", node_id]
        if log_level is not None:
            args += ["--log-level", log_level]
        args += list(extra_args)
        b = Broker(wharf_bin, log_dir, args)
        started.append(b)
        b.start()
        return b

    yield make

    # Drop client handles the test left in reference cycles before their
    # broker goes away, so they do not keep reconnecting in later tests.
    gc.collect()
    problems = [p for p in (b.teardown() for b in started) if p]
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def broker(broker_factory):
    return broker_factory()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach each broker's log to a failing test's report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for i, b in enumerate(getattr(item, "wharf_brokers", [])):
            rep.sections.append((f"wharf broker #{i} log ({b.bootstrap})", b.log()))


def pytest_collection_modifyitems(config, items):
    if not MEMORY:
        return
    skip = pytest.mark.skip(reason="memory mode: needs data to outlive a broker restart (runs on disk)")
    for item in items:
        if "disk" in item.keywords:
            item.add_marker(skip)
