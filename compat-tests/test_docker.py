"""The Docker image from docker/build.sh: it serves real clients on a mapped
port, stops cleanly on `docker stop`, and keeps its data in the /data volume
across container restarts.

Needs a Docker engine (the CI machine has one); the image is built FROM
scratch, so no registry is needed."""

import io
import os
import re
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.request
import uuid

import pytest

from confluent_kafka import Consumer
from prometheus_client.parser import text_string_to_metric_families

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

    def start(volume=None, port=None, env=None, network=None, alias=None,
              container_port=9092):
        """env: the container's variables (default: WHARF_ADVERTISED_LISTENER
        for the mapped port); `{port}` in a value is the mapped port, which
        the host's `port` maps to the container's `container_port`."""
        port = port or free_port()
        name = f"wharf-compat-{uuid.uuid4().hex[:12]}"
        env = env or {"WHARF_ADVERTISED_LISTENER": "127.0.0.1:{port}"}
        args = ["run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:{container_port}"]
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


def wait_healthy(name, timeout=60):
    """Waits for Docker's HEALTHCHECK to call the container healthy."""
    deadline = time.monotonic() + timeout
    while True:
        health = docker("inspect", name, "--format", "{{.State.Health.Status}}").stdout.strip()
        if health == "healthy":
            return
        assert health == "starting" and time.monotonic() < deadline, (
            health, docker("inspect", name, "--format", "{{json .State.Health}}").stdout)
        time.sleep(0.5)


def test_health_check_and_topics_created_at_start(container):
    name, bootstrap, _port = container(env={
        "WHARF_ADVERTISED_LISTENER": "127.0.0.1:{port}",
        "WHARF_CREATE_TOPICS": "orders:3:1,audit:1",
    })
    wait_healthy(name)
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
        network, container, image):
    """The environment of the apache/kafka image's documented single-node
    compose setup with a listener for other containers (broker:19092) and
    one for the host (localhost:9092 mapped), unchanged but for the image
    and the host port: clients on each side are told of the broker at the
    address they can reach."""
    # `network` comes first among the fixtures: they are torn down in
    # reverse, so the network is removed after the containers on it.
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


@pytest.mark.parametrize("listen_env", [
    {"KAFKA_LISTENERS": "PLAINTEXT://:19092",
     "KAFKA_ADVERTISED_LISTENERS": "PLAINTEXT://127.0.0.1:{port}"},
    {"WHARF_LISTEN": "0.0.0.0:29092", "WHARF_ADVERTISED_LISTENER": "127.0.0.1:{port}"},
], ids=["KAFKA_LISTENERS", "WHARF_LISTEN"])
def test_health_check_finds_a_port_other_than_9092(container, listen_env):
    """The HEALTHCHECK (`wharf health` without an address) checks the port
    the broker's own configuration gives it, not 9092."""
    container_port = 19092 if "KAFKA_LISTENERS" in listen_env else 29092
    name, bootstrap, _port = container(env=listen_env, container_port=container_port)
    wait_healthy(name)
    # Nothing answers on 9092 in that container: a check of the old fixed
    # address fails there.
    fixed = docker("exec", name, "/bin/wharf", "health", "--bootstrap-server", "127.0.0.1:9092",
                   "--timeout-ms", "1000", check=False)
    assert fixed.returncode == 1, (fixed.stdout, fixed.stderr)
    found = docker("exec", name, "/bin/wharf", "health")
    assert found.stdout.strip() == f"ok: 127.0.0.1:{container_port} answers", found.stdout


# testcontainers-java's org.testcontainers.kafka.KafkaContainer, for the
# apache/kafka image: the environment it gives the container, the command
# it runs (wait for the start script it copies in once the container has
# started and its port is mapped), and the log line it waits for.
TC_STARTER = "/tmp/testcontainers_start.sh"
TC_COMMAND = ["sh", "-c",
              f"while [ ! -f {TC_STARTER} ]; do sleep 0.1; done; {TC_STARTER}"]
