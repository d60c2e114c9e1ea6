"""A 3-node cluster on 127.0.0.1 in combined mode (each node a broker and a
voter of the controller quorum, KRaft style): every broker's Metadata and
the active controller, replica and leader placement, topics seen by every
broker, controller failover, a killed broker fenced and leading again after
its restart, a lost majority refusing CreateTopics, produce and fetch only
on the leader, and real clients (confluent-kafka, the Java client, Kafka's
metadata-quorum tool) finding the leaders themselves.

The tests that leave every node running share one cluster; each test that
kills nodes starts a cluster of its own. Every wait polls a condition with a
deadline. Requests to one particular broker are raw Kafka wire requests
(Metadata v1, CreateTopics v4, Produce v3, Fetch v4) so the answer is that
broker's own, not a client's cached view."""
import collections
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka.record.default_records import DefaultRecordBatchBuilder

from conftest import BROKER, ROOT, free_port

SLUICE = os.path.join(ROOT, "target", "debug", "sluice")
JAVA_DIR = os.path.join(ROOT, "tests", "java")
CLASSPATH = os.path.join(JAVA_DIR, "classes") + ":" + os.path.join(JAVA_DIR, "lib", "*")

HOST = "127.0.0.1"
NODE_IDS = (1, 2, 3)
HEARTBEAT_INTERVAL_MS = 500
SESSION_TIMEOUT_MS = 3000
READY_TIMEOUT_S = 60  # spawn to the ready line (listeners up), a debug build on a cold disk
FORMED_TIMEOUT_S = 30  # listeners up to a quorum leader with every broker registered
ELECTION_TIMEOUT_S = 20  # the controller leader killed to a successor every survivor names
FENCE_TIMEOUT_S = SESSION_TIMEOUT_MS / 1000 + 5  # a broker killed to gone from every Metadata
STOP_TIMEOUT_S = 10
POLL_S = 0.1
ADMIN_TIMEOUT_MS = 5000  # CreateTopics' own timeout where the quorum cannot answer
REQUEST_TIMEOUT_S = 20  # a raw request's socket timeout (plus the request's own timeout)
CLIENT_TIMEOUT_S = 30
LOG_LINES_MAX = 200  # per node, for failure messages

# Kafka error codes.
NONE = 0
LEADER_NOT_AVAILABLE = 5
NOT_LEADER_OR_FOLLOWER = 6
INVALID_REPLICATION_FACTOR = 38

needs_jvm_tools = pytest.mark.skipif(
    shutil.which("java") is None or not os.path.isfile(os.path.join(JAVA_DIR, "lib", "kafka-tools-4.1.1.jar")),
    reason="Kafka's tools not set up (scripts/setup-test-env.sh needs mvn and javac)")
needs_java_smoke = pytest.mark.skipif(
    shutil.which("java") is None or not os.path.isdir(os.path.join(JAVA_DIR, "classes", "sluice")),
    reason="Java client not set up (scripts/setup-test-env.sh needs mvn and javac)")


class NotYet(Exception):
    """A polled condition does not hold yet; the message says what was seen."""


def wait_until(what, check, timeout_s, cluster=None):
    """Calls `check` every POLL_S until it returns a true value, which is
    returned. `check` raises NotYet (or a connection error) while the
    condition does not hold; after `timeout_s` the last of those is in the
    failure, with the nodes' log tails."""
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while True:
        try:
            result = check()
            if result:
                return result
            last = repr(result)
        except (NotYet, OSError, struct.error) as error:
            last = f"{type(error).__name__}: {error}"
        if time.monotonic() > deadline:
            logs = cluster.log_tails() if cluster else ""
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last seen: {last}\n{logs}")
        time.sleep(POLL_S)


# --- Raw Kafka requests to one broker ----------------------------------------

Partition = collections.namedtuple("Partition", "error leader replicas isr")
Topic = collections.namedtuple("Topic", "error partitions")
Metadata = collections.namedtuple("Metadata", "brokers controller_id topics")


