"""A data dir from before the controller quorum: its topics listed in
`__sluice_metadata/topics` and its partition directories become topics of
the metadata log on first start, with their configs and their records; the
file is kept as `topics.migrated` and not migrated twice."""
import os
import shutil
import tempfile

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

TIMEOUT_S = 30


def consume_all(bootstrap, topic, partition, count):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "migration-check", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, partition, 0)])
        values = []
        while len(values) < count:
            m = c.poll(TIMEOUT_S)
            assert m is not None, f"only {values} of {count} records"
            assert m.error() is None, m.error()
            values.append(m.value())
        return values
    finally:
        c.close()


def test_a_pre_controller_data_dir_is_migrated_with_its_records(broker_factory):
    with tempfile.TemporaryDirectory() as data_dir:
        # Records in partition directories, as the single-node broker left them.
        broker = broker_factory(data_dir=data_dir)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic("old", 2, 1)])["old"].result(TIMEOUT_S)
        p = Producer({"bootstrap.servers": broker.bootstrap})
        for value in (b"a", b"b", b"c"):
            p.produce("old", value=value, partition=1)
        assert p.flush(TIMEOUT_S) == 0
        assert broker.stop() == 0
        # Back to the old layout: no metadata log, the registry file instead.
        shutil.rmtree(os.path.join(data_dir, "__cluster_metadata-0"))
        os.makedirs(os.path.join(data_dir, "__sluice_metadata"), exist_ok=True)
        registry = os.path.join(data_dir, "__sluice_metadata", "topics")
        with open(registry, "w") as f:
            f.write("old\t2\tretention.ms=123456\n")

        broker = broker_factory(data_dir=data_dir)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        topic = admin.list_topics(timeout=TIMEOUT_S).topics["old"]
        assert sorted(topic.partitions) == [0, 1]
        resource = ConfigResource(ResourceType.TOPIC, "old")
        configs = admin.describe_configs([resource])[resource].result(TIMEOUT_S)
        assert configs["retention.ms"].value == "123456"
        assert consume_all(broker.bootstrap, "old", 1, 3) == [b"a", b"b", b"c"]
        assert not os.path.exists(registry)
        assert os.path.exists(registry + ".migrated")
        assert broker.stop() == 0

        # Once migrated, a restart reads the metadata log only.
        broker = broker_factory(data_dir=data_dir)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        assert sorted(admin.list_topics(timeout=TIMEOUT_S).topics["old"].partitions) == [0, 1]
        assert consume_all(broker.bootstrap, "old", 1, 3) == [b"a", b"b", b"c"]
