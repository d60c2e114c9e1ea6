"""confluent-kafka's AdminClient (librdkafka 2.16) against the real broker:
DeleteRecords, ElectLeaders, deleted topics' committed offsets, and a
transactional producer refused at once."""
import pytest
from confluent_kafka import (Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition, ElectionType)
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT_S = 30


def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create(client, name, partitions=1, config=None):
    futures = client.create_topics([NewTopic(name, partitions, 1, config=config or {})])
    futures[name].result(TIMEOUT_S)


def produce(broker, topic, count, partition=0):
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
    for i in range(count):
        p.produce(topic, value=b"v%d" % i, partition=partition)
        p.flush(TIMEOUT_S)  # one batch per record
    assert p.flush(TIMEOUT_S) == 0


def watermarks(broker, topic, partition=0):
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "wm"})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=TIMEOUT_S)
    finally:
        c.close()


def test_delete_records_moves_the_low_watermark(broker):
    client = admin(broker)
    create(client, "dr")
    produce(broker, "dr", 10)
    futures = client.delete_records([TopicPartition("dr", 0, 4)])
    deleted = futures[TopicPartition("dr", 0)].result(TIMEOUT_S)
    assert deleted.low_watermark == 4  # the new low watermark
    assert watermarks(broker, "dr") == (4, 10)
    # -1 (OFFSET_END): up to the high watermark.
    futures = client.delete_records([TopicPartition("dr", 0, -1)])
    assert futures[TopicPartition("dr", 0)].result(TIMEOUT_S).low_watermark == 10
    assert watermarks(broker, "dr") == (10, 10)


def test_delete_records_above_the_high_watermark_is_out_of_range(broker):
    client = admin(broker)
    create(client, "dr-oor")
    produce(broker, "dr-oor", 2)
    futures = client.delete_records([TopicPartition("dr-oor", 0, 50)])
    with pytest.raises(KafkaException) as raised:
        futures[TopicPartition("dr-oor", 0)].result(TIMEOUT_S)
    assert raised.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE
    assert watermarks(broker, "dr-oor") == (0, 2)


def test_elect_leaders_is_not_needed_on_a_single_node(broker):
    client = admin(broker)
    create(client, "el", partitions=2)
    future = client.elect_leaders(ElectionType.PREFERRED,
                                  [TopicPartition("el", 0), TopicPartition("el", 1)])
    results = future.result(TIMEOUT_S)
    assert set(results) == {TopicPartition("el", 0), TopicPartition("el", 1)}
    for error in results.values():
        assert error is not None and error.code() == KafkaError.ELECTION_NOT_NEEDED


def test_deleting_a_topic_removes_its_committed_offsets(broker):
    client = admin(broker)
    create(client, "gone", partitions=2)
    create(client, "kept")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "watcher",
                  "enable.auto.commit": False})
    c.commit(offsets=[TopicPartition("gone", 0, 3), TopicPartition("gone", 1, 4),
                      TopicPartition("kept", 0, 5)], asynchronous=False)
    c.close()
    client.delete_topics(["gone"])["gone"].result(TIMEOUT_S)
    from confluent_kafka import ConsumerGroupTopicPartitions
    request = [ConsumerGroupTopicPartitions("watcher")]
    listed = client.list_consumer_group_offsets(request)["watcher"].result(TIMEOUT_S)
    assert [(tp.topic, tp.partition, tp.offset) for tp in listed.topic_partitions] == [("kept", 0, 5)]
    groups = client.list_consumer_groups().result(TIMEOUT_S)
    assert "watcher" in [g.group_id for g in groups.valid]


def test_a_transactional_producer_fails_at_init_instead_of_waiting(broker):
    p = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "tx-1"})
    with pytest.raises(KafkaException) as raised:
        p.init_transactions(TIMEOUT_S)
    error = raised.value.args[0]
    # A refusal, not the end of the wait: librdkafka gave up on its own.
    assert error.code() != KafkaError._TIMED_OUT, error
    assert error.code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, error