class Reader:
    """Big-endian fields of one response body, in order."""

    def __init__(self, data):
        self.data = data
        self.pos = 0

    def _unpack(self, fmt):
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def int8(self):
        return self._unpack(">b")

    def int16(self):
        return self._unpack(">h")

    def int32(self):
        return self._unpack(">i")

    def int64(self):
        return self._unpack(">q")

    def _sized(self, size):
        if size < 0:
            return None
        if self.pos + size > len(self.data):
            raise struct.error(f"{size} bytes claimed, {len(self.data) - self.pos} left")
        value = self.data[self.pos:self.pos + size]
        self.pos += size
        return value

    def string(self):
        value = self._sized(self.int16())
        return None if value is None else value.decode()

    def bytes(self):
        return self._sized(self.int32())

    def array(self, read_one):
        count = self.int32()
        return [read_one() for _ in range(max(count, 0))]


def string(text):
    if text is None:
        return struct.pack(">h", -1)
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def array(items):
    return struct.pack(">i", len(items)) + b"".join(items)


def int32s(values):
    return array([struct.pack(">i", v) for v in values])


def recv_exact(sock, size):
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {size} response bytes")
        data += chunk
    return bytes(data)


def call(node, api_key, version, body, timeout_s=REQUEST_TIMEOUT_S):
    """One request (header v1) to `node` on a fresh connection; a Reader
    positioned after the response's correlation id."""
    correlation_id = 7
    frame = struct.pack(">hhi", api_key, version, correlation_id) + string("sluice-cluster-test") + body
    with socket.create_connection((getattr(node, "host", HOST), node.client_port), timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        (size,) = struct.unpack(">i", recv_exact(sock, 4))
        reader = Reader(recv_exact(sock, size))
    assert reader.int32() == correlation_id
    return reader


def metadata(node):
    """Metadata v1 of every topic (a null list: nothing is auto-created),
    as this node answers it."""
    r = call(node, 3, 1, struct.pack(">i", -1))
    brokers = {}
    for node_id, host, port, _rack in r.array(lambda: (r.int32(), r.string(), r.int32(), r.string())):
        brokers[node_id] = (host, port)
    controller_id = r.int32()
    topics = {}

    def topic():
        error, name, _internal = r.int16(), r.string(), r.int8()
        partitions = {}
        for p_error, index, leader, replicas, isr in r.array(
                lambda: (r.int16(), r.int32(), r.int32(), r.array(r.int32), r.array(r.int32))):
            partitions[index] = Partition(p_error, leader, replicas, isr)
        topics[name] = Topic(error, partitions)

    r.array(topic)
    return Metadata(brokers, controller_id, topics)


def create_topic(node, name, partitions=-1, replication_factor=-1, assignment=None, timeout_ms=30_000,
                 slack_s=REQUEST_TIMEOUT_S):
    """CreateTopics v4 through `node` (-1: the broker's default; an
    assignment {partition: [broker ids]} needs both at -1): (error, message).
    No answer within `timeout_ms` + `slack_s` raises TimeoutError."""
    assignments = [struct.pack(">i", index) + int32s(ids) for index, ids in sorted((assignment or {}).items())]
    topic = string(name) + struct.pack(">ih", partitions, replication_factor) + array(assignments) + array([])
    r = call(node, 19, 4, array([topic]) + struct.pack(">ib", timeout_ms, 0),
             timeout_s=timeout_ms / 1000 + slack_s)
    r.int32()  # throttle_time_ms
    results = r.array(lambda: (r.string(), r.int16(), r.string()))
    assert [n for n, _, _ in results] == [name], results
    return results[0][1], results[0][2]


def created(node, name, partitions=-1, replication_factor=-1, assignment=None):
    error, message = create_topic(node, name, partitions, replication_factor, assignment)
    assert error == NONE, f"CreateTopics {name} through node {node.node_id}: error {error} ({message})"


def produce(node, topic, partition, values, acks=-1, timeout_ms=10_000):
    """One Produce v3 batch of `values` to a partition through `node`:
    (error, base offset)."""
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 20)
    for offset, value in enumerate(values):
        builder.append(offset, timestamp=None, key=None, value=value, headers=[])
    records = bytes(builder.build())
    partition_data = struct.pack(">ii", partition, len(records)) + records
    body = string(None) + struct.pack(">hi", acks, timeout_ms) + array([string(topic) + array([partition_data])])
    r = call(node, 0, 3, body, timeout_s=timeout_ms / 1000 + REQUEST_TIMEOUT_S)
    responses = r.array(lambda: (r.string(), r.array(lambda: (r.int32(), r.int16(), r.int64(), r.int64()))))
    assert [(t, [p[0] for p in ps]) for t, ps in responses] == [(topic, [partition])], responses
    _, error, base_offset, _ = responses[0][1][0]
    return error, base_offset


