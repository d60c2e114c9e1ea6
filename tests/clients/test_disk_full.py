"""A full disk, on a small ext4 file system the test creates on a loop device
(root only; skipped elsewhere) and removes afterwards, under the broker's
data dir.

- Kept free space: with `sluice.log.dir.min.free.bytes` above what is left,
  the roll that would start a new segment refuses the produce with
  KAFKA_STORAGE_ERROR before the disk is full, logged once; everything
  acknowledged stays readable, other requests are served, and once space
  is freed the same broker takes writes again, no restart.
- A real ENOSPC (no free-space check) in one of two `log.dirs`: the write
  fails and that whole log directory goes offline, as in Kafka: every
  partition in it answers KAFKA_STORAGE_ERROR to produce and fetch (a loud
  log line), the partitions of the other directory keep serving, and new
  partitions go to the other one; after space is freed a restart recovers
  every acknowledged record and writes resume.
- A real ENOSPC in the only log directory: no directory is left online, so
  the broker halts (exit status 1, one loud line), as Kafka does when all
  its log dirs have failed; after space is freed a restart recovers every
  acknowledged record.
- In a three-broker cluster, a real ENOSPC in one of a broker's two
  `log.dirs`: the broker tells the controller (its heartbeat names the
  replicas of the failed directory, Kafka's offline log dirs), which takes
  that broker out of those partitions' ISR and leadership; the new leader
  holds every acknowledged record and takes writes, while the broker's
  partitions in its healthy directory stay as they were."""
import os
import shutil
import subprocess
import tempfile

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from test_cluster import (FENCE_TIMEOUT_S, NONE, Cluster, NotYet, created, fetch, metadata, produce,
                          read_partition, wait_topic, wait_until)

KAFKA_STORAGE_ERROR = 56
FS_BYTES = 64 << 20
BALLAST_BYTES = 24 << 20  # freed to make room again
RECORD = b"r" * 1000
RECORDS_PER_BATCH = 16
LOG_TIMEOUT_S = 30
BATCHES_MAX = 10_000  # more than the file system holds: a guard against a broker that never refuses


class Node:
    """The one broker as test_cluster's raw helpers address it."""

    def __init__(self, broker):
        self.broker = broker

    @property
    def client_port(self):
        return self.broker.port


@pytest.fixture
def small_fs():
    if os.geteuid() != 0 or not shutil.which("mkfs.ext4"):
        pytest.skip("needs root and mkfs.ext4 to mount a loop file system")
    work = tempfile.mkdtemp(prefix="sluice-full-")
    image, mount = os.path.join(work, "disk.img"), os.path.join(work, "mnt")
    os.mkdir(mount)
    with open(image, "wb") as f:
        f.truncate(FS_BYTES)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", image], check=True)
    mounted = subprocess.run(["mount", "-o", "loop", image, mount], capture_output=True, text=True)
    if mounted.returncode != 0:
        shutil.rmtree(work)
        pytest.skip(f"cannot mount a loop device here: {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", mount], check=False)
        shutil.rmtree(work, ignore_errors=True)


def place_ballast(mount):
    path = os.path.join(mount, "ballast")
    with open(path, "wb") as f:
        f.write(b"\0" * BALLAST_BYTES)
        f.flush()
        os.fsync(f.fileno())
    return path


def create(broker, topic):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)


def fill_until_refused(node, topic):
    """Creates `topic`, then produces acks=all batches until one is refused;
    the acknowledged base offsets, and the refusal's error code."""
    create(node.broker, topic)
    acknowledged = []
    for _ in range(BATCHES_MAX):
        error, offset = produce(node, topic, 0, [RECORD] * RECORDS_PER_BATCH, acks=-1)
        if error != NONE:
            return acknowledged, error
        acknowledged.append(offset)
    pytest.fail(f"{BATCHES_MAX} batches of {len(RECORD) * RECORDS_PER_BATCH} bytes fit in {FS_BYTES} bytes")


def wait_for_line(broker, needle):
    """The first log line holding `needle`, once the broker's stderr
    reader has it (the answer can arrive before the line is read)."""
    def logged():
        found = [line for line in broker.log_lines() if needle in line]
        if not found:
            raise NotYet(f"no {needle!r} in the log yet")
        return found[0]

    return wait_until(f"the log line {needle!r}", logged, LOG_TIMEOUT_S)


def high_watermark(node, topic):
    error, hw = fetch(node, topic, 0)
    assert error == NONE
    return hw


