"""Log compaction as a Kafka user sees it: a compacted topic written by
confluent-kafka (librdkafka) with repeated keys and tombstones is cleaned
by the broker's cleaner, and reading it back gives each key's latest value
at the offset it was written at, and nothing for deleted keys."""
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

KEYS = 20
ROUNDS = 5
DELETED = range(0, 5)
DEADLINE_S = 90


def read_all(bootstrap, topic):
    """Every record of partition 0 from the log start to its end: (offset, key, value)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{time.monotonic_ns()}",
                         "enable.auto.commit": False})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, low)])
        records = []
        while high > low and (not records or records[-1][0] < high - 1):
            message = consumer.poll(5)
            if message is None:
                break
            assert message.error() is None, message.error()
            records.append((message.offset(), message.key(), message.value()))
        return records
    finally:
        consumer.close()


def test_compacted_topic_keeps_the_latest_value_per_key_at_its_offset(broker_factory):
    broker = broker_factory(settings=["log.cleaner.backoff.ms=100"])
    topic = "compacted-by-the-cleaner"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config={
        "cleanup.policy": "compact",
        "segment.ms": "100",
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "0",
    })])[topic].result(30)

    written = {}

    def delivered(error, message):
        assert error is None, error
        written[message.key()] = (message.offset(), message.value())

    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for round_ in range(ROUNDS):
        for k in range(KEYS):
            producer.produce(topic, key=f"k{k}".encode(), value=f"k{k}-{round_}".encode(), on_delivery=delivered)
        producer.flush(30)
    for k in DELETED:
        producer.produce(topic, key=f"k{k}".encode(), value=None, on_delivery=delivered)
    producer.flush(30)
    expected = {key: offset_value for key, offset_value in written.items()
                if offset_value[1] is not None}
    assert len(expected) == KEYS - len(DELETED)

    # The active segment is never cleaned: keep appending a marker so that
    # segments roll (segment.ms) and everything before the marker becomes
    # cleanable, until the cleaner has done its work.
    deadline = time.monotonic() + DEADLINE_S
    marker = 0
    while True:
        producer.produce(topic, key=b"marker", value=str(marker).encode())
        producer.flush(30)
        marker += 1
        records = [r for r in read_all(broker.bootstrap, topic) if r[1] != b"marker"]
        keys = [r[1] for r in records]
        if len(keys) == len(set(keys)) and {r[1]: (r[0], r[2]) for r in records} == expected:
            break
        assert time.monotonic() < deadline, f"not compacted: {len(records)} records left: {records[:30]}"
        time.sleep(0.2)
    offsets = [r[0] for r in records]
    assert offsets == sorted(offsets)


def test_a_record_without_a_key_is_refused_by_a_compacted_topic(broker):
    topic = "compacted-needs-keys"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1, config={"cleanup.policy": "compact"})])[topic].result(30)
    errors = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "retries": 0})
    # Separate batches: Kafka refuses a whole batch holding a keyless record.
    producer.produce(topic, value=b"no key", on_delivery=lambda error, message: errors.append(error))
    producer.flush(30)
    producer.produce(topic, key=b"k", value=b"keyed", on_delivery=lambda error, message: errors.append(error))
    producer.flush(30)
    assert errors[0] is not None and errors[0].name() == "INVALID_RECORD", errors
    assert errors[1] is None, errors