TC_WAIT = re.compile(r".*Transitioning from RECOVERY to RUNNING.*")
TC_ENV = {
    "CLUSTER_ID": "4L6g3nShT-eMCtK--X86sw",
    "KAFKA_LISTENERS":
        "PLAINTEXT://0.0.0.0:9092,BROKER://0.0.0.0:9093,CONTROLLER://0.0.0.0:9094",
    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP":
        "BROKER:PLAINTEXT,PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "KAFKA_INTER_BROKER_LISTENER_NAME": "BROKER",
    "KAFKA_PROCESS_ROLES": "broker,controller",
    "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
    "KAFKA_NODE_ID": "1",
    "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9094",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "1",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
    "KAFKA_LOG_FLUSH_INTERVAL_MESSAGES": str(2**63 - 1),
    "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
}


def copy_into(name, path, text, mode):
    """Copies a file into a container as the Docker API's archive upload
    does for testcontainers' copyFileToContainer: a tar entry with `mode`."""
    data = text.encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(os.path.basename(path))
        info.size, info.mode, info.mtime = len(data), mode, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    subprocess.run(["docker", "cp", "-", f"{name}:{os.path.dirname(path)}"],
                   input=buf.getvalue(), capture_output=True, check=True, timeout=60)


def wait_for_log(name, pattern, timeout):
    """Waits until a line of the container's output (stdout or stderr)
    matches `pattern` as a whole, as testcontainers' log wait does."""
    deadline = time.monotonic() + timeout
    while True:
        logs = docker("logs", name, check=False)
        lines = (logs.stdout + logs.stderr).splitlines()
        if any(pattern.fullmatch(line) for line in lines):
            return lines
        state = docker("inspect", name, "--format", "{{.State.Status}}").stdout.strip()
        assert state == "running", f"container {state}:\n{logs.stdout}{logs.stderr}"
        assert time.monotonic() < deadline, \
            f"no line matching {pattern.pattern} in {timeout}s:\n{logs.stdout}{logs.stderr}"
        time.sleep(0.2)


@pytest.fixture
def created():
    """Names of containers a test created; each is removed after it."""
    names = []
    yield names
    for name in names:
        docker("rm", "-f", "-v", name, check=False)


def test_testcontainers_kafka_container_start_sequence(image, created):
    name = f"wharf-compat-{uuid.uuid4().hex[:12]}"
    args = ["create", "--name", name, "-p", "127.0.0.1::9092"]
    for key, value in TC_ENV.items():
        args += ["-e", f"{key}={value}"]
    docker(*args, image, *TC_COMMAND)
    created.append(name)
    docker("start", name)

    # containerIsStarting: the mapped port and the container's host name
    # go into KAFKA_ADVERTISED_LISTENERS, exported by the start script.
    mapped = docker("port", name, "9092/tcp").stdout.split()[0]
    host_port = int(mapped.rsplit(":", 1)[1])
    hostname = docker("inspect", name, "--format", "{{.Config.Hostname}}").stdout.strip()
    bootstrap = f"127.0.0.1:{host_port}"
    script = ("#!/bin/bash\n"
              f"export KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://{bootstrap},BROKER://{hostname}:9093\n"
              "/etc/kafka/docker/run \n")
    copy_into(name, TC_STARTER, script, 0o777)

    lines = wait_for_log(name, TC_WAIT, timeout=60)
    assert any("wharf is ready" in line for line in lines), lines

    # getBootstrapServers(): the host and the mapped port.
    records = [dict(key=f"k{i}".encode(), value=f"v{i}".encode()) for i in range(20)]
    assert_delivered(c_produce(c_producer(bootstrap, acks="all"), "tc-topic", records))
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "tc-group",
        "auto.offset.reset": "earliest",
        "socket.timeout.ms": 10000,
    })
    got = []
    try:
        consumer.subscribe(["tc-topic"])
        deadline = time.monotonic() + 30
        while len(got) < len(records) and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            got.append((m.offset(), m.key(), m.value()))
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    assert got == [(i, r["key"], r["value"]) for i, r in enumerate(records)]

    # The image's own health check finds the broker (the BROKER listener,
    # 9093, from KAFKA_LISTENERS and KAFKA_INTER_BROKER_LISTENER_NAME).
    wait_healthy(name)


