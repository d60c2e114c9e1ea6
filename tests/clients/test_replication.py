"""Data replication on a 3-node cluster (Kafka's ISR model): followers fetch
from the leader as replicas, the high watermark is the least log end over
the ISR, acks=all waits for every in-sync replica, `min.insync.replicas`
refuses acks=all with too few, lagging followers leave the ISR and come
back, and a killed leader is replaced from the ISR with a higher leader
epoch while the returning replica truncates what it must.

- replicas byte-identical: after acks=all produce and a settled ISR, each
  partition's segment bytes and `leader-epoch-checkpoint` are the same on
  all three nodes (compared after a clean stop);
- a Jepsen-style history: an idempotent producer runs while the leader is
  SIGKILLed and restarted, round after round; every acknowledged record is
  read once, at its acknowledged offset, with no duplicates, no record never
  sent, per-key order kept; then the replicas' logs are byte-identical;
  (SLUICE_JEPSEN_ROUNDS sets the rounds, 3 by default);
- a paused (SIGSTOP) follower leaves the ISR after `replica.lag.time.max.ms`,
  acks=all goes on with two; with the leader alone acks=all gets
  NOT_ENOUGH_REPLICAS (acks=1 still works); resumed, the ISR is whole again.
  The second follower is a broker-only fourth node: with both followers
  voters, the one voter left could not commit the ISR shrink;
- a consumer long-polling at the high watermark is answered when the high
  watermark moves past a new record (the followers' fetches move it, after
  the leader's append), not at its `max_wait_ms`;
- Fetch as a replica with bad input: an unknown replica id, a fenced or an
  unknown leader epoch, a consumer offset past the log end, a last fetched
  epoch that diverged (DivergingEpoch); then the broker still serves;
- the group coordinator SIGKILLed, twice: every acknowledged offset commit
  is served by the next coordinator (raw OffsetFetch and librdkafka), the
  second after the first victim came back into the ISR.

Each test starts a cluster of its own (test_cluster.py's processes and raw
wire helpers, imported); every wait polls a condition with a deadline. Raw
requests to one broker: Metadata v7 (leader epochs), CreateTopics v4 with
configs, Produce v3, Fetch v4 and Fetch v12 (flexible, as a replica),
FindCoordinator v1, OffsetCommit v2, OffsetFetch v1."""
import collections
import hashlib
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from kafka.record.memory_records import MemoryRecords

from test_cluster import (CLIENT_TIMEOUT_S, ELECTION_TIMEOUT_S, FENCE_TIMEOUT_S, FORMED_TIMEOUT_S, HOST,
                          INVALID_REPLICATION_FACTOR, NODE_IDS, NONE, NOT_LEADER_OR_FOLLOWER, REQUEST_TIMEOUT_S,
                          SESSION_TIMEOUT_MS, STOP_TIMEOUT_S, Cluster, Node, NotYet, Reader, array, call,
                          distinct_free_ports, fetch, int32s, produce, recv_exact, string, wait_until)

# Kafka error codes.
OFFSET_OUT_OF_RANGE = 1
TOPIC_ALREADY_EXISTS = 36
NOT_ENOUGH_REPLICAS = 19
NOT_ENOUGH_REPLICAS_AFTER_APPEND = 20
FENCED_LEADER_EPOCH = 74
UNKNOWN_LEADER_EPOCH = 75

REPLICA_LAG_TIME_MAX_MS = 2000  # test_paused_follower_leaves_isr's nodes
FAILOVER_TIMEOUT_S = FENCE_TIMEOUT_S + ELECTION_TIMEOUT_S  # a leader killed to a successor (it may be the controller)
ISR_TIMEOUT_S = 45  # a restarted or resumed replica back in every ISR (it catches up first)
ISR_SHRINK_TIMEOUT_S = REPLICA_LAG_TIME_MAX_MS / 1000 + SESSION_TIMEOUT_MS / 1000 + 10
PROGRESS_TIMEOUT_S = 30  # the workload's acks growing on every partition
DELIVERY_TIMEOUT_MS = 60_000
JEPSEN_ROUNDS = int(os.environ.get("SLUICE_JEPSEN_ROUNDS", "3"))
JEPSEN_RATE = 150  # per second: one record to each topic per tick
JEPSEN_KEYS = 12
JEPSEN_IN_FLIGHT_MAX = 5000  # records the workload has handed librdkafka and not seen reported
IDENTICAL_RECORDS = 3000
VALUE_SIZES = (1, 10, 100, 700, 3000, 9000)
SHOWN_MAX = 20  # problems listed in a failure message
LONG_POLL_ANSWER_S = 30  # a long poll's answer once the high watermark passed a record

BATCH_HEADER_BYTES = 61
LEADER_EPOCH_CHECKPOINT = "leader-epoch-checkpoint"


# --- Raw requests: Metadata v7, CreateTopics v4 with configs, Fetch v12 -------

PartitionState = collections.namedtuple("PartitionState", "error leader epoch replicas isr")


def metadata_v7(node):
    """Metadata v7 of every topic as `node` answers it:
    ({broker id: (host, port)}, controller id, {topic: {index: PartitionState}});
    a topic with an error maps to that error code instead."""
    r = call(node, 3, 7, struct.pack(">ib", -1, 0))
    r.int32()  # throttle_time_ms
    brokers = {}
    for node_id, host, port, _rack in r.array(lambda: (r.int32(), r.string(), r.int32(), r.string())):
        brokers[node_id] = (host, port)
    r.string()  # cluster_id
    controller_id = r.int32()
    topics = {}

    def partition():
        error, index, leader, epoch = r.int16(), r.int32(), r.int32(), r.int32()
        replicas, isr, _offline = r.array(r.int32), r.array(r.int32), r.array(r.int32)
        return index, PartitionState(error, leader, epoch, replicas, isr)

    def topic():
        error, name, _internal = r.int16(), r.string(), r.int8()
        partitions = dict(r.array(partition))
        topics[name] = partitions if error == NONE else error

    r.array(topic)
    return brokers, controller_id, topics


