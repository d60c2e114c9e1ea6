"""Consumer groups with real clients (confluent-kafka / librdkafka 2.16 and
kafka-python 3) against the real broker: assignment, rebalances on leave
and on a killed member, committed offsets, persistence across SIGKILL,
DescribeGroups / ListGroups, lag."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from test_confluent import TIMEOUT_S, create, produce_all

# Fast rounds for tests: no initial join delay, short sessions allowed.
SETTINGS = ["num.partitions=3", "group.initial.rebalance.delay.ms=0",
            "group.min.session.timeout.ms=1000"]


@pytest.fixture
def gbroker(broker_factory):
    return broker_factory(settings=SETTINGS)


def consumer(broker, group, **conf):
    return Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                     "auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "session.timeout.ms": 6000, "heartbeat.interval.ms": 300, **conf})


def produce_values(broker, topic, values, partition=None):
    produce_all(broker, topic, [(None, v.encode(), None, partition) for v in values])


def assignment(c):
    return {(tp.topic, tp.partition) for tp in c.assignment()}


def poll_until(consumers, condition, what):
    """Polls every consumer (that is how librdkafka serves its rebalance
    callbacks) until `condition()` holds; the deadline only guards hangs."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        for c in consumers:
            m = c.poll(0.05)
            assert m is None or m.error() is None or m.error().code() < 0, m.error()
        if condition():
            return
    pytest.fail(f"timed out waiting for {what}")


def covers_disjointly(consumers, partitions):
    parts = [assignment(c) for c in consumers]
    union = set().union(*parts)
    return (all(parts) and sum(len(p) for p in parts) == len(union)
            and union == partitions)


def test_three_consumers_share_six_partitions_disjointly(gbroker):
    create(gbroker, "g6", 6)
    members = [consumer(gbroker, "share") for _ in range(3)]
    for c in members:
        c.subscribe(["g6"])
    all6 = {("g6", p) for p in range(6)}
    poll_until(members, lambda: covers_disjointly(members, all6), "3-way assignment")
    assert sorted(len(assignment(c)) for c in members) == [2, 2, 2]
    for c in members:
        c.close()


KILLABLE = r"""
import sys
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
              "auto.offset.reset": "earliest", "enable.auto.commit": False,
              "session.timeout.ms": 2000, "heartbeat.interval.ms": 300})
def on_assign(consumer, partitions):
    if partitions:
        print("assigned", len(partitions), flush=True)
c.subscribe([sys.argv[3]], on_assign=on_assign)
while True:
    c.poll(0.1)
"""


def test_leave_and_killed_member_hand_over_all_partitions(gbroker):
    create(gbroker, "handover", 6)
    staying = consumer(gbroker, "handover-g", **{"session.timeout.ms": 2000})
    leaving = consumer(gbroker, "handover-g", **{"session.timeout.ms": 2000})
    killed = subprocess.Popen([sys.executable, "-c", KILLABLE, gbroker.bootstrap,
                               "handover-g", "handover"],
                              stdout=subprocess.PIPE, text=True)
    try:
        staying.subscribe(["handover"])
        leaving.subscribe(["handover"])
        # Read the child's "assigned" line on a thread: the consumers here
        # must keep polling meanwhile, or their eager revocation (served in
        # poll) would hold the rebalance up.
        child_assigned = threading.Event()
        threading.Thread(target=lambda: killed.stdout.readline().startswith("assigned")
                         and child_assigned.set(), daemon=True).start()
        all6 = {("handover", p) for p in range(6)}
        poll_until([staying, leaving],
                   lambda: child_assigned.is_set() and assignment(staying)
                   and assignment(leaving)
                   and len(assignment(staying) | assignment(leaving)) < 6
                   and not (assignment(staying) & assignment(leaving)),
                   "three members sharing")
        leaving.close()  # LeaveGroup
        os.kill(killed.pid, signal.SIGKILL)  # no LeaveGroup: session timeout
        killed.wait()
        poll_until([staying], lambda: assignment(staying) == all6,
                   "the last member owning all partitions")
        admin = AdminClient({"bootstrap.servers": gbroker.bootstrap})
        desc = admin.describe_consumer_groups(["handover-g"])["handover-g"].result(TIMEOUT_S)
        assert len(desc.members) == 1
    finally:
        if killed.poll() is None:
            killed.kill()
            killed.wait()
        staying.close()


def consume_values(c, n):
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got.append(m)
    return got


def test_committed_offsets_resume_exactly(gbroker):
    create(gbroker, "resume", 1)
    values = [f"v{i}" for i in range(100)]
    produce_values(gbroker, "resume", values)
    first = consumer(gbroker, "resume-g")
    first.subscribe(["resume"])
    got = consume_values(first, 40)
    assert [m.value().decode() for m in got] == values[:40]
    first.commit(message=got[-1], asynchronous=False)
    first.close()
    second = consumer(gbroker, "resume-g")
    second.subscribe(["resume"])
    rest = consume_values(second, 60)
    assert [m.value().decode() for m in rest] == values[40:], "no redelivery, nothing skipped"
    assert second.poll(1.0) is None
    second.close()


