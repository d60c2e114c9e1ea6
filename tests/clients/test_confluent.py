"""confluent-kafka (librdkafka 2.16) against the real broker."""
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT_S = 30


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create(broker, name, partitions=1, config=None):
    client = admin(broker)  # must outlive its futures
    futures = client.create_topics([NewTopic(name, partitions, 1, config=config or {})])
    futures[name].result(TIMEOUT_S)


def produce_all(broker, topic, messages, **conf):
    """Produces (key, value, headers, partition) tuples; returns delivery reports."""
    reports = []
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, **conf})
    for key, value, headers, partition in messages:
        kwargs = {"key": key, "value": value, "headers": headers,
                  "on_delivery": lambda err, msg: reports.append((err, msg))}
        if partition is not None:
            kwargs["partition"] = partition
        p.produce(topic, **kwargs)
    assert p.flush(TIMEOUT_S) == 0
    return reports


def consume_n(broker, topic, n, partitions=(0,), start=0):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, start) for p in partitions])
    got = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        assert m.error() is None, m.error()
        got.append(m)
    c.close()
    return got


def test_create_list_describe_delete(broker):
    a = admin(broker)
    create(broker, "adm", 4)
    md = a.list_topics(timeout=TIMEOUT_S)
    assert len(md.topics["adm"].partitions) == 4
    with pytest.raises(KafkaException) as e:
        a.create_topics([NewTopic("adm", 1, 1)])["adm"].result(TIMEOUT_S)
    assert e.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
    a.delete_topics(["adm"])["adm"].result(TIMEOUT_S)
    assert "adm" not in a.list_topics(timeout=TIMEOUT_S).topics


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_acks_round_trip(broker, acks):
    topic = f"acks-{acks}"
    create(broker, topic)
    msgs = [(None, f"v{i}".encode(), None, 0) for i in range(100)]
    reports = produce_all(broker, topic, msgs, acks=acks)
    assert all(err is None for err, _ in reports)
    got = consume_n(broker, topic, 100)
    assert [m.value() for m in got] == [v for _, v, _, _ in msgs]
    if acks != "0":
        assert [m.offset() for _, m in reports] == list(range(100))


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_round_trip(broker, codec):
    topic = f"comp-{codec}"
    create(broker, topic)
    msgs = [(f"k{i}".encode(), (f"value-{i}-" * 20).encode(), None, 0) for i in range(500)]
    produce_all(broker, topic, msgs, **{"compression.type": codec})
    got = consume_n(broker, topic, 500)
    assert [(m.key(), m.value()) for m in got] == [(k, v) for k, v, _, _ in msgs]


def test_headers_null_keys_values_and_timestamps(broker):
    create(broker, "shape")
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce("shape", value=None, key=None, partition=0)
    p.produce("shape", value=b"v", key=None, headers=[("h1", b"x"), ("h2", None)], partition=0,
              timestamp=1_600_000_000_123)
    assert p.flush(TIMEOUT_S) == 0
    got = consume_n(broker, "shape", 2)
    assert got[0].value() is None and got[0].key() is None
    assert got[1].headers() == [("h1", b"x"), ("h2", None)]
    assert got[1].timestamp()[1] == 1_600_000_000_123


def test_same_key_same_partition(broker):
    create(broker, "keys", 3)
    reports = produce_all(broker, "keys", [(b"user-7", f"{i}".encode(), None, None) for i in range(30)])
    assert len({m.partition() for _, m in reports}) == 1


def test_one_megabyte_message_and_over_limit_error(broker):
    create(broker, "big")
    big = b"x" * 1_000_000
    reports = produce_all(broker, "big", [(None, big, None, 0)], **{"message.max.bytes": 10_000_000})
    assert reports[0][0] is None
    got = consume_n(broker, "big", 1)
    assert got[0].value() == big
    # Over the broker's message.max.bytes (2,000,000): an error, not a hang.
    reports = produce_all(broker, "big", [(None, b"y" * 3_000_000, None, 0)],
                          **{"message.max.bytes": 10_000_000, "retries": 0})
    assert reports[0][0] is not None
    assert reports[0][0].code() == KafkaError.MSG_SIZE_TOO_LARGE


def test_list_offsets_and_offsets_for_times(broker):
    create(broker, "times")
    p = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        p.produce("times", value=b"t", partition=0, timestamp=1_000_000 + i * 1000)
        p.flush(TIMEOUT_S)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused"})
    low, high = c.get_watermark_offsets(TopicPartition("times", 0), timeout=TIMEOUT_S)
    assert (low, high) == (0, 10)
    found = c.offsets_for_times([TopicPartition("times", 0, 1_004_500)], timeout=TIMEOUT_S)
    assert found[0].offset == 5
    c.close()