def metric_samples(text):
    """{(sample name, frozenset of labels): value} of a Prometheus scrape."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples}


@pytest.fixture
def compose(image, tmp_path):
    """Brings a compose file of docker/ up as its own project, with the
    image built for the tests and free host ports in place of the file's;
    takes it down with its volumes after."""
    assert shutil.which("docker-compose"), "docker-compose is needed for the compose tests"
    projects = []

    def up(file_name):
        text = (REPO_ROOT / "docker" / file_name).read_text()
        assert "image: wharf:dev" in text
        text = text.replace("image: wharf:dev", f"image: {image}")
        host_ports = {}
        for host, inside in re.findall(r"127\.0\.0\.1:(\d+):(\d+)", text):
            host_ports[int(host)] = free_port()
            text = text.replace(f"127.0.0.1:{host}:{inside}",
                                f"127.0.0.1:{host_ports[int(host)]}:{inside}")
        # What the brokers advertise to the host follows its port.
        for host, new in host_ports.items():
            text = text.replace(f"localhost:{host}\n", f"127.0.0.1:{new}\n")
        path = tmp_path / file_name
        path.write_text(text)
        project = f"wharfcompat{uuid.uuid4().hex[:10]}"
        projects.append((project, path))
        subprocess.run(["docker-compose", "-p", project, "-f", str(path), "up", "-d"],
                       check=True, capture_output=True, timeout=180)
        return project, host_ports

    yield up
    for project, path in projects:
        subprocess.run(["docker-compose", "-p", project, "-f", str(path), "down", "-v",
                        "--remove-orphans"], capture_output=True, timeout=180)


def scrape_host(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.status == 200
        return resp.read().decode()


def test_compose_file_serves_clients_and_metrics_for_a_prometheus_scrape(compose, image):
    project, ports = compose("compose.yaml")
    bootstrap = f"127.0.0.1:{ports[9092]}"
    wait_serving(bootstrap, f"{project}_wharf_1")
    kcat(bootstrap, "-P", "-t", "scraped", stdin="a\nbb\nccc\n")
    assert kcat(bootstrap, "-C", "-t", "scraped", "-e", "-q").stdout.split() == ["a", "bb", "ccc"]

    # From the host, through the published metrics port.
    found = metric_samples(scrape_host(ports[9308]))
    assert found[("wharf_topic_bytes_in_total", frozenset({("topic", "scraped")}))] > 0
    assert found[("wharf_partition_log_end_offset",
                  frozenset({("topic", "scraped"), ("partition", "0")}))] == 3
    # From another container of the project's network, at the target the
    # file's comment gives a Prometheus there (wharf:9308).
    inside = docker("run", "--rm", "--network", f"{project}_default", "--entrypoint", "wget",
                    image, "-q", "-O", "-", "http://wharf:9308/metrics").stdout
    assert ("wharf_topic_bytes_in_total", frozenset({("topic", "scraped")})) in \
        metric_samples(inside)
    # Containers of the project reach the broker at wharf:19092 and are
    # told of it there.
    consumed = docker("run", "--rm", "--network", f"{project}_default", "--entrypoint",
                      "/bin/wharf", image, "consume", "scraped", "--from-beginning",
                      "--max-messages", "3", "--bootstrap-server", "wharf:19092",
                      timeout=60).stdout
    assert consumed.split() == ["a", "bb", "ccc"], consumed
    wait_healthy(f"{project}_wharf_1")


def test_cluster_compose_file_serves_metrics_of_each_broker(compose):
    project, ports = compose("compose-cluster.yaml")
    bootstrap = ",".join(f"127.0.0.1:{ports[p]}" for p in (9092, 9093, 9094))
    deadline = time.monotonic() + 60
    while True:
        listing = kcat(bootstrap, "-L", check=False, timeout=15).stdout
        if "3 brokers" in listing:
            break
        assert time.monotonic() < deadline, listing
        time.sleep(0.5)
    for metrics_port in (9308, 9309, 9310):
        found = metric_samples(scrape_host(ports[metrics_port]))
        assert ("wharf_open_connections", frozenset()) in found, sorted(found)[:20]
        assert found[("process_start_time_seconds", frozenset())] > 0
    # The brokers replicate to each other over the container listener: a
    # topic of replication factor 3 gets all three in sync, and acks=all
    # writes are acknowledged.
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic("replicated", 1, 3)])["replicated"].result(timeout=30)
    deadline = time.monotonic() + 60
    while True:
        parts = admin.list_topics("replicated", timeout=10).topics["replicated"].partitions
        if parts and sorted(parts[0].isrs) == [1, 2, 3]:
            break
        assert time.monotonic() < deadline, {p: (m.leader, m.isrs) for p, m in parts.items()}
        time.sleep(0.5)
    reports = c_produce(c_producer(bootstrap, acks="all"), "replicated",
                        [dict(value=b"r%d" % i) for i in range(10)])
    assert_delivered(reports)
    assert sorted(parts[0].isrs) == [1, 2, 3]


def test_apache_kafka_single_node_compose_file_with_only_the_image_changed(image, tmp_path):
    """A compose file written for apache/kafka (host and container
    listeners, KRaft settings, log.dirs, CLUSTER_ID) runs with the image
    line changed: clients on the host and in another container of the
    project are each served at the address they can reach."""
    assert shutil.which("docker-compose"), "docker-compose is needed for the compose tests"
    text = (REPO_ROOT / "compat-tests" / "fixtures" / "apache-kafka-single-node.yaml").read_text()
    assert text.count("image: apache/kafka:4.1.0") == 1
    port = free_port()
    text = text.replace("image: apache/kafka:4.1.0", f"image: {image}")
    # The host port: a free one in place of 9092, advertised to the host.
    text = text.replace('"9092:9092"', f'"127.0.0.1:{port}:9092"')
    text = text.replace("PLAINTEXT_HOST://localhost:9092", f"PLAINTEXT_HOST://127.0.0.1:{port}")
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    project = f"wharfapache{uuid.uuid4().hex[:10]}"
    try:
        subprocess.run(["docker-compose", "-p", project, "-f", str(path), "up", "-d"],
                       check=True, capture_output=True, timeout=180)
        bootstrap = f"127.0.0.1:{port}"
        wait_serving(bootstrap, f"{project}_broker_1")
        listing = kcat(bootstrap, "-L", "-m", "5").stdout
        assert f"broker 1 at 127.0.0.1:{port}" in listing, listing
        reports = c_produce(c_producer(bootstrap, acks="all"), "orders",
                            [dict(key=b"k%d" % i, value=b"v%d" % i) for i in range(5)])
        assert_delivered(reports)
        # Another container of the project reaches broker:29092 and is told
        # of the broker there.
        inside = docker("run", "--rm", "--network", f"{project}_default", "--entrypoint",
                        "/bin/wharf", image, "consume", "orders", "--from-beginning",
                        "--max-messages", "5", "--bootstrap-server", "broker:29092",
                        timeout=60).stdout
        assert sorted(inside.split()) == [f"v{i}" for i in range(5)], inside
        described = docker("run", "--rm", "--network", f"{project}_default", "--entrypoint",
                           "/bin/wharf", image, "cluster", "describe", "--output", "json",
                           "--bootstrap-server", "broker:29092", timeout=60).stdout
        assert '"host": "broker"' in described and '"port": 29092' in described, described
        # The data went where KAFKA_LOG_DIRS says.
        listed = docker("exec", f"{project}_broker_1", "ls", "/tmp/kraft-combined-logs").stdout
        assert "orders-0" in listed.split(), listed
        wait_healthy(f"{project}_broker_1")
    finally:
        subprocess.run(["docker-compose", "-p", project, "-f", str(path), "down", "-v",
                        "--remove-orphans"], capture_output=True, timeout=180)