def fetch(node, topic, partition, offset=0):
    """One Fetch v4 (no waiting) of a partition through `node`:
    (error, high watermark)."""
    request_partition = struct.pack(">iqi", partition, offset, 1 << 20)
    body = struct.pack(">iiiib", -1, 0, 0, 1 << 20, 0) + array([string(topic) + array([request_partition])])
    r = call(node, 1, 4, body)
    r.int32()  # throttle_time_ms

    def answer():
        index, error, high_watermark, _last_stable = r.int32(), r.int16(), r.int64(), r.int64()
        r.array(lambda: (r.int64(), r.int64()))  # aborted transactions
        r.bytes()  # records
        return index, error, high_watermark

    responses = r.array(lambda: (r.string(), r.array(answer)))
    assert [(t, [p[0] for p in ps]) for t, ps in responses] == [(topic, [partition])], responses
    _, error, high_watermark = responses[0][1][0]
    return error, high_watermark


# --- The cluster's processes --------------------------------------------------

class Node:
    """One broker process (broker and controller voter), stopped by its own PID."""

    def __init__(self, node_id, client_port, controller_port, voters, data_dir, settings,
                 host=HOST, controller_host=HOST, prefix=()):
        self.host = host
        self.controller_host = controller_host
        # Run the broker under this command (e.g. `ip netns exec NS`).
        self.prefix = list(prefix)
        self.node_id = node_id
        self.client_port = client_port
        self.controller_port = controller_port
        self.voters = voters
        self.data_dir = data_dir
        self.settings = list(settings)
        self.proc = None
        self.ready = None
        self.log = collections.deque(maxlen=LOG_LINES_MAX)

    @property
    def bootstrap(self):
        return f"{self.host}:{self.client_port}"

    def command(self):
        settings = [
            f"node.id={self.node_id}",
            "process.roles=broker,controller",
            f"controller.quorum.voters={self.voters}",
            f"listeners=PLAINTEXT://{self.bootstrap},CONTROLLER://{self.controller_host}:{self.controller_port}",
            "controller.listener.names=CONTROLLER",
            f"broker.heartbeat.interval.ms={HEARTBEAT_INTERVAL_MS}",
            f"broker.session.timeout.ms={SESSION_TIMEOUT_MS}",
            # One core each, spread over the machine's CPUs (not all on CPU 0).
            f"sluice.cpus={(self.node_id - 1) % (os.cpu_count() or 1)}",
            "sluice.admin.listen=",  # the admin endpoint is tested on single brokers
            *self.settings,
        ]
        cmd = [*self.prefix, BROKER, "--data-dir", self.data_dir, "--cores", "1", "--listen", self.bootstrap]
        for setting in settings:
            cmd += ["--set", setting]
        return cmd

    def spawn(self):
        """Starts the process (same data dir, ports and settings every time)."""
        assert not self.running(), f"node {self.node_id} already runs"
        self.log.append(f"--- node {self.node_id} starting: {' '.join(self.command())}")
        proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, errors="replace")
        ready = threading.Event()

        def drain():
            for line in proc.stderr:
                self.log.append(line.rstrip("\n"))
                if os.environ.get("SLUICE_TEST_LOG"):
                    print(f"[node {self.node_id}] {line}", end="")
                if "sluice broker ready" in line:
                    ready.set()

        threading.Thread(target=drain, daemon=True).start()
        self.proc, self.ready = proc, ready

    def wait_ready(self):
        """Waits for the ready line: listeners up, not yet a formed cluster."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.ready.wait(POLL_S):
            if self.proc.poll() is not None:
                raise AssertionError(f"node {self.node_id} exited ({self.proc.returncode}) before it was ready:\n"
                                     + self.log_tail())
            if time.monotonic() > deadline:
                raise AssertionError(f"node {self.node_id} not ready after {READY_TIMEOUT_S}s:\n" + self.log_tail())

    def start(self):
        self.spawn()
        self.wait_ready()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL: no shutdown work, as in a crash."""
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self):
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S."""
        if not self.running():
            return
        self.proc.terminate()
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines=40):
        return "\n".join(list(self.log)[-lines:])


def distinct_free_ports(count):
    ports = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


class Cluster:
    """Three nodes with node ids 1..3 in temp data dirs."""

    def __init__(self, settings=(), placement=None):
        """`placement`: {node id: (client host, controller host, command
        prefix)} for nodes not on 127.0.0.1 (a network namespace)."""
        placement = placement or {}
        where = {i: placement.get(i, (HOST, HOST, ())) for i in NODE_IDS}
        self.dir = tempfile.TemporaryDirectory(prefix="sluice-cluster-")
        ports = distinct_free_ports(2 * len(NODE_IDS))
        client_ports = dict(zip(NODE_IDS, ports))
        controller_ports = dict(zip(NODE_IDS, ports[len(NODE_IDS):]))
        voters = ",".join(f"{i}@{where[i][1]}:{controller_ports[i]}" for i in NODE_IDS)
        self.nodes = {}
        for i in NODE_IDS:
            data_dir = os.path.join(self.dir.name, f"node-{i}")
            os.mkdir(data_dir)
            host, controller_host, prefix = where[i]
            self.nodes[i] = Node(i, client_ports[i], controller_ports[i], voters, data_dir, settings,
                                 host=host, controller_host=controller_host, prefix=prefix)

    def start(self):
        """Starts every node and waits until the cluster has formed."""
        for node in self.nodes.values():
            node.spawn()
        for node in self.nodes.values():
            node.wait_ready()
        return self.wait_formed()

    def close(self):
        for node in self.nodes.values():
            if node.running():
                node.proc.terminate()
        for node in self.nodes.values():
            node.stop()
        self.dir.cleanup()

    def live(self):
        return [n for n in self.nodes.values() if n.running()]

    def others(self, node_id):
        return [n for n in self.nodes.values() if n.node_id != node_id]

    def wait_formed(self, timeout_s=FORMED_TIMEOUT_S):
        """Waits until Metadata from every running node lists exactly the
        running brokers at their ports and names one controller among them,
        the same on every node; returns that controller's id."""

        def formed():
            live = self.live()
            expected = {n.node_id: (n.host, n.client_port) for n in live}
            controllers = {}
            for node in live:
                answer = metadata(node)
                if answer.brokers != expected:
                    raise NotYet(f"node {node.node_id} lists brokers {answer.brokers}, not {expected}")
                controllers[node.node_id] = answer.controller_id
            named = set(controllers.values())
            if len(named) != 1 or not named <= set(expected):
                raise NotYet(f"controller id by node: {controllers}")
            return named.pop()

        return wait_until("the cluster to form", formed, timeout_s, self)

    def log_tails(self):
        return "\n".join(f"--- node {n.node_id} log tail:\n{n.log_tail()}" for n in self.nodes.values())


