"""A 3-node cluster whose brokers reach each other only over secured
listeners, as a Kafka deployment on a shared network runs:

- replication over a SASL_SSL inter-broker listener (INTERNAL): each
  follower checks the leader's certificate against the CA, offers its own
  (ssl.client.auth=required there), then logs in with SASL PLAIN as
  User:broker (`sasl.mechanism.inter.broker.protocol`, the username and
  password of the listener's JAAS line). The StandardAuthorizer is on, so
  a follower's Fetch needs CLUSTER_ACTION: User:broker is a super user.
  Clients (and this test's raw requests) use a PLAINTEXT listener on
  loopback, whose User:ANONYMOUS is a super user too (the README's
  operator listener). INTERNAL accepts nothing but TLS, so an acks=all
  write to a topic with min.insync.replicas=3 completes only if both
  followers fetched over it, and then every node's log holds each record.
  The same with SCRAM-SHA-512 for the brokers' login: the broker user's
  SCRAM credential is added through the PLAINTEXT listener once the quorum
  has formed (it lives in the metadata), and the followers, refused until
  then, get in.
- the controller quorum over SSL with client certificates required
  (CONTROLLER:SSL): the cluster forms, and on a voter's controller port a
  TLS client with a CA-signed certificate gets an answer to a status
  frame, while a plaintext client and a TLS client without a certificate
  are closed without one.

Certificates come from test_security.py's openssl helper."""
import json
import os
import socket
import ssl
import struct
import tempfile

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

from test_cluster import Cluster, distinct_free_ports
from test_replication import create_topic_with, log_bytes, wait_whole_isr
from test_security import closed_without_answer, make_certs

RECORDS = 200
TIMEOUT_S = 60
BROKER_PASSWORD = "broker-secret"
LOGINS = {
    "PLAIN": ("plain", 'org.apache.kafka.common.security.plain.PlainLoginModule required '
              f'username="broker" password="{BROKER_PASSWORD}" user_broker="{BROKER_PASSWORD}";'),
    "SCRAM-SHA-512": ("scram-sha-512", 'org.apache.kafka.common.security.scram.ScramLoginModule required '
                      f'username="broker" password="{BROKER_PASSWORD}";'),
}


@pytest.fixture(params=["PLAIN"])
def secure_cluster(request):
    mechanism = request.param
    prefix, jaas = LOGINS[mechanism]
    with tempfile.TemporaryDirectory() as certs_dir:
        certs = make_certs(certs_dir)
        cluster = Cluster(settings=[
            "group.initial.rebalance.delay.ms=0",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:SASL_SSL,CONTROLLER:SSL",
            "inter.broker.listener.name=INTERNAL",
            f"sasl.mechanism.inter.broker.protocol={mechanism}",
            f"listener.name.internal.sasl.enabled.mechanisms={mechanism}",
            f"listener.name.internal.{prefix}.sasl.jaas.config={jaas}",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={certs['keystore']}",
            f"ssl.truststore.location={certs['ca']}",
            "listener.name.internal.ssl.client.auth=required",
            "listener.name.controller.ssl.client.auth=required",
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:broker;User:ANONYMOUS",
        ])
        internal = dict(zip(cluster.nodes, distinct_free_ports(len(cluster.nodes))))
        for node_id, node in cluster.nodes.items():
            node.settings.append(
                f"listeners=PLAINTEXT://{node.bootstrap},INTERNAL://127.0.0.1:{internal[node_id]},"
                f"CONTROLLER://{node.controller_host}:{node.controller_port}")
        try:
            cluster.start()
            cluster.certs = certs
            if mechanism.startswith("SCRAM"):
                admin = AdminClient({"bootstrap.servers": cluster.nodes[1].bootstrap})
                upsert = UserScramCredentialUpsertion(
                    "broker", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), BROKER_PASSWORD.encode())
                for future in admin.alter_user_scram_credentials([upsert]).values():
                    future.result(TIMEOUT_S)
            yield cluster
        finally:
            cluster.close()


@pytest.mark.parametrize("secure_cluster", ["PLAIN", "SCRAM-SHA-512"], indirect=True)
def test_replication_over_a_sasl_ssl_inter_broker_listener(secure_cluster):
    cluster = secure_cluster
    node = cluster.nodes[1]
    topic = "secured-replication"
    create_topic_with(cluster, node, topic, partitions=1, replication_factor=3,
                      configs={"min.insync.replicas": "3"})
    wait_whole_isr(cluster, {topic: 1})
    producer = Producer({"bootstrap.servers": node.bootstrap, "acks": "all",
                         "message.timeout.ms": TIMEOUT_S * 1000})
    failures = []
    values = [f"secured-{i:04}".encode() for i in range(RECORDS)]
    for value in values:
        producer.produce(topic, value, on_delivery=lambda err, _msg: err and failures.append(err))
    assert producer.flush(TIMEOUT_S) == 0, f"records not acknowledged\n{cluster.log_tails()}"
    assert not failures, f"{failures[:3]}\n{cluster.log_tails()}"
    wait_whole_isr(cluster, {topic: 1})
    for n in cluster.nodes.values():
        data = log_bytes(n, topic, 0)
        missing = [v for v in values if v not in data]
        assert not missing, f"node {n.node_id} lacks {len(missing)} records, e.g. {missing[:3]}"


# The controller's own frames (controller/src/rpc.rs): u32 length, a kind
# byte, a JSON body; kind 6 asks a voter's quorum status, 7 answers it.
STATUS, STATUS_ANSWER = 6, 7


def status_frame():
    body = b"{}"
    return struct.pack(">IB", len(body) + 1, STATUS) + body


def read_answer(sock):
    header = b""
    while len(header) < 5:
        chunk = sock.recv(5 - len(header))
        assert chunk, "closed before an answer"
        header += chunk
    length, kind = struct.unpack(">IB", header)
    body = b""
    while len(body) < length - 1:
        chunk = sock.recv(length - 1 - len(body))
        assert chunk, "closed inside an answer"
        body += chunk
    return kind, json.loads(body)


def test_controller_listener_admits_only_tls_peers_with_a_trusted_certificate(secure_cluster):
    cluster = secure_cluster
    certs = cluster.certs
    port = cluster.nodes[1].controller_port

    def tls_socket(with_certificate):
        context = ssl.create_default_context(cafile=certs["ca"])
        if with_certificate:
            context.load_cert_chain(certs["client"], certs["client_key"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
        return context.wrap_socket(raw, server_hostname="127.0.0.1")

    with tls_socket(with_certificate=True) as sock:
        sock.sendall(status_frame())
        kind, status = read_answer(sock)
        assert kind == STATUS_ANSWER and status.get("node_id") == 1, (kind, status)

    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        sock.sendall(status_frame())
        assert closed_without_answer(sock), "a plaintext client was answered"

    try:
        sock = tls_socket(with_certificate=False)
    except (ssl.SSLError, ConnectionResetError):
        pass  # refused during the handshake (TLS 1.2)
    else:
        with sock:
            try:
                sock.sendall(status_frame())
            except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
                pass
            assert closed_without_answer(sock), "a TLS client without a certificate was answered"
    assert any("TLS handshake failed" in line for line in cluster.nodes[1].log), cluster.log_tails()
