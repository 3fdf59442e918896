"""The Docker image from docker/build.sh: it serves real clients on a mapped
port, stops cleanly on `docker stop`, and keeps its data in the /data volume
across container restarts.

Needs a Docker engine (the CI machine has one); the image is built FROM
scratch, so no registry is needed."""

import os
import shutil
import socket
import subprocess
import time
import uuid

import pytest

from clients import assert_delivered, c_consume, c_produce, c_producer, kcat
from conftest import REPO_ROOT

pytestmark = pytest.mark.timeout(180)


def docker(*args, check=True, timeout=120):
    return subprocess.run(["docker", *args], capture_output=True, text=True,
                          check=check, timeout=timeout)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def image(wharf_bin):
    assert shutil.which("docker"), "the docker CLI is needed for the image tests"
    tag = f"wharf-compat:{uuid.uuid4().hex[:12]}"
    env = dict(os.environ, WHARF_BIN=str(wharf_bin))
    subprocess.run([str(REPO_ROOT / "docker" / "build.sh"), tag], env=env, check=True,
                   capture_output=True, timeout=300)
    yield tag
    docker("rmi", "-f", tag, check=False)


@pytest.fixture
def container(image):
    """Starts containers of the image; removes them and their volumes after."""
    names, volumes = [], []

    def start(volume=None, port=None):
        port = port or free_port()
        name = f"wharf-compat-{uuid.uuid4().hex[:12]}"
        args = ["run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:9092",
                "-e", f"WHARF_ADVERTISED_LISTENER=127.0.0.1:{port}"]
        if volume:
            args += ["-v", f"{volume}:/data"]
            volumes.append(volume)
        docker(*args, image)
        names.append(name)
        bootstrap = f"127.0.0.1:{port}"
        wait_serving(bootstrap, name)
        return name, bootstrap, port

    yield start
    for name in names:
        docker("rm", "-f", "-v", name, check=False)
    for volume in set(volumes):
        docker("volume", "rm", "-f", volume, check=False)


def wait_serving(bootstrap, name, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        r = kcat(bootstrap, "-L", "-m", "2", check=False, timeout=10)
        if r.returncode == 0 and "1 brokers" in r.stdout:
            return
        if time.monotonic() > deadline:
            logs = docker("logs", name, check=False).stderr
            raise AssertionError(f"container {name} did not serve Metadata: {r.stderr}\n{logs}")
        time.sleep(0.1)


def test_image_serves_clients_and_stops_cleanly(container):
    name, bootstrap, _port = container()
    kcat(bootstrap, "-P", "-t", "dock", "-K:", stdin="k1:hello\nk2:world\n")
    out = kcat(bootstrap, "-C", "-t", "dock", "-e", "-q", "-f", "%k=%s @%o\\n").stdout
    assert out.splitlines() == ["k1=hello @0", "k2=world @1"]

    docker("stop", "-t", "10", name)
    state = docker("inspect", name, "--format", "{{.State.ExitCode}}").stdout.strip()
    assert state == "0", docker("logs", name, check=False).stderr
    assert "wharf stopped cleanly" in docker("logs", name).stderr


def test_data_volume_survives_a_new_container(container):
    volume = f"wharf-compat-{uuid.uuid4().hex[:12]}"
    name, bootstrap, port = container(volume=volume)
    records = [dict(key=f"k{i}".encode(), value=f"v{i}".encode()) for i in range(50)]
    assert_delivered(c_produce(c_producer(bootstrap, acks="all"), "kept", records))
    docker("rm", "-f", "-v", name)  # kill, not a clean stop

    _name, bootstrap, _ = container(volume=volume, port=port)
    got = [(m.offset(), m.key(), m.value()) for m in c_consume(bootstrap, "kept")]
    assert got == [(i, r["key"], r["value"]) for i, r in enumerate(records)]
