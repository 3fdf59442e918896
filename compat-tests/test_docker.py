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

    def start(volume=None, port=None, env=None, network=None, alias=None):
        """env: the container's variables (default: WHARF_ADVERTISED_LISTENER
        for the mapped port); `{port}` in a value is the mapped port."""
        port = port or free_port()
        name = f"wharf-compat-{uuid.uuid4().hex[:12]}"
        env = env or {"WHARF_ADVERTISED_LISTENER": "127.0.0.1:{port}"}
        args = ["run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:9092"]
        for key, value in env.items():
            args += ["-e", f"{key}={value.format(port=port)}"]
        if network:
            args += ["--network", network]
        if alias:
            args += ["--network-alias", alias]
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


def test_health_check_and_topics_created_at_start(container):
    name, bootstrap, _port = container(env={
        "WHARF_ADVERTISED_LISTENER": "127.0.0.1:{port}",
        "WHARF_CREATE_TOPICS": "orders:3:1,audit:1",
    })
    deadline = time.monotonic() + 60
    while True:
        health = docker("inspect", name, "--format", "{{.State.Health.Status}}").stdout.strip()
        if health == "healthy":
            break
        assert health == "starting" and time.monotonic() < deadline, health
        time.sleep(0.5)
    listing = kcat(bootstrap, "-L", "-m", "5").stdout
    assert 'topic "orders" with 3 partitions' in listing, listing
    assert 'topic "audit" with 1 partitions' in listing, listing


@pytest.fixture
def network():
    name = f"wharf-compat-{uuid.uuid4().hex[:12]}"
    docker("network", "create", name)
    yield name
    docker("network", "rm", name, check=False)


def test_apache_kafka_compose_environment_with_host_and_container_listeners(
        container, image, network):
    """The environment of the apache/kafka image's documented single-node
    compose setup with a listener for other containers (broker:19092) and
    one for the host (localhost:9092 mapped), unchanged but for the image
    and the host port: clients on each side are told of the broker at the
    address they can reach."""
    env = {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "CONTROLLER://:29093,PLAINTEXT_HOST://:9092,PLAINTEXT://:19092",
        "KAFKA_ADVERTISED_LISTENERS": "PLAINTEXT://broker:19092,PLAINTEXT_HOST://127.0.0.1:{port}",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@broker:29093",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_NUM_PARTITIONS": "3",
    }
    name, bootstrap, port = container(env=env, network=network, alias="broker")
    # From the host: the broker at the host listener's address.
    listing = kcat(bootstrap, "-L", "-m", "5").stdout
    assert f"broker 1 at 127.0.0.1:{port}" in listing, listing
    kcat(bootstrap, "-P", "-t", "from-host", stdin="one\ntwo\n")

    # From another container on the network, through the container
    # listener: the Kafka tools in the image itself.
    def in_network(*args):
        return docker("run", "--rm", "--network", network, "--entrypoint", "/bin/wharf",
                      image, *args, "--bootstrap-server", "broker:19092", timeout=60)
    described = in_network("cluster", "describe", "--output", "json").stdout
    assert '"host": "broker"' in described and '"port": 19092' in described, described
    consumed = in_network("consume", "from-host", "--from-beginning", "--max-messages", "2").stdout
    assert sorted(consumed.split()) == ["one", "two"], consumed
    # num.partitions came from KAFKA_NUM_PARTITIONS.
    assert 'topic "from-host" with 3 partitions' in kcat(bootstrap, "-L", "-t", "from-host").stdout