def start_cluster(request):
    cluster = Cluster(settings=["group.initial.rebalance.delay.ms=0"])
    request.addfinalizer(cluster.close)
    cluster.start()
    return cluster


@pytest.fixture(scope="module")
def cluster(request):
    """One cluster for the tests that leave every node running."""
    return start_cluster(request)


@pytest.fixture
def own_cluster(request):
    """A cluster of the test's own, for a test that kills nodes."""
    return start_cluster(request)


def wait_topic(cluster, name, partitions, timeout_s=FORMED_TIMEOUT_S):
    """Waits until every running node lists `name` with `partitions`
    partitions, each with a leader, and all nodes agree on leaders,
    replicas and ISRs; returns {index: Partition}."""

    def agreed():
        views = {}
        for node in cluster.live():
            topic = metadata(node).topics.get(name)
            if topic is None or topic.error != NONE or len(topic.partitions) != partitions:
                raise NotYet(f"node {node.node_id} lists {name} as {topic}")
            if any(p.error != NONE or p.leader < 0 for p in topic.partitions.values()):
                raise NotYet(f"node {node.node_id}: {name} has partitions without a leader: {topic}")
            views[node.node_id] = topic.partitions
        first = next(iter(views.values()))
        if any(view != first for view in views.values()):
            raise NotYet(f"the nodes disagree on {name}: {views}")
        return first

    return wait_until(f"every broker to list {name} with leaders", agreed, timeout_s, cluster)