def create_topic_with(cluster, node, name, partitions=-1, replication_factor=-1, configs=None, assignment=None,
                      timeout_ms=30_000):
    """CreateTopics v4 with topic configs through `node`, until it succeeds.
    INVALID_REPLICATION_FACTOR (a broker fenced for a moment, as under a
    starved CPU) is retried until FORMED_TIMEOUT_S; any other error fails."""
    assignments = [struct.pack(">i", index) + int32s(ids) for index, ids in sorted((assignment or {}).items())]
    entries = [string(key) + string(value) for key, value in sorted((configs or {}).items())]
    topic = string(name) + struct.pack(">ih", partitions, replication_factor) + array(assignments) + array(entries)

    attempts = []

    def created():
        attempts.append(name)
        r = call(node, 19, 4, array([topic]) + struct.pack(">ib", timeout_ms, 0),
                 timeout_s=timeout_ms / 1000 + REQUEST_TIMEOUT_S)
        r.int32()  # throttle_time_ms
        results = r.array(lambda: (r.string(), r.int16(), r.string()))
        errors = [(n, e) for n, e, _ in results]
        if errors == [(name, INVALID_REPLICATION_FACTOR)]:
            raise NotYet(f"CreateTopics {name} through node {node.node_id}: {results}")
        # After an attempt without an answer, the topic may be there already.
        done = [(name, NONE)] + ([(name, TOPIC_ALREADY_EXISTS)] if len(attempts) > 1 else [])
        assert len(errors) == 1 and errors[0] in done, \
            f"CreateTopics {name} through node {node.node_id}: {results}\n{cluster.log_tails()}"
        return True

    wait_until(f"CreateTopics {name}", created, FORMED_TIMEOUT_S, cluster)


def uvarint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def compact_string(text):
    data = text.encode()
    return uvarint(len(data) + 1) + data


def compact_array(items):
    return uvarint(len(items) + 1) + b"".join(items)


NO_TAGS = uvarint(0)


class FlexReader(Reader):
    """Reader for flexible versions: compact lengths and tagged fields."""

    def uvarint(self):
        value, shift = 0, 0
        while True:
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    def compact_string(self):
        value = self._sized(self.uvarint() - 1)
        return None if value is None else value.decode()

    def compact_bytes(self):
        return self._sized(self.uvarint() - 1)

    def compact_array(self, read_one):
        count = self.uvarint() - 1
        return None if count < 0 else [read_one() for _ in range(count)]

    def tags(self):
        fields = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            fields[tag] = self._sized(self.uvarint())
        return fields


