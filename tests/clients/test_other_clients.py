"""kafka-python 3 and kcat (librdkafka 2.0.2, Debian) against the broker,
and raw-socket abuse that must not hurt other clients."""
import shutil
import socket
import struct
import subprocess

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

TIMEOUT_S = 30


def test_kafka_python_produce_and_consume(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("kp", 1, 1)])
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    for i in range(50):
        producer.send("kp", key=f"k{i}".encode(), value=f"v{i}".encode(), partition=0)
    producer.flush(TIMEOUT_S)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                             consumer_timeout_ms=5000, auto_offset_reset="earliest")
    consumer.assign([TopicPartition("kp", 0)])
    consumer.seek_to_beginning()
    got = [m for _, m in zip(range(50), consumer)]
    consumer.close()
    assert [m.value for m in got] == [f"v{i}".encode() for i in range(50)]
    assert [m.offset for m in got] == list(range(50))


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat not installed (scripts/setup-test-env.sh)")
def test_kcat_produce_consume_and_metadata(broker):
    lines = "\n".join(f"k{i}:v{i}" for i in range(100)) + "\n"
    subprocess.run(["kcat", "-b", broker.bootstrap, "-t", "kc", "-K:", "-P", "-z", "snappy"],
                   input=lines, text=True, check=True, timeout=TIMEOUT_S)
    out = subprocess.run(["kcat", "-b", broker.bootstrap, "-t", "kc", "-C", "-e", "-f", "%k=%s@%o\n"],
                         capture_output=True, text=True, check=True, timeout=TIMEOUT_S).stdout
    got = out.strip().splitlines()
    assert len(got) == 100
    # Three partitions: offsets are per partition, the key/value pairs are exact.
    assert sorted(line.split("@")[0] for line in got) == sorted(f"k{i}=v{i}" for i in range(100))
    md = subprocess.run(["kcat", "-b", broker.bootstrap, "-L"], capture_output=True, text=True,
                        check=True, timeout=TIMEOUT_S).stdout
    assert 'topic "kc"' in md


def test_garbage_and_oversize_frames_do_not_hurt_other_clients(broker):
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    producer.send("abuse", b"before").get(TIMEOUT_S)
    for payload in [struct.pack(">i", 2**31 - 1), struct.pack(">i", 8) + b"\xff" * 8, b"\x00\x00"]:
        with socket.create_connection(("127.0.0.1", broker.port)) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(TIMEOUT_S)
            assert s.recv(1024) == b""  # closed, nothing answered
    producer.send("abuse", b"after").get(TIMEOUT_S)
    producer.close()