def test_kept_free_space_refuses_writes_before_the_disk_is_full(broker_factory, small_fs):
    ballast = place_ballast(small_fs)
    broker = broker_factory(settings=["log.segment.bytes=1048576", f"sluice.log.dir.min.free.bytes={8 << 20}"],
                            data_dir=os.path.join(small_fs, "data"))
    node = Node(broker)
    acknowledged, error = fill_until_refused(node, "full")
    assert error == KAFKA_STORAGE_ERROR
    assert acknowledged, "some batches fit first"
    free = shutil.disk_usage(small_fs).free
    assert free > 1 << 20, f"refused with {free} bytes still free, not at ENOSPC"
    wait_for_line(broker, "log directory nearly full")
    # Everything acknowledged reads back; the broker serves other requests.
    assert high_watermark(node, "full") == acknowledged[-1] + RECORDS_PER_BATCH
    batch = [RECORD] * RECORDS_PER_BATCH  # what needs the refused roll
    assert produce(node, "full", 0, batch, acks=-1)[0] == KAFKA_STORAGE_ERROR, "still refused"
    os.unlink(ballast)
    error, offset = produce(node, "full", 0, batch, acks=-1)
    assert (error, offset) == (NONE, acknowledged[-1] + RECORDS_PER_BATCH), "writes resume once space is freed"
    wait_for_line(broker, "appends resume")
    lines = "".join(broker.log_lines())
    assert lines.count("log directory nearly full") == 1, "one loud line per episode"


def test_enospc_takes_its_log_dir_offline_the_other_serves_and_a_restart_recovers_it(broker_factory, small_fs):
    ballast = place_ballast(small_fs)
    work = tempfile.mkdtemp(prefix="sluice-dirs-")
    try:
        healthy_dir, full_dir = os.path.join(work, "a"), os.path.join(small_fs, "b")
        settings = ["log.segment.bytes=4194304", "sluice.log.dir.min.free.bytes=0",
                    f"log.dirs={healthy_dir},{full_dir}"]
        broker = broker_factory(settings=settings, data_dir=healthy_dir)
        node = Node(broker)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("spread", 8, 1)])["spread"].result(30)

        def placed(topic, partitions, root):
            return [p for p in range(partitions) if os.path.isdir(os.path.join(root, f"{topic}-{p}"))]

        on_full, on_healthy = placed("spread", 8, full_dir), placed("spread", 8, healthy_dir)
        assert sorted(on_full + on_healthy) == list(range(8)), (on_full, on_healthy)
        assert len(on_full) >= 2 and on_healthy, (on_full, on_healthy)
        filled, sibling, elsewhere = on_full[0], on_full[1], on_healthy[0]
        assert produce(node, "spread", sibling, [RECORD], acks=-1)[0] == NONE
        acknowledged = []
        for _ in range(BATCHES_MAX):
            error, offset = produce(node, "spread", filled, [RECORD] * RECORDS_PER_BATCH, acks=-1)
            if error != NONE:
                break
            acknowledged.append(offset)
        else:
            pytest.fail(f"{BATCHES_MAX} batches fit in {FS_BYTES} bytes")
        assert error == KAFKA_STORAGE_ERROR and acknowledged
        line = wait_for_line(broker, "log poisoned")
        assert "No space left on device" in line, line
        wait_for_line(broker, "log directory offline")
        # The whole directory is offline: its other partition too, for
        # writes and reads.
        assert produce(node, "spread", sibling, [RECORD], acks=-1)[0] == KAFKA_STORAGE_ERROR
        assert fetch(node, "spread", sibling)[0] == KAFKA_STORAGE_ERROR
        assert fetch(node, "spread", filled)[0] == KAFKA_STORAGE_ERROR
        # The other directory serves, and new partitions go there.
        assert produce(node, "spread", elsewhere, [RECORD], acks=-1)[0] == NONE
        admin.create_topics([NewTopic("after", 4, 1)])["after"].result(30)
        assert placed("after", 4, healthy_dir) == [0, 1, 2, 3]
        assert placed("after", 4, full_dir) == []
        for p in range(4):
            assert produce(node, "after", p, [RECORD], acks=-1)[0] == NONE
        # Space freed, restart: every acknowledged record, and writes resume.
        os.unlink(ballast)
        broker.stop()
        broker.start(keep_port=True)
        end = acknowledged[-1] + RECORDS_PER_BATCH
        error, hw = fetch(node, "spread", filled)
        assert error == NONE and hw >= end, (error, hw, end)
        assert fetch(node, "spread", sibling) == (NONE, 1)
        error, offset = produce(node, "spread", filled, [RECORD], acks=-1)
        assert error == NONE and offset >= end, "writes resume after the restart"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_enospc_in_the_only_log_dir_halts_the_broker_and_a_restart_recovers(broker_factory, small_fs):
    ballast = place_ballast(small_fs)
    broker = broker_factory(settings=["log.segment.bytes=1048576", "sluice.log.dir.min.free.bytes=0"],
                            data_dir=os.path.join(small_fs, "data"))
    node = Node(broker)
    create(broker, "only")
    acknowledged = []
    for _ in range(BATCHES_MAX):
        try:
            error, offset = produce(node, "only", 0, [RECORD] * RECORDS_PER_BATCH, acks=-1)
        except OSError:
            break  # the broker halted before answering
        if error != NONE:
            assert error == KAFKA_STORAGE_ERROR
            break
        acknowledged.append(offset)
    else:
        pytest.fail(f"{BATCHES_MAX} batches fit in {FS_BYTES} bytes")
    assert acknowledged, "some batches fit first"
    assert broker.proc.wait(LOG_TIMEOUT_S) == 1, "halted with exit status 1"
    wait_for_line(broker, "all log directories are offline: halting the broker")
    os.unlink(ballast)
    broker.start(keep_port=True)
    end = acknowledged[-1] + RECORDS_PER_BATCH
    error, hw = fetch(node, "only", 0)
    assert error == NONE and hw >= end, (error, hw, end)
    error, offset = produce(node, "only", 0, [RECORD], acks=-1)
    assert error == NONE and offset >= end, "writes resume after the restart"


