"""ACLs as Kafka users run them: a broker with Kafka's StandardAuthorizer
setting, super.users, PLAIN users on a SASL listener; ACLs added, listed
and removed with confluent-kafka's admin client and Kafka's own kafka-acls
(AclCommand); producers, consumers and Metadata refused with Kafka's
errors, deny beating allow."""
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import uuid

import pytest
from confluent_kafka import Consumer, ElectionType, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
                                   NewTopic, ResourcePatternType, ResourceType)

from conftest import ROOT, Broker, free_port

JAVA_DIR = os.path.join(ROOT, "tests", "java")
CLASSPATH = os.path.join(JAVA_DIR, "classes") + ":" + os.path.join(JAVA_DIR, "lib", "*")
TIMEOUT_S = 30
USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}
JAAS = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
        + " ".join(f'user_{u}="{p}"' for u, p in USERS.items()) + ";")

needs_jvm_tools = pytest.mark.skipif(
    shutil.which("java") is None or not os.path.isfile(os.path.join(JAVA_DIR, "lib", "kafka-tools-4.1.1.jar")),
    reason="Kafka's tools not set up (scripts/setup-test-env.sh needs mvn and javac)")


class Secured:
    def __init__(self, broker, port):
        self.broker = broker
        self.bootstrap = f"127.0.0.1:{port}"

    def conf(self, user):
        return {"bootstrap.servers": self.bootstrap, "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": USERS[user]}

    def admin(self, user="admin"):
        return AdminClient(self.conf(user))


@pytest.fixture(scope="module")
def secured():
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        broker = Broker(data_dir, [
            "num.partitions=1",
            f"listeners=SASL_PLAINTEXT://127.0.0.1:{port}",
            f"listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:admin",
        ])
        broker.start()
        try:
            yield Secured(broker, port)
        finally:
            broker.kill()


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topics(s, *names):
    admin = s.admin()  # kept alive until the futures resolve
    futures = admin.create_topics([NewTopic(n, num_partitions=1, replication_factor=1) for n in names])
    for future in futures.values():
        future.result(TIMEOUT_S)


def allow(s, principal, operation, resource_type, name, pattern=ResourcePatternType.LITERAL,
          permission=AclPermissionType.ALLOW):
    binding = AclBinding(resource_type, name, pattern, principal, "*", operation, permission)
    admin = s.admin()
    for future in admin.create_acls([binding]).values():
        future.result(TIMEOUT_S)


def produce(s, user, topic, count=10):
    """Delivery errors, by code (empty: every record was acknowledged)."""
    errors = []
    producer = Producer(s.conf(user) | {"acks": "all", "message.timeout.ms": 10000})
    for i in range(count):
        producer.produce(topic, f"v{i}".encode(),
                         on_delivery=lambda err, msg: err and errors.append(err.code()))
    assert producer.flush(TIMEOUT_S) == 0
    return errors