def wait_listed(cluster, name, nodes, timeout_s=FORMED_TIMEOUT_S):
    """Waits until each of `nodes` lists topic `name` (leaders or not)."""

    def listed():
        for node in nodes:
            if name not in metadata(node).topics:
                raise NotYet(f"node {node.node_id} does not list {name}")
        return True

    wait_until(f"{name} listed by nodes {[n.node_id for n in nodes]}", listed, timeout_s, cluster)


def cluster_info(node):
    """`sluice cluster info --format json` against one node."""
    result = subprocess.run([SLUICE, "--bootstrap", node.bootstrap, "cluster", "info", "--format", "json"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def java(main, *args, timeout=180):
    """Runs a JVM main class from tests/java; warnings and worse only."""
    return subprocess.run(
        ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", CLASSPATH, main, *args],
        capture_output=True, text=True, timeout=timeout)


def read_partition(node, topic, partition, count):
    """The first `count` values of a partition, read by confluent-kafka
    bootstrapped from `node` (it finds the leader itself)."""
    consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "cluster-reader",
                         "enable.auto.commit": False})
    values = []
    try:
        consumer.assign([TopicPartition(topic, partition, 0)])
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            values.append(message.value())
    finally:
        consumer.close()
    return values


# --- With every node running ---------------------------------------------------

def test_every_broker_lists_every_broker_and_the_active_controller(cluster):
    controller = cluster.wait_formed()
    expected = {i: (HOST, n.client_port) for i, n in cluster.nodes.items()}
    for node in cluster.nodes.values():
        answer = metadata(node)
        assert answer.brokers == expected, f"Metadata from node {node.node_id}"
        assert answer.controller_id == controller, f"Metadata from node {node.node_id}"

        info = cluster_info(node)
        assert info["controller"] == controller, f"DescribeCluster from node {node.node_id}: {info}"
        assert sorted(info["brokers"]) == sorted(f"{i}@{h}:{p}" for i, (h, p) in expected.items())
        assert info["fenced_brokers"] == []
        assert sorted((b["id"], b["host"], b["port"], b["fenced"]) for b in info["broker_details"]) == \
            [(i, h, p, False) for i, (h, p) in sorted(expected.items())]
        quorum = info["quorum"]
        assert quorum is not None, f"node {node.node_id} does not answer DescribeQuorum"
        assert quorum["leader_id"] == controller, quorum
        assert sorted(v["id"] for v in quorum["voters"]) == list(NODE_IDS), quorum
        assert quorum["observers"] == [], "in combined mode every node is a voter"
        assert quorum["leader_epoch"] >= 0 and quorum["high_watermark"] >= 0, quorum
        for voter in quorum["voters"]:
            if voter["log_end_offset"] >= 0:
                assert voter["lag"] == quorum["high_watermark"] - voter["log_end_offset"], quorum