def call_flexible(node, api_key, version, body, timeout_s=REQUEST_TIMEOUT_S):
    """One request with header v2 (a flexible version) to `node`; a
    FlexReader positioned after the response header v1."""
    correlation_id = 11
    frame = struct.pack(">hhi", api_key, version, correlation_id) + string("sluice-replication-test") + NO_TAGS \
        + body
    with socket.create_connection((HOST, node.client_port), timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        (size,) = struct.unpack(">i", recv_exact(sock, 4))
        reader = FlexReader(recv_exact(sock, size))
    assert reader.int32() == correlation_id
    reader.tags()
    return reader


FetchAnswer = collections.namedtuple("FetchAnswer", "error high_watermark log_start records tags")


def fetch_v12(node, topic, partition, offset, replica_id=-1, current_leader_epoch=-1, last_fetched_epoch=-1,
              max_wait_ms=0, min_bytes=0, timeout_s=REQUEST_TIMEOUT_S):
    """One Fetch v12 (no session; no waiting unless `max_wait_ms` and
    `min_bytes` ask for it) of one partition through `node`, as a consumer
    (replica_id -1) or as replica `replica_id`."""
    wanted = struct.pack(">iiqiqi", partition, current_leader_epoch, offset, last_fetched_epoch, -1, 1 << 20)
    topics = compact_array([compact_string(topic) + compact_array([wanted + NO_TAGS]) + NO_TAGS])
    body = struct.pack(">iiiibii", replica_id, max_wait_ms, min_bytes, 1 << 20, 0, 0, -1) + topics \
        + compact_array([]) + compact_string("") + NO_TAGS
    r = call_flexible(node, 1, 12, body, timeout_s)
    r.int32()  # throttle_time_ms
    top_error = r.int16()
    r.int32()  # session_id
    assert top_error == NONE, f"Fetch v12 through node {node.node_id}: top-level error {top_error}"

    def answer():
        index, error, high_watermark, _last_stable, log_start = (
            r.int32(), r.int16(), r.int64(), r.int64(), r.int64())
        r.compact_array(lambda: (r.int64(), r.int64(), r.tags()))  # aborted transactions
        r.int32()  # preferred_read_replica
        records = r.compact_bytes()
        return index, FetchAnswer(error, high_watermark, log_start, records or b"", r.tags())

    responses = r.compact_array(lambda: (r.compact_string(), r.compact_array(answer), r.tags()))
    assert [(t, [p[0] for p in ps]) for t, ps, _ in responses] == [(topic, [partition])], responses
    return responses[0][1][0][1]


def values_of(records):
    """The values of every record in `records` (whole batches), in order."""
    batches = MemoryRecords(records)
    values = []
    while True:
        batch = batches.next_batch()
        if batch is None:
            return values
        values.extend(record.value for record in batch)


# --- Waiting on the cluster's view of a topic ------------------------------

def agreed_partitions(nodes, topic, count):
    """{index: PartitionState} of `topic` as every one of `nodes` answers it,
    when all of them list `count` partitions with a leader and agree on
    leader, epoch, replicas and ISR; else NotYet."""
    views = {}
    for node in nodes:
        partitions = metadata_v7(node)[2].get(topic)
        if not isinstance(partitions, dict) or len(partitions) != count:
            raise NotYet(f"node {node.node_id} lists {topic} as {partitions}")
        if any(p.error != NONE or p.leader < 0 for p in partitions.values()):
            raise NotYet(f"node {node.node_id}: {topic} has partitions without a leader: {partitions}")
        views[node.node_id] = {i: p._replace(isr=sorted(p.isr)) for i, p in partitions.items()}
    first = next(iter(views.values()))
    if any(view != first for view in views.values()):
        raise NotYet(f"the nodes disagree on {topic}: {views}")
    return first


def whole(partitions):
    """True when every partition's ISR is all of its (three) replicas."""
    return all(len(p.replicas) == 3 and sorted(p.isr) == sorted(p.replicas) for p in partitions.values())


def wait_whole_isr(cluster, topics, timeout_s=ISR_TIMEOUT_S):
    """Waits until every running node agrees that each partition of each
    topic ({name: partitions}) has all three replicas in its ISR."""

    def in_sync():
        states = {}
        for topic, count in topics.items():
            partitions = agreed_partitions(cluster.live(), topic, count)
            if not whole(partitions):
                raise NotYet(f"{topic}: {partitions}")
            states[topic] = partitions
        return states

    return wait_until(f"a whole ISR for {sorted(topics)}", in_sync, timeout_s, cluster)


def wait_isr(cluster, node, topic, expected, timeout_s):
    """Waits until `node` reports partition 0's ISR as `expected`."""

    def isr_is():
        partitions = metadata_v7(node)[2].get(topic)
        if not isinstance(partitions, dict) or 0 not in partitions:
            raise NotYet(f"node {node.node_id} lists {topic} as {partitions}")
        if sorted(partitions[0].isr) != sorted(expected):
            raise NotYet(f"node {node.node_id}: {partitions[0]}")
        return partitions[0]

    return wait_until(f"ISR {sorted(expected)} of {topic} on node {node.node_id}", isr_is, timeout_s, cluster)


def wait_new_leader(cluster, survivors, topic, index, old_leader, old_epoch):
    """Waits until every survivor names one leader of the partition other
    than `old_leader`, with an epoch above `old_epoch`; its PartitionState."""

    def moved():
        views = {}
        for node in survivors:
            partitions = metadata_v7(node)[2].get(topic)
            p = partitions.get(index) if isinstance(partitions, dict) else None
            if p is None or p.leader in (old_leader, -1) or p.epoch <= old_epoch:
                raise NotYet(f"node {node.node_id}: {topic}-{index} is {p}")
            views[node.node_id] = (p.leader, p.epoch)
        if len(set(views.values())) != 1:
            raise NotYet(f"(leader, epoch) by node: {views}")
        return p

    return wait_until(f"a leader of {topic}-{index} other than node {old_leader}, epoch > {old_epoch}",
                      moved, FAILOVER_TIMEOUT_S, cluster)


# --- Processes ----------------------------------------------------------------

@pytest.fixture
def make_cluster(request):
    """Starts a 3-node cluster of the test's own (extra settings for every
    node); each is stopped by its PID, resumed first if paused."""
    clusters = []

    def make(settings=()):
        cluster = Cluster(settings=["group.initial.rebalance.delay.ms=0", *settings])
        clusters.append(cluster)
        cluster.start()
        return cluster

    yield make
    for cluster in clusters:
        for node in cluster.nodes.values():
            resume(node)
        cluster.close()


def pause(node):
    node.proc.send_signal(signal.SIGSTOP)


def resume(node):
    """SIGCONT (harmless if not paused): a stopped process acts on SIGTERM
    only once continued."""
    if node.running():
        node.proc.send_signal(signal.SIGCONT)


def stop_all(cluster):
    """SIGTERM to every running node at once, then waits: each must exit 0."""
    nodes = cluster.live()
    for node in nodes:
        node.proc.terminate()
    codes = {}
    for node in nodes:
        try:
            codes[node.node_id] = node.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            node.kill()
            codes[node.node_id] = f"still running {STOP_TIMEOUT_S}s after SIGTERM (killed)"
    bad = {i: code for i, code in codes.items() if code != 0}
    assert not bad, f"unclean stops: {bad}\n{cluster.log_tails()}"


def add_broker_only_node(cluster, node_id, settings):
    """A broker that is not a controller voter (process.roles=broker)."""
    client_port, controller_port = distinct_free_ports(2)
    data_dir = os.path.join(cluster.dir.name, f"node-{node_id}")
    os.mkdir(data_dir)
    node = Node(node_id, client_port, controller_port, cluster.nodes[1].voters, data_dir,
                ["group.initial.rebalance.delay.ms=0", *settings, "process.roles=broker"])
    cluster.nodes[node_id] = node
    node.start()
    cluster.wait_formed()
    return node


# --- The replicas' files --------------------------------------------------------

def partition_dir(node, topic, index):
    return os.path.join(node.data_dir, f"{topic}-{index}")


def log_bytes(node, topic, index):
    """The partition's `*.log` segments on `node`, concatenated in base
    offset order."""
    directory = partition_dir(node, topic, index)
    assert os.path.isdir(directory), f"node {node.node_id} has no {directory}: {os.listdir(node.data_dir)}"
    segments = sorted((int(name[:-4]), name) for name in os.listdir(directory)
                      if name.endswith(".log") and name[:-4].isdigit())
    data = bytearray()
    for _, name in segments:
        with open(os.path.join(directory, name), "rb") as f:
            data += f.read()
    return bytes(data)


def batch_headers(data):
    """[(position, base offset, last offset, leader epoch)] of the whole
    batches at the start of `data`, and where they end."""
    headers, position = [], 0
    while position + BATCH_HEADER_BYTES <= len(data):
        base_offset, length, epoch = struct.unpack_from(">qii", data, position)
        (last_delta,) = struct.unpack_from(">i", data, position + 23)
        if length <= 0 or position + 12 + length > len(data):
            break
        headers.append((position, base_offset, base_offset + last_delta, epoch))
        position += 12 + length
    return headers, position


def describe_log(data):
    headers, end = batch_headers(data)
    last = headers[-1][2] if headers else None
    epochs = sorted({h[3] for h in headers})
    return (f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}, {len(headers)} batches "
            f"ending at byte {end}, last offset {last}, leader epochs {epochs}")