def test_seek_and_replay(broker):
    create(broker, "replay")
    produce_all(broker, "replay", [(None, f"{i}".encode(), None, 0) for i in range(20)])
    got = consume_n(broker, "replay", 10, start=10)
    assert [m.offset() for m in got] == list(range(10, 20))
    again = consume_n(broker, "replay", 20, start=0)
    assert [m.value() for m in again] == [f"{i}".encode() for i in range(20)]


def test_waiting_consumer_wakes_on_new_message(broker):
    create(broker, "wake")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "unused",
                  "fetch.wait.max.ms": 10_000})
    c.assign([TopicPartition("wake", 0, 0)])
    assert c.poll(1.0) is None
    produce_all(broker, "wake", [(None, b"now", None, 0)])
    m = None
    deadline = time.monotonic() + TIMEOUT_S
    while m is None and time.monotonic() < deadline:
        m = c.poll(0.5)
    assert m is not None and m.value() == b"now"
    c.close()


def test_idempotent_keyed_messages_exactly_once_in_key_order(broker):
    create(broker, "idem", 3)
    n = 20_000
    msgs = [(f"key-{i % 50}".encode(), f"{i}".encode(), None, None) for i in range(n)]
    reports = produce_all(broker, "idem", msgs, **{"enable.idempotence": True, "acks": "all"})
    assert all(err is None for err, _ in reports)
    got = consume_n(broker, "idem", n, partitions=(0, 1, 2))
    assert len(got) == n
    seen = {}
    for m in got:
        seen.setdefault(m.key(), []).append(int(m.value()))
    assert sum(len(v) for v in seen.values()) == n
    assert len({int(m.value()) for m in got}) == n, "no duplicates"
    for key, values in seen.items():
        assert values == sorted(values), f"order broken for {key}"


def test_sigkill_and_restart_keep_acknowledged_records(broker_factory, tmp_path):
    b = broker_factory(data_dir=str(tmp_path))
    create(b, "durable")
    reports = produce_all(b, "durable", [(None, f"{i}".encode(), None, 0) for i in range(1000)], acks="all")
    acked = {m.offset(): m.value() for err, m in reports if err is None}
    assert len(acked) == 1000
    b.kill()
    b2 = broker_factory(data_dir=str(tmp_path))
    got = consume_n(b2, "durable", 1000)
    assert {m.offset(): m.value() for m in got} == acked


def test_create_partitions_describe_and_alter_configs_describe_cluster(broker):
    from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource,
                                       NewPartitions, ResourceType)
    a = admin(broker)
    create(broker, "cfg", 1, config={"segment.bytes": "1048576"})
    a.create_partitions([NewPartitions("cfg", 3)])["cfg"].result(TIMEOUT_S)
    assert len(a.list_topics(timeout=TIMEOUT_S).topics["cfg"].partitions) == 3
    with pytest.raises(KafkaException) as e:
        a.create_partitions([NewPartitions("cfg", 2)])["cfg"].result(TIMEOUT_S)
    assert e.value.args[0].code() == KafkaError.INVALID_PARTITIONS

    resource = ConfigResource(ResourceType.TOPIC, "cfg")
    configs = a.describe_configs([resource])[resource].result(TIMEOUT_S)
    assert configs["segment.bytes"].value == "1048576"
    assert configs["retention.ms"].value == "604800000"
    change = ConfigResource(ResourceType.TOPIC, "cfg", incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([change])[change].result(TIMEOUT_S)
    configs = a.describe_configs([resource])[resource].result(TIMEOUT_S)
    assert configs["retention.ms"].value == "1000"
    bad = ConfigResource(ResourceType.TOPIC, "cfg", incremental_configs=[
        ConfigEntry("segment.bytes", "tiny", incremental_operation=AlterConfigOpType.SET)])
    with pytest.raises(KafkaException) as e:
        a.incremental_alter_configs([bad])[bad].result(TIMEOUT_S)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG

    broker_resource = ConfigResource(ResourceType.BROKER, "0")
    broker_configs = a.describe_configs([broker_resource])[broker_resource].result(TIMEOUT_S)
    assert broker_configs["num.partitions"].value == "3"
    cluster = a.describe_cluster().result(TIMEOUT_S)
    assert len(cluster.nodes) == 1 and cluster.controller.id == 0