@needs_jvm_tools
def test_kafka_metadata_quorum_tool_names_the_same_leader(cluster):
    controller = cluster.wait_formed()
    node = cluster.nodes[2]
    result = java("org.apache.kafka.tools.MetadataQuorumCommand", "--bootstrap-server", node.bootstrap,
                  "describe", "--status")
    assert result.returncode == 0, result.stdout + result.stderr
    fields = dict(line.split(":", 1) for line in result.stdout.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    assert int(fields["LeaderId"]) == controller, result.stdout
    # 4.x prints voters as [{"id": 1, "directoryId": ..., "endpoints": [...]}, ...], 3.x as [1,2,3].
    voters = fields["CurrentVoters"]
    ids = re.findall(r'"id":\s*(\d+)', voters) or re.findall(r"\d+", voters)
    assert sorted(int(i) for i in ids) == list(NODE_IDS), result.stdout


def test_create_topics_spreads_replicas_and_leaders_over_the_brokers(cluster):
    created(cluster.nodes[1], "spread", 3, 3)
    partitions = wait_topic(cluster, "spread", 3)
    for index, p in partitions.items():
        assert sorted(p.replicas) == list(NODE_IDS), f"partition {index}: {p}"
        assert p.leader in p.replicas, f"partition {index}: {p}"
        assert sorted(p.isr) == list(NODE_IDS), f"partition {index}: a new partition's replicas are all in sync"
    assert sorted(p.leader for p in partitions.values()) == list(NODE_IDS), partitions


def test_replication_factor_defaults_to_one_and_replicas_spread_evenly(cluster):
    created(cluster.nodes[2], "rf-default", 6)
    partitions = wait_topic(cluster, "rf-default", 6)
    assert all(len(p.replicas) == 1 and p.leader == p.replicas[0] for p in partitions.values()), partitions
    assert collections.Counter(p.leader for p in partitions.values()) == {1: 2, 2: 2, 3: 2}, partitions

    created(cluster.nodes[2], "rf-two", 3, 2)
    partitions = wait_topic(cluster, "rf-two", 3)
    assert all(len(set(p.replicas)) == 2 and p.leader in p.replicas for p in partitions.values()), partitions
    replicas = collections.Counter(r for p in partitions.values() for r in p.replicas)
    assert replicas == {1: 2, 2: 2, 3: 2}, partitions
    assert sorted(p.leader for p in partitions.values()) == list(NODE_IDS), partitions


def test_replication_factor_above_the_broker_count_is_refused(cluster):
    error, message = create_topic(cluster.nodes[3], "rf-four", 1, 4)
    assert error == INVALID_REPLICATION_FACTOR, f"error {error} ({message})"
    for node in cluster.nodes.values():
        assert "rf-four" not in metadata(node).topics, f"node {node.node_id}"


def test_explicit_replica_assignments_are_kept_with_the_first_replica_leading(cluster):
    assignment = {0: [3, 1], 1: [2, 3], 2: [1, 2]}
    created(cluster.nodes[3], "assigned", assignment=assignment)
    partitions = wait_topic(cluster, "assigned", 3)
    for index, replicas in assignment.items():
        p = partitions[index]
        assert p.replicas == replicas, f"partition {index}: {p}"
        assert p.leader == replicas[0], f"partition {index}: {p}"
        assert p.isr == replicas, f"partition {index}: {p}"


def test_topics_created_through_any_broker_are_seen_by_every_broker(cluster):
    names = {node.node_id: f"seen-via-{node.node_id}" for node in cluster.nodes.values()}
    for node_id, name in names.items():
        created(cluster.nodes[node_id], name, 2)
    for name in names.values():
        wait_topic(cluster, name, 2)
    listed = {node.node_id: set(metadata(node).topics) for node in cluster.nodes.values()}
    assert len({frozenset(topics) for topics in listed.values()}) == 1, f"topics by node: {listed}"


def test_produce_and_fetch_through_a_non_leader_get_not_leader_or_follower(cluster):
    created(cluster.nodes[2], "leaders-only", 3, 3)
    partitions = wait_topic(cluster, "leaders-only", 3)
    for index, p in partitions.items():
        leader = cluster.nodes[p.leader]
        assert produce(leader, "leaders-only", index, [b"a", b"b"]) == (NONE, 0), f"partition {index}"
        assert fetch(leader, "leaders-only", index) == (NONE, 2), f"partition {index}"
        for other in cluster.others(p.leader):
            error, _ = produce(other, "leaders-only", index, [b"c"])
            assert error == NOT_LEADER_OR_FOLLOWER, f"produce to partition {index} through node {other.node_id}"
            error, _ = fetch(other, "leaders-only", index)
            assert error == NOT_LEADER_OR_FOLLOWER, f"fetch of partition {index} through node {other.node_id}"


@pytest.mark.parametrize("bootstrap_id", NODE_IDS)
def test_confluent_clients_find_the_leaders_from_any_bootstrap(cluster, bootstrap_id):
    node = cluster.nodes[bootstrap_id]
    topic = f"keyed-via-{bootstrap_id}"
    created(node, topic, 3, 3)
    wait_topic(cluster, topic, 3)
    acked, errors = [], []

    def delivered(error, message):
        if error is not None:
            errors.append(error)
        else:
            acked.append((message.key(), message.value(), message.partition(), message.offset()))

    producer = Producer({"bootstrap.servers": node.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(1000):
        producer.produce(topic, key=b"k%d" % (i % 50), value=b"v%d" % i, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(CLIENT_TIMEOUT_S) == 0
    assert errors == [] and len(acked) == 1000, errors[:5]
    assert {partition for _, _, partition, _ in acked} == {0, 1, 2}

    consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": f"cluster-group-{bootstrap_id}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    received = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + CLIENT_TIMEOUT_S
        while len(received) < len(acked) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            received.append((message.key(), message.value(), message.partition(), message.offset()))
        consumer.commit(asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, p) for p in range(3)], timeout=CLIENT_TIMEOUT_S)
    finally:
        consumer.close()
    # Every acknowledged record once, at its acknowledged partition and offset.
    assert sorted(received) == sorted(acked)
    assert sum(tp.offset for tp in committed) == len(acked), committed


@needs_java_smoke
def test_java_client_smoke_through_one_broker_of_the_cluster(cluster):
    # SmokeTest checks describeCluster's node count: args[1] when given.
    result = subprocess.run(["java", "-cp", CLASSPATH, "sluice.SmokeTest", cluster.nodes[3].bootstrap,
                             str(len(NODE_IDS))], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1000 produced" in result.stdout


# --- Killing nodes (a cluster each) ----------------------------------------------

def test_killing_the_controller_leader_elects_another_and_create_topics_goes_on(own_cluster):
    cluster = own_cluster
    old = cluster.wait_formed()
    quorum = cluster_info(cluster.nodes[old])["quorum"]
    assert quorum is not None, f"node {old} does not answer DescribeQuorum"
    old_epoch = quorum["leader_epoch"]
    cluster.nodes[old].kill()
    survivors = cluster.others(old)

    def elected():
        named = {node.node_id: metadata(node).controller_id for node in survivors}
        ids = set(named.values())
        if len(ids) != 1 or not ids <= {node.node_id for node in survivors}:
            raise NotYet(f"controller id by surviving node: {named}")
        return ids.pop()

    new = wait_until(f"a controller other than node {old}", elected, ELECTION_TIMEOUT_S, cluster)
    for node in survivors:
        info = cluster_info(node)
        assert info["controller"] == new, f"DescribeCluster from node {node.node_id}: {info}"
        quorum = info["quorum"]
        assert quorum is not None and quorum["leader_id"] == new, info
        assert sorted(v["id"] for v in quorum["voters"]) == list(NODE_IDS), quorum
        assert quorum["leader_epoch"] > old_epoch, quorum
    # Through the new leader and through the other survivor (forwarded).
    # Replicas may land on the killed broker until it is fenced, so only
    # the topics' existence is awaited.
    for node in survivors:
        created(node, f"after-failover-{node.node_id}", 1)
    for node in survivors:
        wait_listed(cluster, f"after-failover-{node.node_id}", survivors)


def test_a_killed_broker_is_fenced_and_leads_again_after_its_restart(own_cluster):
    cluster = own_cluster
    controller = cluster.wait_formed()
    topic = "fenced"
    # One replica each: nobody can take over (failover with replicas is in
    # test_replication.py), so the partitions wait for their broker.
    created(cluster.nodes[controller], topic, 3, 1)
    partitions = wait_topic(cluster, topic, 3)
    # Not the controller leader: this checks fencing, not an election.
    victim_id = next(i for i in NODE_IDS if i != controller)
    victim = cluster.nodes[victim_id]
    led = sorted(i for i, p in partitions.items() if p.leader == victim_id)
    assert led, f"node {victim_id} leads no partition of {partitions}"
    before = {i: [b"before-%d-%d" % (i, k) for k in range(5)] for i in partitions}
    for index, p in partitions.items():
        assert produce(cluster.nodes[p.leader], topic, index, before[index]) == (NONE, 0)

    victim.kill()
    survivors = cluster.others(victim_id)

    def fenced():
        for node in survivors:
            answer = metadata(node)
            if victim_id in answer.brokers:
                raise NotYet(f"node {node.node_id} still lists broker {victim_id}: {answer.brokers}")
            for index in led:
                p = answer.topics[topic].partitions[index]
                if (p.leader, p.error) != (-1, LEADER_NOT_AVAILABLE):
                    raise NotYet(f"node {node.node_id}: partition {index} is {p}")
        return True

    wait_until(f"broker {victim_id} fenced", fenced, FENCE_TIMEOUT_S, cluster)
    for node in survivors:
        answer = metadata(node)
        for index, p in partitions.items():
            if index not in led:
                now = answer.topics[topic].partitions[index]
                assert (now.leader, now.error) == (p.leader, NONE), f"node {node.node_id}: partition {index}"
        info = cluster_info(node)
        assert not any(b.startswith(f"{victim_id}@") for b in info["brokers"]), info
        assert set(info["fenced_brokers"]) <= {victim_id}, info
    for index, p in partitions.items():
        if index not in led:
            assert produce(cluster.nodes[p.leader], topic, index, [b"during"]) == (NONE, 5)

    victim.start()

    def leads_again():
        for node in cluster.nodes.values():
            answer = metadata(node)
            if set(answer.brokers) != set(NODE_IDS):
                raise NotYet(f"node {node.node_id} lists brokers {sorted(answer.brokers)}")
            for index in led:
                p = answer.topics[topic].partitions[index]
                if (p.leader, p.error) != (victim_id, NONE):
                    raise NotYet(f"node {node.node_id}: partition {index} is {p}")
        return True

    wait_until(f"broker {victim_id} registered and leading again", leads_again, FORMED_TIMEOUT_S, cluster)
    for index in led:
        assert produce(victim, topic, index, [b"after"]) == (NONE, 5), f"partition {index}"
        assert read_partition(victim, topic, index, 6) == before[index] + [b"after"], f"partition {index}"


def test_create_topics_fails_without_a_controller_majority_and_leaves_no_topic(own_cluster):
    cluster = own_cluster
    leader = cluster.wait_formed()
    # The survivor is a follower: the topic's record can then be in no log
    # that a later quorum could still commit.
    survivor = cluster.others(leader)[0]
    down = cluster.others(survivor.node_id)
    for node in down:
        node.kill()
    # Any error is a refusal: an error code (REQUEST_TIMED_OUT, NOT_CONTROLLER,
    # ...) or, as a client sees it when its own timeout passes, no answer
    # (Apache Kafka 4.1's broker holds a forwarded request and does not answer).
    try:
        error, message = create_topic(survivor, "no-majority", 1, 1, timeout_ms=ADMIN_TIMEOUT_MS,
                                      slack_s=ADMIN_TIMEOUT_MS / 1000)
    except (TimeoutError, ConnectionError) as refusal:
        error, message = None, repr(refusal)
    assert error != NONE, f"CreateTopics succeeded with nodes {[n.node_id for n in down]} down ({message})"

    for node in down:
        node.spawn()
    for node in down:
        node.wait_ready()
    cluster.wait_formed()
    # A topic the returned quorum commits: anything left from before would
    # be committed no later than it.
    created(survivor, "majority-back", 1)
    wait_topic(cluster, "majority-back", 1)
    for node in cluster.nodes.values():
        assert "no-majority" not in metadata(node).topics, f"node {node.node_id}"


def test_a_broker_without_a_vote_follows_the_metadata_log_and_serves(own_cluster):
    """process.roles=broker: not a voter, it registers through the voters,
    follows the committed metadata log from them, and leads partitions."""
    cluster = own_cluster
    cluster.wait_formed()
    client_port, controller_port = distinct_free_ports(2)
    data_dir = os.path.join(cluster.dir.name, "node-4")
    os.mkdir(data_dir)
    voters = cluster.nodes[1].voters
    observer = Node(4, client_port, controller_port, voters, data_dir, ["process.roles=broker"])
    cluster.nodes[4] = observer
    observer.spawn()
    observer.wait_ready()
    cluster.wait_formed()
    assert sorted(metadata(observer).brokers) == [1, 2, 3, 4]
    created(observer, "observed", assignment={0: [4], 1: [1]})
    wait_topic(cluster, "observed", 2)
    assert produce(observer, "observed", 0, [b"a", b"b"]) == (NONE, 0)
    assert read_partition(observer, "observed", 0, 2) == [b"a", b"b"]
    assert produce(observer, "observed", 1, [b"c"])[0] == NOT_LEADER_OR_FOLLOWER
    info = cluster_info(observer)
    assert 4 not in [v["id"] for v in info["quorum"]["voters"]], info["quorum"]