def first_divergence(logs):
    """Where the logs ({node id: bytes}) first differ, by batch."""
    datas = list(logs.values())
    shortest = min(len(d) for d in datas)
    at = next((i for i in range(shortest) if len({d[i] for d in datas}) > 1), shortest)
    lines = [f"first difference at byte {at}"]
    for node_id, data in logs.items():
        headers, _ = batch_headers(data)
        batch = next((h for h in headers if h[0] <= at < h[0] + 12 + struct.unpack_from(">i", data, h[0] + 8)[0]),
                     None)
        lines.append(f"  node {node_id}: batch there (position, base, last offset, epoch) = {batch}")
    return "\n".join(lines)


def assert_logs_identical(cluster, topic, index):
    """The partition's log bytes are the same on every node and not empty;
    returns them."""
    logs = {node.node_id: log_bytes(node, topic, index) for node in cluster.nodes.values()}
    described = "\n".join(f"  node {i}: {describe_log(data)}" for i, data in logs.items())
    assert all(logs.values()), f"{topic}-{index}: an empty log\n{described}"
    digests = {i: hashlib.sha256(data).hexdigest() for i, data in logs.items()}
    assert len(set(digests.values())) == 1, \
        f"{topic}-{index}: the replicas' logs differ\n{described}\n{first_divergence(logs)}"
    data = next(iter(logs.values()))
    _, end = batch_headers(data)
    assert end == len(data), f"{topic}-{index}: bytes after the last whole batch\n{described}"
    return data


def checkpoints(cluster, topic, index):
    texts = {}
    for node in cluster.nodes.values():
        path = os.path.join(partition_dir(node, topic, index), LEADER_EPOCH_CHECKPOINT)
        assert os.path.isfile(path), f"node {node.node_id} has no {path}"
        with open(path) as f:
            texts[node.node_id] = f.read()
    return texts


# --- 1. Byte-identical replicas ------------------------------------------------

def test_replicas_are_byte_identical(make_cluster):
    cluster = make_cluster()
    topic = "identical"
    create_topic_with(cluster, cluster.nodes[1], topic, 3, 3, {"min.insync.replicas": "2"})
    wait_whole_isr(cluster, {topic: 3}, FORMED_TIMEOUT_S)

    acked, errors = collections.Counter(), []

    def delivered(error, message):
        if error is not None:
            errors.append(error)
        else:
            acked[message.partition()] += 1

    bootstrap = ",".join(node.bootstrap for node in cluster.nodes.values())
    # Two idempotent producers (two producer ids), one of them compressing.
    for codec in ("none", "lz4"):
        producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                             "linger.ms": 5, "compression.type": codec})
        for i in range(IDENTICAL_RECORDS // 2):
            size = VALUE_SIZES[i % len(VALUE_SIZES)]
            value = (b"%s-%d:" % (codec.encode(), i)).ljust(size, b"abcdefgh"[i % 8:i % 8 + 1])
            headers = [("h", b"%d" % i)] if i % 5 == 0 else None
            if i % 3 == 0:  # keyed: the partitioner decides; now and then a tombstone
                key = b"key-%d" % (i % 37)
                producer.produce(topic, key=key, value=None if i % 97 == 0 else value, headers=headers,
                                 on_delivery=delivered)
            else:
                producer.produce(topic, partition=i % 3, value=value, headers=headers, on_delivery=delivered)
            producer.poll(0)
        assert producer.flush(2 * CLIENT_TIMEOUT_S) == 0, f"{codec}: undelivered records"
    assert errors == [], errors[:5]
    assert sum(acked.values()) == IDENTICAL_RECORDS and set(acked) == {0, 1, 2}, acked

    # Nothing more is written: once the ISR is whole and each leader's
    # high watermark is its log end (every acknowledged record), every
    # replica holds the whole log.
    def settled():
        partitions = agreed_partitions(cluster.live(), topic, 3)
        if not whole(partitions):
            raise NotYet(f"ISRs: {partitions}")
        for index, p in partitions.items():
            error, high_watermark = fetch(cluster.nodes[p.leader], topic, index)
            if (error, high_watermark) != (NONE, acked[index]):
                raise NotYet(f"partition {index} on its leader {p.leader}: error {error}, "
                             f"high watermark {high_watermark}, {acked[index]} acknowledged")
        return partitions

    partitions = wait_until("whole ISRs and high watermarks at the log ends", settled, ISR_TIMEOUT_S, cluster)
    stop_all(cluster)

    for index in range(3):
        data = assert_logs_identical(cluster, topic, index)
        headers, _ = batch_headers(data)
        assert headers[0][1] == 0 and headers[-1][2] == acked[index] - 1, \
            f"partition {index}: the log holds offsets {headers[0][1]}..{headers[-1][2]}, {acked[index]} acknowledged"
        epochs = {h[3] for h in headers}
        assert all(0 <= e <= partitions[index].epoch for e in epochs), \
            f"partition {index}: batches stamped with leader epochs {epochs}, {partitions[index]}"
        texts = checkpoints(cluster, topic, index)
        assert len(set(texts.values())) == 1, f"partition {index}: leader-epoch-checkpoint differs: {texts}"


# --- 2. Leader killed: nothing acknowledged lost --------------------------------

class Workload:
    """An idempotent producer in a thread sending keyed values "key:seq" to
    each topic at a steady rate, recording what it sent and what each
    delivery report said."""

    def __init__(self, bootstrap, topics):
        self.topics = topics  # {name: partition count}
        self.config = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                       "retries": 2_147_483_647, "delivery.timeout.ms": DELIVERY_TIMEOUT_MS, "linger.ms": 20,
                       "retry.backoff.ms": 100, "retry.backoff.max.ms": 1000, "reconnect.backoff.ms": 100,
                       "reconnect.backoff.max.ms": 1000}
        self.lock = threading.Lock()
        self.sent = {}  # (topic, value) -> key
        self.acked = {}  # (topic, value) -> (partition, offset)
        self.failed = {}  # (topic, value) -> error
        self.acks_by_partition = collections.Counter()  # (topic, partition) -> count
        self.client_errors = []
        self.crash = None
        self.unflushed = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.thread.join(DELIVERY_TIMEOUT_MS / 1000 + 30)
        assert not self.thread.is_alive(), "the producer thread did not finish"
        assert self.crash is None, f"the producer thread failed: {self.crash!r}"
        assert not any(e.fatal() for e in self.client_errors), \
            f"fatal producer errors: {[e for e in self.client_errors if e.fatal()]}"
        assert self.unflushed == 0, f"{self.unflushed} records never reported"

    def delivered(self, error, message):
        item = (message.topic(), message.value())
        with self.lock:
            if error is not None:
                self.failed[item] = error
            else:
                self.acked[item] = (message.partition(), message.offset())
                self.acks_by_partition[(message.topic(), message.partition())] += 1

    def on_error(self, error):
        self.client_errors.append(error)

    def run(self):
        try:
            producer = Producer({**self.config, "error_cb": self.on_error})
            seq, next_tick = 0, time.monotonic()
            while not self.stopping.is_set():
                now = time.monotonic()
                if now < next_tick or len(producer) >= JEPSEN_IN_FLIGHT_MAX:
                    producer.poll(min(0.05, max(next_tick - now, 0.005)))
                    continue
                key_index = seq % JEPSEN_KEYS
                key = b"k%d" % key_index
                value = b"%s:%d" % (key, seq)
                for topic, count in self.topics.items():
                    with self.lock:
                        self.sent[(topic, value)] = key
                    # One partition per key, every partition used.
                    producer.produce(topic, key=key, value=value, partition=key_index % count,
                                     on_delivery=self.delivered)
                seq += 1
                next_tick = max(next_tick, now) + 1 / JEPSEN_RATE
                producer.poll(0)
            self.unflushed = producer.flush(DELIVERY_TIMEOUT_MS / 1000 + 10)
        except Exception as error:  # reported by stop()
            self.crash = error

    def acks_snapshot(self):
        with self.lock:
            return collections.Counter(self.acks_by_partition)

    def wait_progress(self, cluster, what, at_least=20):
        """Waits until every partition of every topic has `at_least` more
        acknowledged records than now."""
        before = self.acks_snapshot()
        wanted = [(t, p) for t, count in self.topics.items() for p in range(count)]

        def progressed():
            if self.crash is not None:
                raise AssertionError(f"the producer thread failed: {self.crash!r}")
            now = self.acks_snapshot()
            behind = {tp: now[tp] - before[tp] for tp in wanted if now[tp] - before[tp] < at_least}
            if behind:
                raise NotYet(f"new acks by partition: {behind}; failed so far: {len(self.failed)}")
            return True

        wait_until(f"acknowledged records {what}", progressed, PROGRESS_TIMEOUT_S, cluster)