def consume(s, user, topic, group, count):
    """(values read, first error code seen) within the deadline."""
    consumer = Consumer(s.conf(user) | {"group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values, error = [], None
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while len(values) < count and error is None and time.monotonic() < deadline:
            msg = consumer.poll(1)
            if msg is None:
                continue
            if msg.error():
                error = msg.error().code()
            else:
                values.append(msg.value())
    finally:
        consumer.close()
    return values, error


def test_producer_needs_write_and_consumer_needs_group_read(secured):
    topic = unique("orders")
    create_topics(secured, topic)
    assert produce(secured, "alice", topic) == [KafkaError.TOPIC_AUTHORIZATION_FAILED] * 10
    allow(secured, "User:alice", AclOperation.WRITE, ResourceType.TOPIC, topic)
    assert produce(secured, "alice", topic) == []

    group = unique("bob-group")
    allow(secured, "User:bob", AclOperation.READ, ResourceType.TOPIC, topic)
    values, error = consume(secured, "bob", topic, group, 10)
    assert error == KafkaError.GROUP_AUTHORIZATION_FAILED and values == []
    allow(secured, "User:bob", AclOperation.READ, ResourceType.GROUP, "bob-", ResourcePatternType.PREFIXED)
    values, error = consume(secured, "bob", topic, group, 10)
    assert error is None and len(values) == 10
    # Bob may read, not write; alice may write, not read.
    assert produce(secured, "bob", topic, 1) == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    values, error = consume(secured, "alice", topic, unique("bob-alice"), 1)
    assert error in (KafkaError.GROUP_AUTHORIZATION_FAILED, KafkaError.TOPIC_AUTHORIZATION_FAILED)


def test_deny_beats_allow(secured):
    topic = unique("payments")
    create_topics(secured, topic)
    allow(secured, "User:*", AclOperation.WRITE, ResourceType.TOPIC, topic)
    assert produce(secured, "bob", topic, 1) == []
    allow(secured, "User:bob", AclOperation.ALL, ResourceType.TOPIC, "payments-", ResourcePatternType.PREFIXED,
          AclPermissionType.DENY)
    assert produce(secured, "bob", topic, 1) == [KafkaError.TOPIC_AUTHORIZATION_FAILED]
    assert produce(secured, "alice", topic, 1) == []


def test_metadata_hides_what_the_caller_may_not_describe(secured):
    visible, hidden = unique("visible"), unique("hidden")
    create_topics(secured, visible, hidden)
    allow(secured, "User:alice", AclOperation.DESCRIBE, ResourceType.TOPIC, visible)
    listed = secured.admin("alice").list_topics(timeout=TIMEOUT_S).topics
    assert visible in listed and hidden not in listed
    assert hidden in secured.admin().list_topics(timeout=TIMEOUT_S).topics  # super user
    # Named: refused whether or not the topic exists, so nothing leaks.
    for name in [hidden, unique("missing")]:
        topic = secured.admin("alice").list_topics(topic=name, timeout=TIMEOUT_S).topics[name]
        assert topic.error is not None and topic.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_acl_apis_need_cluster_alter_and_filters_select(secured):
    topic = unique("audit")
    binding = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:alice", "*",
                         AclOperation.READ, AclPermissionType.ALLOW)
    alice = secured.admin("alice")
    for future in alice.create_acls([binding]).values():
        with pytest.raises(KafkaException) as refused:
            future.result(TIMEOUT_S)
        assert refused.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    allow(secured, "User:alice", AclOperation.READ, ResourceType.TOPIC, topic)
    allow(secured, "User:alice", AclOperation.WRITE, ResourceType.TOPIC, "audit-", ResourcePatternType.PREFIXED)
    match = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.MATCH, None, None,
                             AclOperation.ANY, AclPermissionType.ANY)
    admin = secured.admin()
    found = admin.describe_acls(match).result(TIMEOUT_S)
    assert sorted((b.name, b.operation) for b in found) == sorted(
        [(topic, AclOperation.READ), ("audit-", AclOperation.WRITE)])
    literal_only = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, None, None,
                                    AclOperation.ANY, AclPermissionType.ANY)
    deleted = list(admin.delete_acls([literal_only]).values())[0].result(TIMEOUT_S)
    assert [(b.name, b.operation) for b in deleted] == [(topic, AclOperation.READ)]
    found = admin.describe_acls(match).result(TIMEOUT_S)
    assert [(b.name, b.operation) for b in found] == [("audit-", AclOperation.WRITE)]


def test_elect_leaders_needs_cluster_alter(secured):
    """Refused per partition as Kafka does (v0 has nowhere else for it),
    and at the top level from v1 on; the admin is served."""
    topic = unique("elect")
    create_topics(secured, topic)
    partition = TopicPartition(topic, 0)
    alice = secured.admin("alice")
    future = alice.elect_leaders(ElectionType.PREFERRED, [partition])
    try:
        results = future.result(TIMEOUT_S)
    except KafkaException as refused:
        assert refused.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED, refused
    else:
        errors = {(tp.topic, tp.partition): e and e.code() for tp, e in results.items()}
        assert errors == {(topic, 0): KafkaError.CLUSTER_AUTHORIZATION_FAILED}, errors
    admin = secured.admin()  # kept alive until the future resolves
    results = admin.elect_leaders(ElectionType.PREFERRED, [partition]).result(TIMEOUT_S)
    errors = {(tp.topic, tp.partition): e and e.code() for tp, e in results.items()}
    assert errors == {(topic, 0): KafkaError.ELECTION_NOT_NEEDED}, errors
    # v0 on the wire: the per-partition error is all it has.
    from test_security import frame, kstring, read_response
    with raw_sasl_plain(secured, "alice") as sock:
        body = struct.pack(">i", 1) + kstring(topic) + struct.pack(">iii", 1, 0, 30_000)
        sock.sendall(frame(43, 0, 3, body))
        correlation, answer = read_response(sock)
    assert correlation == 3
    at = 4  # throttle_time_ms
    (topics,) = struct.unpack(">i", answer[at:at + 4])
    at += 4
    (name_len,) = struct.unpack(">h", answer[at:at + 2])
    name = answer[at + 2:at + 2 + name_len].decode()
    at += 2 + name_len
    count, index, error = struct.unpack(">iih", answer[at:at + 10])
    assert (topics, name, count, index, error) == (1, topic, 1, 0, KafkaError.CLUSTER_AUTHORIZATION_FAILED)