def test_two_groups_each_receive_every_record(gbroker):
    create(gbroker, "fanout", 3)
    values = {f"r{i}" for i in range(60)}
    produce_values(gbroker, "fanout", sorted(values))
    for group in ("fan-a", "fan-b"):
        c = consumer(gbroker, group)
        c.subscribe(["fanout"])
        got = consume_values(c, len(values))
        assert {m.value().decode() for m in got} == values
        c.close()


def test_cooperative_sticky_rebalance(gbroker):
    create(gbroker, "coop", 4)
    conf = {"partition.assignment.strategy": "cooperative-sticky"}
    first = consumer(gbroker, "coop-g", **conf)
    first.subscribe(["coop"])
    all4 = {("coop", p) for p in range(4)}
    poll_until([first], lambda: assignment(first) == all4, "first member owning all")
    second = consumer(gbroker, "coop-g", **conf)
    second.subscribe(["coop"])
    poll_until([first, second], lambda: covers_disjointly([first, second], all4)
               and len(assignment(first)) == 2, "incremental hand-over of two partitions")
    admin = AdminClient({"bootstrap.servers": gbroker.bootstrap})
    desc = admin.describe_consumer_groups(["coop-g"])["coop-g"].result(TIMEOUT_S)
    assert desc.partition_assignor == "cooperative-sticky"
    first.close()
    second.close()


def test_kafka_python_group_consumer(gbroker):
    from kafka import KafkaConsumer
    create(gbroker, "kp-group", 2)
    values = {f"k{i}" for i in range(30)}
    produce_values(gbroker, "kp-group", sorted(values))
    c = KafkaConsumer("kp-group", bootstrap_servers=gbroker.bootstrap, group_id="kp-g",
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      consumer_timeout_ms=TIMEOUT_S * 1000)
    got = set()
    for m in c:
        got.add(m.value.decode())
        if len(got) == len(values):
            break
    assert got == values
    c.commit()
    committed = {p: c.committed(p) for p in c.assignment()}
    assert sum(committed.values()) == len(values)
    c.close()


def test_commits_survive_sigkill_and_restart(broker_factory, tmp_path):
    broker = broker_factory(settings=SETTINGS, data_dir=str(tmp_path))
    create(broker, "durable", 1)
    produce_values(broker, "durable", [f"d{i}" for i in range(20)])
    c = consumer(broker, "durable-g")
    c.subscribe(["durable"])
    got = consume_values(c, 12)
    c.commit(message=got[-1], asynchronous=False)
    c.close()
    broker.kill()
    broker.start()
    c = consumer(broker, "durable-g")
    committed = c.committed([TopicPartition("durable", 0)], timeout=TIMEOUT_S)
    assert committed[0].offset == 12
    c.subscribe(["durable"])
    rest = consume_values(c, 8)
    assert [m.value().decode() for m in rest] == [f"d{i}" for i in range(12, 20)]
    c.close()


def test_describe_list_and_lag(gbroker):
    create(gbroker, "lag", 2)
    produce_values(gbroker, "lag", [f"a{i}" for i in range(10)], partition=0)
    produce_values(gbroker, "lag", [f"b{i}" for i in range(4)], partition=1)
    c = consumer(gbroker, "lag-g", **{"client.id": "lag-client"})
    c.subscribe(["lag"])
    poll_until([c], lambda: len(assignment(c)) == 2, "assignment")
    c.commit(offsets=[TopicPartition("lag", 0, 7), TopicPartition("lag", 1, 1)],
             asynchronous=False)
    admin = AdminClient({"bootstrap.servers": gbroker.bootstrap})
    listed = admin.list_consumer_groups().result(TIMEOUT_S)
    states = {g.group_id: str(g.state) for g in listed.valid}
    assert "lag-g" in states and "STABLE" in states["lag-g"]
    desc = admin.describe_consumer_groups(["lag-g"])["lag-g"].result(TIMEOUT_S)
    assert "STABLE" in str(desc.state)
    assert [m.client_id for m in desc.members] == ["lag-client"]
    assigned = {(tp.topic, tp.partition) for tp in desc.members[0].assignment.topic_partitions}
    assert assigned == {("lag", 0), ("lag", 1)}
    offsets = admin.list_consumer_group_offsets(
        [ConsumerGroupTopicPartitions("lag-g")])["lag-g"].result(TIMEOUT_S)
    committed = {tp.partition: tp.offset for tp in offsets.topic_partitions}
    assert committed == {0: 7, 1: 1}
    lag = {}
    for p in (0, 1):
        _, high = c.get_watermark_offsets(TopicPartition("lag", p), timeout=TIMEOUT_S)
        lag[p] = high - committed[p]
    assert lag == {0: 3, 1: 3}
    c.close()
    # The last member left: the group is empty, its offsets kept.
    listed = admin.list_consumer_groups().result(TIMEOUT_S)
    assert "EMPTY" in {g.group_id: str(g.state) for g in listed.valid}["lag-g"]
    deleted = admin.delete_consumer_groups(["lag-g"])["lag-g"]
    deleted.result(TIMEOUT_S)
    listed = admin.list_consumer_groups().result(TIMEOUT_S)
    assert "lag-g" not in {g.group_id for g in listed.valid}