def write_markers(cluster, topics, workload):
    """With every ISR whole, one acks=all record ("marker:...", no key) per
    partition through its leader: acknowledged with a whole ISR, every
    replica then holds its leader's whole log. Each attempt has its own
    value and counts as sent; the acknowledged one as acknowledged."""
    wait_whole_isr(cluster, topics)
    for topic, count in topics.items():
        for index in range(count):
            attempts = []

            def marked():
                p = agreed_partitions(cluster.live(), topic, count)[index]
                value = b"marker:%d:%d" % (index, len(attempts))
                attempts.append(value)
                workload.sent[(topic, value)] = None
                error, offset = produce(cluster.nodes[p.leader], topic, index, [value], acks=-1)
                if error != NONE:
                    raise NotYet(f"marker produce to {topic}-{index} on node {p.leader}: error {error}")
                workload.acked[(topic, value)] = (index, offset)
                return True

            wait_until(f"an acks=all marker in {topic}-{index}", marked, ISR_TIMEOUT_S, cluster)
    return wait_whole_isr(cluster, topics, timeout_s=5)  # still whole: the markers reached all three


def read_everything(cluster, topics):
    """Every record of every partition from offset 0 up to the high
    watermark, by a fresh consumer: {(topic, partition): [(offset, key, value)]}."""
    bootstrap = ",".join(node.bootstrap for node in cluster.live())
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "replication-checker",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    read = collections.defaultdict(list)
    try:
        wanted = [TopicPartition(t, p) for t, count in topics.items() for p in range(count)]
        ends = {}
        for tp in wanted:
            _low, high = consumer.get_watermark_offsets(tp, timeout=CLIENT_TIMEOUT_S)
            ends[(tp.topic, tp.partition)] = high
        consumer.assign([TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in wanted])
        done = {tp for tp, end in ends.items() if end == 0}
        deadline = time.monotonic() + 2 * CLIENT_TIMEOUT_S
        while len(done) < len(ends):
            assert time.monotonic() < deadline, \
                f"read {({tp: len(r) for tp, r in read.items()})} of {ends} by the deadline"
            message = consumer.poll(0.5)
            if message is None:
                continue
            tp = (message.topic(), message.partition())
            if message.error() is not None:
                assert message.error().code() == KafkaError._PARTITION_EOF, message.error()
                continue
            read[tp].append((message.offset(), message.key(), message.value()))
            if message.offset() >= ends[tp] - 1:
                done.add(tp)
    finally:
        consumer.close()
    return ends, read


def check_history(sent, acked, ends, read):
    """Jepsen-style: the problems found in what was read against what was
    sent and acknowledged (empty when all is well)."""
    problems = []
    seen = {}  # (topic, value) -> (partition, offset)
    for (topic, index), records in sorted(read.items()):
        offsets = [offset for offset, _, _ in records]
        if any(b <= a for a, b in zip(offsets, offsets[1:])):
            problems.append(f"{topic}-{index}: offsets not strictly increasing")
        if offsets != list(range(ends[(topic, index)])):
            problems.append(f"{topic}-{index}: offsets read are not 0..{ends[(topic, index)] - 1} "
                            f"({len(offsets)} records, first {offsets[:3]}, last {offsets[-3:]})")
        last_seq = {}
        for offset, key, value in records:
            item = (topic, value)
            if item in seen:
                problems.append(f"duplicate {value!r} in {topic}: {seen[item]} and ({index}, {offset})")
                continue
            seen[item] = (index, offset)
            if item not in sent:
                problems.append(f"{topic}-{index}@{offset}: {value!r} was never sent")
                continue
            if sent[item] != key:
                problems.append(f"{topic}-{index}@{offset}: {value!r} read with key {key!r}, sent with {sent[item]!r}")
            if key is not None:
                seq = int(value.split(b":")[1])
                if seq <= last_seq.get(key, -1):
                    problems.append(f"{topic}-{index}@{offset}: key {key!r} seq {seq} after {last_seq[key]}")
                last_seq[key] = seq
    for item, (index, offset) in sorted(acked.items()):
        where = seen.get(item)
        if where is None:
            problems.append(f"lost: {item[1]!r} acknowledged at {item[0]}-{index}@{offset}, never read")
        elif where != (index, offset):
            problems.append(f"{item[1]!r} acknowledged at {item[0]}-{index}@{offset}, read at {where}")
    return problems