def raw_sasl_plain(secured, user):
    """A raw socket authenticated as `user` (SASL PLAIN)."""
    from test_security import sasl_authenticate_v1, sasl_handshake
    port = int(secured.bootstrap.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
    assert sasl_handshake(sock, "PLAIN")[0] == 0
    assert sasl_authenticate_v1(sock, b"\0" + user.encode() + b"\0" + USERS[user].encode())[0] == 0
    return sock


def test_delete_topics_by_id_does_not_name_an_undescribable_topic(secured):
    """DeleteTopics v6 by topic id from a caller without DESCRIBE: the
    result carries the id, no name, TOPIC_AUTHORIZATION_FAILED (Kafka's
    ControllerApis); the topic stays."""
    from confluent_kafka import TopicCollection
    from test_security import read_response
    topic = unique("byid")
    create_topics(secured, topic)
    admin = secured.admin()
    described = admin.describe_topics(TopicCollection([topic]))[topic].result(TIMEOUT_S)
    uuid_bits = described.topic_id
    topic_id = struct.pack(">qq", uuid_bits.get_most_significant_bits(), uuid_bits.get_least_significant_bits())
    client = b"raw"
    header = struct.pack(">hhih", 20, 6, 5, len(client)) + client + b"\x00"
    body = b"\x02" + b"\x00" + topic_id + b"\x00" + struct.pack(">i", 30_000) + b"\x00"
    with raw_sasl_plain(secured, "bob") as sock:
        sock.sendall(struct.pack(">i", len(header + body)) + header + body)
        correlation, answer = read_response(sock)
    assert correlation == 5
    at = 1 + 4  # header tagged fields, throttle_time_ms
    assert answer[at] == 2, answer  # one result
    at += 1
    assert answer[at] == 0, "the name is not null"
    at += 1
    assert answer[at:at + 16] == topic_id
    at += 16
    (error,) = struct.unpack(">h", answer[at:at + 2])
    assert error == KafkaError.TOPIC_AUTHORIZATION_FAILED
    still = admin.describe_topics(TopicCollection([topic]))[topic].result(TIMEOUT_S)
    assert still.name == topic


@needs_jvm_tools
def test_kafka_acls_adds_lists_and_removes(secured):
    topic = unique("tool")
    create_topics(secured, topic)
    with tempfile.NamedTemporaryFile("w", suffix=".properties") as props:
        props.write("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                    "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
                    'username="admin" password="admin-secret";\n')
        props.flush()

        def acls(*args):
            result = subprocess.run(
                ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", CLASSPATH,
                 "org.apache.kafka.tools.AclCommand", "--bootstrap-server", secured.bootstrap,
                 "--command-config", props.name, *args],
                capture_output=True, text=True, timeout=180)
            assert result.returncode == 0, result.stdout + result.stderr
            return result.stdout

        acls("--add", "--allow-principal", "User:alice", "--operation", "Write", "--topic", topic)
        listed = acls("--list", "--topic", topic)
        assert "User:alice" in listed and "WRITE" in listed, listed
        assert produce(secured, "alice", topic, 1) == []
        acls("--remove", "--force", "--allow-principal", "User:alice", "--operation", "Write", "--topic", topic)
        assert "User:alice" not in acls("--list", "--topic", topic)
        assert produce(secured, "alice", topic, 1) == [KafkaError.TOPIC_AUTHORIZATION_FAILED]


def test_acl_apis_without_an_authorizer_are_security_disabled(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    binding = AclBinding(ResourceType.TOPIC, "t", ResourcePatternType.LITERAL, "User:alice", "*",
                         AclOperation.READ, AclPermissionType.ALLOW)
    for future in admin.create_acls([binding]).values():
        with pytest.raises(KafkaException) as refused:
            future.result(TIMEOUT_S)
        assert refused.value.args[0].code() == KafkaError.SECURITY_DISABLED
    # librdkafka drops DescribeAcls' top-level error, so read it off the wire:
    # v1, every filter field ANY or null.
    body = struct.pack(">bhbhhbb", 1, -1, 1, -1, -1, 1, 1)
    client = b"raw"
    payload = struct.pack(">hhih", 29, 1, 7, len(client)) + client + body
    with socket.create_connection(("127.0.0.1", broker.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
        answer = sock.recv(size, socket.MSG_WAITALL)
    correlation, _throttle, error = struct.unpack(">iih", answer[:10])
    assert (correlation, error) == (7, KafkaError.SECURITY_DISABLED)