def test_a_failed_log_dir_in_a_cluster_moves_its_leaderships_to_the_other_replicas(small_fs, request):
    place_ballast(small_fs)
    cluster = Cluster(settings=["group.initial.rebalance.delay.ms=0", "log.segment.bytes=1048576",
                                "sluice.log.dir.min.free.bytes=0"])
    request.addfinalizer(cluster.close)
    victim = cluster.nodes[1]
    healthy_dir, full_dir = victim.data_dir, os.path.join(small_fs, "b")
    victim.settings.append(f"log.dirs={healthy_dir},{full_dir}")
    cluster.start()
    topic = "moves"
    # Broker 1 leads every partition; its directories get some each.
    created(cluster.nodes[2], topic, assignment={p: [1, 2, 3] for p in range(6)})
    before = wait_topic(cluster, topic, 6)
    assert all(p.leader == 1 for p in before.values()), before

    def placed(root):
        return [p for p in range(6) if os.path.isdir(os.path.join(root, f"{topic}-{p}"))]

    on_full, on_healthy = placed(full_dir), placed(healthy_dir)
    assert on_full and on_healthy, (on_full, on_healthy)
    filled, kept = on_full[0], on_healthy[0]
    batch = [RECORD] * 64
    acknowledged = []
    for _ in range(BATCHES_MAX):
        error, offset = produce(victim, topic, filled, batch, acks=-1)
        if error != NONE:
            break
        acknowledged.append(offset)
    else:
        pytest.fail(f"{BATCHES_MAX} batches fit in {FS_BYTES} bytes")
    assert error == KAFKA_STORAGE_ERROR and acknowledged, (error, len(acknowledged))

    def moved():
        for node in cluster.nodes.values():
            partitions = metadata(node).topics[topic].partitions
            for index in on_full:
                p = partitions[index]
                if p.leader in (-1, 1) or 1 in p.isr:
                    raise NotYet(f"node {node.node_id}: partition {index} is {p}")
        return partitions

    after = wait_until("leadership moved off the failed directory", moved, FENCE_TIMEOUT_S * 3, cluster)
    assert after[kept].leader == 1 and 1 in after[kept].isr, after[kept]
    assert produce(victim, topic, filled, [RECORD], acks=-1)[0] == KAFKA_STORAGE_ERROR, "its replica is offline"
    new_leader = cluster.nodes[after[filled].leader]
    end = acknowledged[-1] + len(batch)
    error, offset = produce(new_leader, topic, filled, [b"after"], acks=-1)
    assert error == NONE and offset >= end, (error, offset, end)
    values = read_partition(new_leader, topic, filled, end)
    assert len(values) == end and all(v == RECORD for v in values), "every acknowledged record"
    assert produce(victim, topic, kept, [RECORD], acks=-1) == (NONE, 0), "the healthy directory serves"