def test_leader_killed_nothing_acknowledged_lost(make_cluster):
    cluster = make_cluster()
    # One partition (the one whose leader is killed) and three (the victim
    # leads some of them, not others).
    topics = {"history-1": 1, "history-3": 3}
    for topic, count in topics.items():
        create_topic_with(cluster, cluster.nodes[1], topic, count, 3, {"min.insync.replicas": "2"})
    wait_whole_isr(cluster, topics, FORMED_TIMEOUT_S)

    workload = Workload(",".join(node.bootstrap for node in cluster.nodes.values()), topics)
    workload.start()
    try:
        workload.wait_progress(cluster, "with every node up")
        for round_index in range(JEPSEN_ROUNDS):
            partitions = wait_until("the nodes agreeing on history-1",
                                    lambda: agreed_partitions(cluster.live(), "history-1", 1), FORMED_TIMEOUT_S,
                                    cluster)
            victim_id, old_epoch = partitions[0].leader, partitions[0].epoch
            victim = cluster.nodes[victim_id]
            victim.kill()
            survivors = cluster.others(victim_id)
            moved = wait_new_leader(cluster, survivors, "history-1", 0, victim_id, old_epoch)
            print(f"round {round_index}: node {victim_id} (epoch {old_epoch}) killed, node {moved.leader} leads "
                  f"in epoch {moved.epoch}; {len(workload.acked)} acknowledged so far")
            workload.wait_progress(cluster, f"in round {round_index} with node {victim_id} killed")
            victim.start()
            wait_whole_isr(cluster, topics)
            workload.wait_progress(cluster, f"in round {round_index} after node {victim_id} came back")
    finally:
        workload.stopping.set()
    workload.stop()

    write_markers(cluster, topics, workload)
    ends, read = read_everything(cluster, topics)
    problems = check_history(workload.sent, workload.acked, ends, read)
    summary = (f"{len(workload.sent)} sent, {len(workload.acked)} acknowledged, {len(workload.failed)} failed, "
               f"{sum(len(r) for r in read.values())} read, ends {ends}")
    print(summary)
    assert not problems, f"{len(problems)} problems ({summary}):\n" + "\n".join(problems[:SHOWN_MAX])
    # Liveness, after safety: with failovers of seconds and a 60 s delivery
    # timeout, every record is delivered.
    assert not workload.failed, f"{summary}; failed deliveries: {list(workload.failed.items())[:5]}"

    stop_all(cluster)
    for topic, count in topics.items():
        for index in range(count):
            data = assert_logs_identical(cluster, topic, index)
            headers, _ = batch_headers(data)
            assert headers[-1][2] == ends[(topic, index)] - 1, \
                f"{topic}-{index}: the log ends at {headers[-1][2]}, the high watermark was {ends[(topic, index)]}"
            # Every epoch holds batches (the markers are in the last one), so
            # the leader's epoch cache and the followers' agree.
            texts = checkpoints(cluster, topic, index)
            assert len(set(texts.values())) == 1, f"{topic}-{index}: leader-epoch-checkpoint differs: {texts}"


# --- 3. A paused follower leaves the ISR ------------------------------------------

def test_paused_follower_leaves_isr(make_cluster):
    settings = [f"replica.lag.time.max.ms={REPLICA_LAG_TIME_MAX_MS}"]
    cluster = make_cluster(settings)
    controller = cluster.wait_formed()
    # The replicas: the active controller (leading), another voter and a
    # broker-only node. Pausing both followers leaves two voters running,
    # a majority: the controller can still shrink the ISR to the leader.
    add_broker_only_node(cluster, 4, settings)
    voter = next(i for i in NODE_IDS if i != controller)
    topic = "paused"
    create_topic_with(cluster, cluster.nodes[controller], topic, configs={"min.insync.replicas": "2"},
                      assignment={0: [controller, voter, 4]})
    partitions = wait_whole_isr(cluster, {topic: 1}, FORMED_TIMEOUT_S)[topic]
    assert partitions[0].leader == controller, partitions
    leader = cluster.nodes[controller]
    expected = [b"all three"]
    assert produce(leader, topic, 0, expected) == (NONE, 0)

    first, second = cluster.nodes[voter], cluster.nodes[4]
    try:
        pause(first)
        wait_isr(cluster, leader, topic, [controller, 4], ISR_SHRINK_TIMEOUT_S)
        error, offset = produce(leader, topic, 0, [b"two in sync"])
        assert (error, offset) == (NONE, len(expected)), "acks=all with two in sync (min.insync.replicas=2)"
        expected.append(b"two in sync")

        pause(second)
        wait_isr(cluster, leader, topic, [controller], ISR_SHRINK_TIMEOUT_S)
        answers = []

        def refused():
            value = b"leader alone %d" % len(answers)
            error, _ = produce(leader, topic, 0, [value])
            answers.append(error)
            assert error != NONE, f"acks=all succeeded with the leader alone in the ISR: {answers}"
            if error == NOT_ENOUGH_REPLICAS_AFTER_APPEND:
                expected.append(value)  # appended (the ISR shrank meanwhile), not acknowledged
            if error != NOT_ENOUGH_REPLICAS:
                raise NotYet(f"acks=all answers: {answers}")
            return True

        wait_until("acks=all refused with NOT_ENOUGH_REPLICAS", refused, REQUEST_TIMEOUT_S, cluster)
        error, offset = produce(leader, topic, 0, [b"acks=1"], acks=1)
        assert (error, offset) == (NONE, len(expected)), "acks=1 with the leader alone"
        expected.append(b"acks=1")
    finally:
        resume(first)
        resume(second)

    wait_whole_isr(cluster, {topic: 1})
    assert produce(leader, topic, 0, [b"whole again"]) == (NONE, len(expected))
    expected.append(b"whole again")
    answer = fetch_v12(leader, topic, 0, 0)
    assert (answer.error, answer.high_watermark) == (NONE, len(expected)), answer
    assert values_of(answer.records) == expected


# --- 4. Fetch as a replica with bad input ---------------------------------------

def test_consumer_long_poll_wakes_when_the_high_watermark_moves(make_cluster):
    cluster = make_cluster()
    topic = "long-poll"
    create_topic_with(cluster, cluster.nodes[1], topic, 1, 3)
    p = wait_whole_isr(cluster, {topic: 1}, FORMED_TIMEOUT_S)[topic][0]
    leader = cluster.nodes[p.leader]
    # The answer must come from the high watermark moving: its max wait is
    # far past the socket's deadline.
    answers = []
    poll = threading.Thread(target=lambda: answers.append(
        fetch_v12(leader, topic, 0, 0, max_wait_ms=600_000, min_bytes=1, timeout_s=LONG_POLL_ANSWER_S)))
    poll.start()
    # acks=1: answered at the leader's append, before any follower fetched
    # it, so the high watermark moves after the append's wake-up.
    assert produce(leader, topic, 0, [b"moved"], acks=1) == (NONE, 0)
    poll.join()
    assert len(answers) == 1, "the long poll got no answer (see the thread's exception above)"
    assert answers[0].error == NONE and answers[0].high_watermark == 1, answers[0]
    assert values_of(answers[0].records) == [b"moved"]


def test_fetch_as_replica_bad_input(make_cluster):
    cluster = make_cluster()
    topic = "replica-fetch"
    create_topic_with(cluster, cluster.nodes[1], topic, 1, 3)
    p = wait_whole_isr(cluster, {topic: 1}, FORMED_TIMEOUT_S)[topic][0]
    assert produce(cluster.nodes[p.leader], topic, 0, [b"a", b"b", b"c"]) == (NONE, 0)
    # A new leader, so that an older epoch is >= 0 (-1 means "not given")
    # and the log has two epochs: a, b, c in the first, the next from 3.
    first_epoch = p.epoch
    cluster.nodes[p.leader].kill()
    survivors = cluster.others(p.leader)
    wait_new_leader(cluster, survivors, topic, 0, p.leader, first_epoch)

    def follower_in_sync():
        now = agreed_partitions(survivors, topic, 1)[0]
        if sorted(now.isr) != sorted(n.node_id for n in survivors):
            raise NotYet(f"{now}")
        return now

    p = wait_until("the surviving follower in the ISR", follower_in_sync, ISR_TIMEOUT_S, cluster)
    leader = cluster.nodes[p.leader]
    follower = next(i for i in p.isr if i != p.leader)
    epoch = p.epoch

    def error_of(offset=0, **kwargs):
        return fetch_v12(leader, topic, 0, offset, **kwargs).error

    cases = {
        "unknown replica 77, current epoch": (error_of(replica_id=77, current_leader_epoch=epoch),
                                              NOT_LEADER_OR_FOLLOWER),
        "unknown replica 77, no epoch": (error_of(replica_id=77), NOT_LEADER_OR_FOLLOWER),
        f"replica {follower}, epoch {epoch - 1}": (
            error_of(replica_id=follower, current_leader_epoch=epoch - 1), FENCED_LEADER_EPOCH),
        f"replica {follower}, epoch {epoch + 5}": (
            error_of(replica_id=follower, current_leader_epoch=epoch + 5), UNKNOWN_LEADER_EPOCH),
        f"consumer, epoch {epoch - 1}": (error_of(current_leader_epoch=epoch - 1), FENCED_LEADER_EPOCH),
        "consumer, offset 1003 past the log end": (error_of(offset=1003, current_leader_epoch=epoch),
                                                   OFFSET_OUT_OF_RANGE),
    }
    wrong = {case: got for case, (got, want) in cases.items() if got != want}
    assert not wrong, f"error codes {wrong}, wanted {({case: want for case, (_, want) in cases.items()})}"

    # A replica whose last fetched epoch ends earlier on the leader than
    # its fetch offset: no records, DivergingEpoch (tag 0) = where that
    # epoch ends here (it does not move the follower's position).
    answer = fetch_v12(leader, topic, 0, 5, replica_id=follower, current_leader_epoch=epoch,
                       last_fetched_epoch=first_epoch)
    assert answer.error == NONE and answer.records == b"", answer
    assert 0 in answer.tags, f"no DivergingEpoch: {answer}"
    diverging = FlexReader(answer.tags[0])
    assert (diverging.int32(), diverging.int64()) == (first_epoch, 3), answer

    # Still serving: acks=all (the follower still replicates) and a fetch.
    assert produce(leader, topic, 0, [b"d"]) == (NONE, 3)
    answer = fetch_v12(leader, topic, 0, 0, current_leader_epoch=epoch)
    assert (answer.error, answer.high_watermark) == (NONE, 4), answer
    assert values_of(answer.records) == [b"a", b"b", b"c", b"d"]
    assert follower in metadata_v7(leader)[2][topic][0].isr


# --- 5. The group coordinator killed: committed offsets survive --------------------

OFFSETS_TOPIC = "__consumer_offsets"
OFFSETS_PARTITIONS = 50  # offsets.topic.num.partitions' default


def find_coordinator(node, group):
    """FindCoordinator v1 for `group` through `node`: the coordinator's node
    id; NotYet while it answers an error (none available yet)."""
    r = call(node, 10, 1, string(group) + struct.pack(">b", 0))
    r.int32()  # throttle_time_ms
    error, _message, node_id = r.int16(), r.string(), r.int32()
    if error != NONE:
        raise NotYet(f"FindCoordinator {group} through node {node.node_id}: error {error}")
    return node_id


def commit_offsets(node, group, topic, offsets):
    """OffsetCommit v2 as a standalone consumer (generation -1, no member id,
    the broker's retention): {partition: error code}."""
    partitions = [struct.pack(">iq", index, offset) + string(None) for index, offset in sorted(offsets.items())]
    body = (string(group) + struct.pack(">i", -1) + string("") + struct.pack(">q", -1)
            + array([string(topic) + array(partitions)]))
    r = call(node, 8, 2, body)
    errors = {}
    for _topic, answers in r.array(lambda: (r.string(), r.array(lambda: (r.int32(), r.int16())))):
        errors.update(answers)
    return errors


def fetch_offsets(node, group, topic, count):
    """OffsetFetch v1 of `topic`'s partitions from `node`: {partition:
    committed offset}; NotYet on any partition's error (loading, not the
    coordinator)."""
    r = call(node, 9, 1, string(group) + array([string(topic) + int32s(range(count))]))
    found = {}
    for _topic, answers in r.array(
            lambda: (r.string(), r.array(lambda: (r.int32(), r.int64(), r.string(), r.int16())))):
        for index, offset, _metadata, error in answers:
            if error != NONE:
                raise NotYet(f"OffsetFetch {group} {topic}-{index} from node {node.node_id}: error {error}")
            found[index] = offset
    return found


def served_by_new_coordinator(cluster, group, topic, count, killed_id):
    """Waits until a live node names a live coordinator for `group` other
    than `killed_id` and that coordinator answers OffsetFetch without
    errors: (coordinator id, {partition: offset})."""

    def served():
        node_id = find_coordinator(cluster.live()[0], group)
        if node_id == killed_id or not cluster.nodes[node_id].running():
            raise NotYet(f"the coordinator is still node {node_id}")
        return node_id, fetch_offsets(cluster.nodes[node_id], group, topic, count)

    return wait_until(f"a new coordinator for {group} serving its offsets", served, FAILOVER_TIMEOUT_S, cluster)


def group_client(cluster, group):
    """A librdkafka consumer of `group` that only commits and reads
    commits (it finds the coordinator itself), bootstrapped from the live
    nodes."""
    return Consumer({"bootstrap.servers": ",".join(n.bootstrap for n in cluster.live()), "group.id": group,
                     "enable.auto.commit": False})


def committed_through_client(cluster, group, topic, count):
    """The committed offsets as librdkafka reads them."""
    consumer = group_client(cluster, group)
    try:
        partitions = consumer.committed([TopicPartition(topic, i) for i in range(count)],
                                        timeout=CLIENT_TIMEOUT_S)
        assert all(p.error is None for p in partitions), partitions
        return {p.partition: p.offset for p in partitions}
    finally:
        consumer.close()


def test_group_coordinator_killed_twice_committed_offsets_survive(make_cluster):
    """Kafka writes commits to `__consumer_offsets` with acks=all: a commit
    acknowledged by a coordinator that is then SIGKILLed is served by the
    next one (elected from the offsets partition's ISR, after it replays
    the partition), to raw requests and to librdkafka. Twice: the second
    commit goes through librdkafka to the first failover's coordinator,
    the killed node comes back and rejoins the ISR, then that coordinator
    is killed too. (No preferred-leader rebalance, which could hand the
    offsets partition back to the first victim between the two kills.)"""
    cluster = make_cluster(["auto.leader.rebalance.enable=false"])
    cluster.wait_formed()
    topic, count, group = "committed", 3, "failover-group"
    create_topic_with(cluster, cluster.nodes[1], topic, count, 3)
    wait_whole_isr(cluster, {topic: count, OFFSETS_TOPIC: OFFSETS_PARTITIONS}, FORMED_TIMEOUT_S)

    coordinator_id = wait_until(f"a coordinator for {group}",
                                lambda: find_coordinator(cluster.live()[0], group), FORMED_TIMEOUT_S, cluster)
    first = {index: 100 + index for index in range(count)}

    def acknowledged_first():
        errors = commit_offsets(cluster.nodes[coordinator_id], group, topic, first)
        if errors != {index: NONE for index in range(count)}:
            raise NotYet(f"OffsetCommit to node {coordinator_id}: {errors}")  # e.g. still loading
        return True

    wait_until(f"a commit acknowledged by node {coordinator_id}", acknowledged_first, FORMED_TIMEOUT_S, cluster)

    cluster.nodes[coordinator_id].kill()
    second_id, served = served_by_new_coordinator(cluster, group, topic, count, coordinator_id)
    assert served == first, f"node {second_id} serves {served} after node {coordinator_id} acknowledged {first}"
    assert committed_through_client(cluster, group, topic, count) == first

    # The next commit through librdkafka, acknowledged by the new coordinator.
    second = {index: 200 + index for index in range(count)}
    consumer = group_client(cluster, group)
    try:
        acknowledged = consumer.commit(offsets=[TopicPartition(topic, i, o) for i, o in second.items()],
                                       asynchronous=False)
        assert all(p.error is None for p in acknowledged), acknowledged
    finally:
        consumer.close()
    now_id = find_coordinator(cluster.live()[0], group)
    assert now_id == second_id, f"the coordinator moved from node {second_id} to {now_id} with no failure"

    cluster.nodes[coordinator_id].start()
    wait_whole_isr(cluster, {OFFSETS_TOPIC: OFFSETS_PARTITIONS})
    now_id = find_coordinator(cluster.live()[0], group)
    assert now_id == second_id, f"the coordinator moved from node {second_id} to {now_id} on node {coordinator_id}'s return"
    cluster.nodes[second_id].kill()
    third_id, served = served_by_new_coordinator(cluster, group, topic, count, second_id)
    assert served == second, f"node {third_id} serves {served} after node {second_id} acknowledged {second}"
    assert committed_through_client(cluster, group, topic, count) == second
