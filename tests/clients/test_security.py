"""Security with real clients: TLS, mTLS, SASL_PLAINTEXT and SASL_SSL with
PLAIN and SCRAM-SHA-256/512 through confluent-kafka and kafka-python, SCRAM
users added with Kafka's own kafka-configs (ConfigCommand), and the abuse a
secured listener must shrug off. Certificates come from openssl, made here."""
import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)
from kafka import KafkaConsumer, KafkaProducer

from conftest import ROOT, free_port

JAVA_DIR = os.path.join(ROOT, "tests", "java")
CLASSPATH = os.path.join(JAVA_DIR, "classes") + ":" + os.path.join(JAVA_DIR, "lib", "*")
TIMEOUT_S = 30
RECORDS = 50

# Kafka error codes.
UNSUPPORTED_SASL_MECHANISM = 33
SASL_AUTHENTICATION_FAILED = 58

# Kafka API keys.
METADATA = 3
SASL_HANDSHAKE = 17
API_VERSIONS = 18
SASL_AUTHENTICATE = 36

PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'user_alice="alice-secret" user_carol="carol-secret";')
REAUTH_MS = 600000

needs_jvm_tools = pytest.mark.skipif(
    shutil.which("java") is None or not os.path.isfile(os.path.join(JAVA_DIR, "lib", "kafka_2.13-4.1.1.jar")),
    reason="Kafka's tools not set up (scripts/setup-test-env.sh needs mvn and javac)")


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def signed(d, name, subject, ext):
    """`<name>.key` and `<name>.pem`, a certificate signed by the CA in `d`."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(ext + "\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=d)


def signed_keystore(d, name, subject="/CN=localhost", ext="subjectAltName=DNS:localhost,IP:127.0.0.1"):
    """A new server key and certificate signed by the CA in `d`, as one PEM
    keystore file `<name>-keystore.pem` (key, chain), as Kafka's PEM
    keystore holds them."""
    signed(d, name, subject, ext)
    path = os.path.join(d, f"{name}-keystore.pem")
    with open(path, "w") as out:
        for part in [f"{name}.key", f"{name}.pem", "ca.pem"]:
            with open(os.path.join(d, part)) as f:
                out.write(f.read())
    return path


def make_certs(d):
    """A CA, a server certificate for localhost/127.0.0.1 (its keystore)
    and a client certificate, all signed by the CA."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Sluice Test CA",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    keystore = signed_keystore(d, "server")
    signed(d, "client", "/O=Sluice/OU=Tests/CN=alice", "extendedKeyUsage=clientAuth")
    return {k: os.path.join(d, f"{k}.pem") for k in ["ca", "client"]} | {
        "client_key": os.path.join(d, "client.key"), "keystore": keystore}


class Secured:
    """One broker with a listener per security protocol, plus the PLAINTEXT
    one (--listen) that operators and kafka-configs use."""

    def __init__(self, broker, ports, certs):
        self.broker = broker
        self.ports = ports
        self.certs = certs

    def bootstrap(self, listener):
        return f"127.0.0.1:{self.ports[listener]}"


@pytest.fixture(scope="module")
def secured():
    from conftest import Broker
    with tempfile.TemporaryDirectory() as certs_dir, tempfile.TemporaryDirectory() as data_dir:
        certs = make_certs(certs_dir)
        ports = {name: free_port() for name in ["SSL", "MTLS", "SASL_PLAINTEXT", "SASL_SSL"]}
        listeners = ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports.items())
        broker = Broker(data_dir, [
            "num.partitions=1",
            f"listeners={listeners}",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SSL:SSL,MTLS:SSL,"
            "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={certs['keystore']}",
            f"ssl.truststore.location={certs['ca']}",
            "listener.name.mtls.ssl.client.auth=required",
            f"listener.name.sasl_plaintext.plain.sasl.jaas.config={PLAIN_JAAS}",
            f"listener.name.sasl_ssl.plain.sasl.jaas.config={PLAIN_JAAS}",
            f"listener.name.sasl_plaintext.connections.max.reauth.ms={REAUTH_MS}",
        ])
        broker.start()
        try:
            yield Secured(broker, ports, certs)
        finally:
            broker.kill()


def ssl_conf(s):
    return {"ssl.ca.location": s.certs["ca"]}


def sasl_conf(mechanism, user, password):
    return {"sasl.mechanism": mechanism, "sasl.username": user, "sasl.password": password}


def confluent_roundtrip(bootstrap, conf):
    """Produces RECORDS records with acks=all and reads them back in a
    group, both through `conf`; returns the values read."""
    topic = f"sec-{uuid.uuid4().hex[:8]}"
    common = {"bootstrap.servers": bootstrap} | conf
    producer = Producer(common | {"acks": "all"})
    for i in range(RECORDS):
        producer.produce(topic, f"record-{i}".encode())
    assert producer.flush(TIMEOUT_S) == 0
    consumer = Consumer(common | {"group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values = []
    try:
        while len(values) < RECORDS:
            msg = consumer.poll(TIMEOUT_S)
            assert msg is not None, f"only {len(values)} of {RECORDS} records consumed"
            assert msg.error() is None, msg.error()
            values.append(msg.value())
    finally:
        consumer.close()
    assert values == [f"record-{i}".encode() for i in range(RECORDS)]


def refused(bootstrap, conf):
    """The client cannot get metadata through `conf`: returns what it was
    told (the errors librdkafka reported), once it has been told anything."""
    errors = []
    admin = AdminClient({"bootstrap.servers": bootstrap, "error_cb": errors.append} | conf)
    deadline = time.monotonic() + TIMEOUT_S
    while not errors:
        assert time.monotonic() < deadline, "no error reported"
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=1)
        admin.poll(0)  # delivers the error callbacks
    return " ".join(str(e) for e in errors)


def kafka_python_roundtrip(bootstrap, **conf):
    topic = f"kp-{uuid.uuid4().hex[:8]}"
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **conf)
    for i in range(RECORDS):
        producer.send(topic, f"kp-{i}".encode())
    producer.flush(TIMEOUT_S)
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=TIMEOUT_S * 1000, **conf)
    values = []
    for msg in consumer:
        values.append(msg.value)
        if len(values) == RECORDS:
            break
    consumer.close()
    assert values == [f"kp-{i}".encode() for i in range(RECORDS)]


def add_scram_user(s, user, password):
    """Creates SCRAM-SHA-256 and -512 credentials through the PLAINTEXT
    listener with AlterUserScramCredentials (confluent-kafka's admin)."""
    admin = AdminClient({"bootstrap.servers": s.broker.bootstrap})
    upserts = [UserScramCredentialUpsertion(user, ScramCredentialInfo(mech, 4096), password.encode())
               for mech in [ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512]]
    for future in admin.alter_user_scram_credentials(upserts).values():
        future.result(TIMEOUT_S)


# --- raw frames, for what no well-behaved client sends ---

def frame(api, version, correlation, body=b""):
    client = b"raw"
    payload = struct.pack(">hhih", api, version, correlation, len(client)) + client + body
    return struct.pack(">i", len(payload)) + payload


def read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def read_response(sock):
    """(correlation, body) of the next response, or None once closed."""
    size = read_exactly(sock, 4)
    if size is None:
        return None
    payload = read_exactly(sock, struct.unpack(">i", size)[0])
    if payload is None:
        return None
    return struct.unpack(">i", payload[:4])[0], payload[4:]


def kstring(s):
    return struct.pack(">h", len(s)) + s.encode()


def kbytes(b):
    return struct.pack(">i", len(b)) + b


def connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
    return sock


def closed_without_answer(sock):
    """The peer closes without a Kafka response (a TLS alert, a few bytes,
    may come first)."""
    try:
        data = b""
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, ssl.SSLError):
        return True
    return len(data) < 16


def sasl_handshake(sock, mechanism, correlation=1):
    sock.sendall(frame(SASL_HANDSHAKE, 1, correlation, kstring(mechanism)))
    corr, body = read_response(sock)
    assert corr == correlation
    error = struct.unpack(">h", body[:2])[0]
    count = struct.unpack(">i", body[2:6])[0]
    mechanisms, at = [], 6
    for _ in range(count):
        n = struct.unpack(">h", body[at:at + 2])[0]
        mechanisms.append(body[at + 2:at + 2 + n].decode())
        at += 2 + n
    return error, mechanisms


def sasl_authenticate_v1(sock, token, correlation=2):
    """(error_code, session_lifetime_ms), or None if the broker closed."""
    sock.sendall(frame(SASL_AUTHENTICATE, 1, correlation, kbytes(token)))
    answer = read_response(sock)
    if answer is None:
        return None
    corr, body = answer
    assert corr == correlation
    error = struct.unpack(">h", body[:2])[0]
    at = 2
    n = struct.unpack(">h", body[at:at + 2])[0]
    at += 2 + max(n, 0)
    n = struct.unpack(">i", body[at:at + 4])[0]
    at += 4 + max(n, 0)
    return error, struct.unpack(">q", body[at:at + 8])[0]


# --- the listeners, each with a real client ---

def test_ssl_listener_confluent_and_kafka_python(secured):
    confluent_roundtrip(secured.bootstrap("SSL"), {"security.protocol": "SSL"} | ssl_conf(secured))
    kafka_python_roundtrip(secured.bootstrap("SSL"), security_protocol="SSL", ssl_cafile=secured.certs["ca"])


def test_ssl_listener_is_refused_by_a_client_that_does_not_trust_its_ca(secured):
    with tempfile.TemporaryDirectory() as d:
        other = make_certs(d)
        message = refused(secured.bootstrap("SSL"), {"security.protocol": "SSL", "ssl.ca.location": other["ca"]})
    assert "ssl" in message.lower() or "transport" in message.lower() or "timed out" in message.lower(), message


def test_mtls_listener_needs_a_client_certificate(secured):
    client_cert = {"ssl.certificate.location": secured.certs["client"],
                   "ssl.key.location": secured.certs["client_key"]}
    confluent_roundtrip(secured.bootstrap("MTLS"), {"security.protocol": "SSL"} | ssl_conf(secured) | client_cert)
    kafka_python_roundtrip(secured.bootstrap("MTLS"), security_protocol="SSL", ssl_cafile=secured.certs["ca"],
                           ssl_certfile=secured.certs["client"], ssl_keyfile=secured.certs["client_key"])
    refused(secured.bootstrap("MTLS"), {"security.protocol": "SSL"} | ssl_conf(secured))


def test_sasl_plaintext_plain(secured):
    conf = {"security.protocol": "SASL_PLAINTEXT"} | sasl_conf("PLAIN", "alice", "alice-secret")
    confluent_roundtrip(secured.bootstrap("SASL_PLAINTEXT"), conf)
    kafka_python_roundtrip(secured.bootstrap("SASL_PLAINTEXT"), security_protocol="SASL_PLAINTEXT",
                           sasl_mechanism="PLAIN", sasl_plain_username="carol", sasl_plain_password="carol-secret")


def test_sasl_ssl_plain(secured):
    conf = {"security.protocol": "SASL_SSL"} | ssl_conf(secured) | sasl_conf("PLAIN", "alice", "alice-secret")
    confluent_roundtrip(secured.bootstrap("SASL_SSL"), conf)


def test_wrong_password_is_refused_and_others_keep_working(secured):
    for mechanism in ["PLAIN", "SCRAM-SHA-256"]:
        message = refused(secured.bootstrap("SASL_PLAINTEXT"),
                          {"security.protocol": "SASL_PLAINTEXT"} | sasl_conf(mechanism, "alice", "wrong"))
        assert "authentication" in message.lower(), message
    confluent_roundtrip(secured.bootstrap("SASL_PLAINTEXT"),
                        {"security.protocol": "SASL_PLAINTEXT"} | sasl_conf("PLAIN", "alice", "alice-secret"))


def test_scram_users_created_with_the_admin_api(secured):
    add_scram_user(secured, "dave", "dave-secret")
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"]:
        confluent_roundtrip(secured.bootstrap("SASL_SSL"),
                            {"security.protocol": "SASL_SSL"} | ssl_conf(secured) | sasl_conf(mechanism, "dave", "dave-secret"))
    kafka_python_roundtrip(secured.bootstrap("SASL_PLAINTEXT"), security_protocol="SASL_PLAINTEXT",
                           sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="dave",
                           sasl_plain_password="dave-secret")
    admin = AdminClient({"bootstrap.servers": secured.broker.bootstrap})
    described = admin.describe_user_scram_credentials(["dave"])["dave"].result(TIMEOUT_S)
    assert sorted(str(info.mechanism) for info in described.scram_credential_infos) == [
        str(ScramMechanism.SCRAM_SHA_256), str(ScramMechanism.SCRAM_SHA_512)]
    # A user the broker does not know fails the same way as a wrong password.
    message = refused(secured.bootstrap("SASL_PLAINTEXT"),
                      {"security.protocol": "SASL_PLAINTEXT"} | sasl_conf("SCRAM-SHA-256", "nobody", "x"))
    assert "authentication" in message.lower(), message


@needs_jvm_tools
def test_kafka_configs_adds_and_describes_scram_users(secured):
    def configs(*args):
        result = subprocess.run(
            ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", CLASSPATH, "kafka.admin.ConfigCommand",
             "--bootstrap-server", secured.broker.bootstrap, *args],
            capture_output=True, text=True, timeout=180)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    configs("--alter", "--add-config",
            "SCRAM-SHA-256=[iterations=8192,password=erin-secret],SCRAM-SHA-512=[password=erin-secret]",
            "--entity-type", "users", "--entity-name", "erin")
    described = configs("--describe", "--entity-type", "users", "--entity-name", "erin")
    assert "SCRAM-SHA-256=iterations=8192" in described, described
    assert "SCRAM-SHA-512=iterations=4096" in described, described
    confluent_roundtrip(secured.bootstrap("SASL_PLAINTEXT"),
                        {"security.protocol": "SASL_PLAINTEXT"} | sasl_conf("SCRAM-SHA-256", "erin", "erin-secret"))
    configs("--alter", "--delete-config", "SCRAM-SHA-256", "--entity-type", "users", "--entity-name", "erin")
    described = configs("--describe", "--entity-type", "users", "--entity-name", "erin")
    assert "SCRAM-SHA-256" not in described and "SCRAM-SHA-512" in described, described
    refused(secured.bootstrap("SASL_PLAINTEXT"),
            {"security.protocol": "SASL_PLAINTEXT"} | sasl_conf("SCRAM-SHA-256", "erin", "erin-secret"))


# --- abuse: each gets a clear error or a closed connection, and the broker
# keeps serving the clients that behave ---

def test_sasl_state_rules_on_the_wire(secured):
    port = secured.ports["SASL_PLAINTEXT"]
    # ApiVersions may come before the handshake; anything else closes.
    with connect(port) as sock:
        sock.sendall(frame(API_VERSIONS, 0, 7))
        corr, body = read_response(sock)
        assert corr == 7 and body[:2] == b"\x00\x00"
        sock.sendall(frame(METADATA, 0, 8, struct.pack(">i", 0)))
        assert closed_without_answer(sock)
    # An unknown mechanism is answered with the enabled ones.
    with connect(port) as sock:
        error, mechanisms = sasl_handshake(sock, "GSSAPI")
        assert error == UNSUPPORTED_SASL_MECHANISM
        assert mechanisms == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
    # A wrong password: SASL_AUTHENTICATION_FAILED, then closed.
    with connect(port) as sock:
        assert sasl_handshake(sock, "PLAIN")[0] == 0
        error, _ = sasl_authenticate_v1(sock, b"\x00alice\x00wrong")
        assert error == SASL_AUTHENTICATION_FAILED
        assert closed_without_answer(sock)
    # Garbage where the PLAIN token belongs, and where the SCRAM first message belongs.
    for mechanism in ["PLAIN", "SCRAM-SHA-512"]:
        with connect(port) as sock:
            assert sasl_handshake(sock, mechanism)[0] == 0
            answer = sasl_authenticate_v1(sock, b"\xff\xfe garbage \x01\x02")
            assert answer is None or answer[0] == SASL_AUTHENTICATION_FAILED, answer
            assert closed_without_answer(sock)
    # The right password: authenticated, with the session lifetime
    # (KIP-368) on the final response.
    with connect(port) as sock:
        assert sasl_handshake(sock, "PLAIN")[0] == 0
        error, lifetime_ms = sasl_authenticate_v1(sock, b"\x00alice\x00alice-secret")
        assert error == 0
        assert 0 < lifetime_ms <= REAUTH_MS
        sock.sendall(frame(METADATA, 0, 9, struct.pack(">i", 0)))
        assert read_response(sock)[0] == 9


def test_pre_authentication_frames_are_capped(secured):
    # 1 MiB is over sasl.server.max.receive.size (512 KiB): the broker
    # closes at the length prefix instead of buffering the body.
    for listener in ["SASL_PLAINTEXT"]:
        with connect(secured.ports[listener]) as sock:
            sock.sendall(struct.pack(">i", 1 << 20) + b"\x00" * 64)
            assert closed_without_answer(sock)
        with connect(secured.ports[listener]) as sock:
            assert sasl_handshake(sock, "PLAIN")[0] == 0
            sock.sendall(struct.pack(">i", 1 << 20) + b"\x00" * 64)
            assert closed_without_answer(sock)


def test_wrong_protocol_on_each_port(secured):
    # A TLS client on the plaintext port: its ClientHello is no Kafka frame.
    ctx = ssl.create_default_context(cafile=secured.certs["ca"])
    with connect(secured.broker.port) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(frame(API_VERSIONS, 0, 1))
                assert read_response(tls) is None
                raise ConnectionError("closed, as it should be")
    # A plaintext client on each TLS port: no Kafka answer, then closed.
    for listener in ["SSL", "MTLS", "SASL_SSL"]:
        with connect(secured.ports[listener]) as sock:
            sock.sendall(frame(API_VERSIONS, 0, 1))
            assert closed_without_answer(sock)
    # TLS then garbage instead of a Kafka frame.
    with connect(secured.ports["SSL"]) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"\x00\x00\x00\x08" + b"\xff" * 8)
            assert closed_without_answer(tls)
    # Everyone who behaves is still served.
    confluent_roundtrip(secured.bootstrap("SSL"), {"security.protocol": "SSL"} | ssl_conf(secured))
    kafka_python_roundtrip(secured.broker.bootstrap)


# --- bench over the secured listeners (its own TLS and SASL client) ---

BENCH = os.path.join(ROOT, "target", "debug", "bench")


def served_certificate(port, ca):
    """The DER certificate a TLS listener presents to a new connection."""
    context = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            return sock.getpeercert(binary_form=True)


def test_a_renewed_certificate_is_served_without_a_restart(broker_factory):
    """The keystore file replaced (as cert-manager renews it): new
    connections get the new certificate within the reload interval, with
    the broker's PID unchanged; a broken file then keeps the last good one
    serving, with a warning."""
    with tempfile.TemporaryDirectory() as d:
        certs = make_certs(d)
        keystore = os.path.join(d, "live-keystore.pem")
        shutil.copy(certs["keystore"], keystore)
        port = free_port()
        broker = broker_factory([
            f"listeners=SSL://127.0.0.1:{port}",
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={keystore}",
            "sluice.ssl.reload.interval.ms=100",
        ])
        pid = broker.proc.pid
        before = served_certificate(port, certs["ca"])
        renewed = signed_keystore(d, "renewed")
        os.replace(renewed, keystore)

        def renewed_is_served():
            return served_certificate(port, certs["ca"]) != before

        wait_for(renewed_is_served, "the renewed certificate")
        after = served_certificate(port, certs["ca"])
        assert broker.proc.pid == pid and broker.proc.poll() is None
        with open(keystore + ".tmp", "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\ngarbage\n")
        os.replace(keystore + ".tmp", keystore)
        wait_for(lambda: any("still serving the previous ones" in line for line in broker.log_lines()),
                 "the warning about the broken keystore")
        assert served_certificate(port, certs["ca"]) == after


def wait_for(condition, what, timeout_s=TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {timeout_s}s"
        time.sleep(0.05)


def bench(*args):
    return subprocess.run([BENCH, *args], capture_output=True, text=True, timeout=180,
                          env=os.environ | {"RUST_BACKTRACE": "0"})


def test_bench_produces_consumes_and_connects_over_sasl_ssl(secured):
    add_scram_user(secured, "frank", "frank-secret")
    topic = f"bench-sec-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": secured.broker.bootstrap})
    from confluent_kafka.admin import NewTopic
    for future in admin.create_topics([NewTopic(topic, 2, 1)]).values():
        future.result(TIMEOUT_S)
    with tempfile.NamedTemporaryFile("w", suffix=".properties") as props:
        props.write("security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
                    "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                    'username="frank" password="frank-secret";\n'
                    f"ssl.ca.location={secured.certs['ca']}\n")
        props.flush()
        sasl_ssl = ["--bootstrap", secured.bootstrap("SASL_SSL"), "--command-config", props.name]
        produced = bench("produce", *sasl_ssl, "--topic", topic, "--keep-topic", "--acks", "all",
                         "--partitions", "2", "--duration-s", "1", "--warmup-s", "0")
        assert produced.returncode == 0, produced.stdout + produced.stderr
        read = bench("consume", *sasl_ssl, "--topic", topic)
        assert read.returncode == 0, read.stdout + read.stderr
        # What bench read over TLS is what the broker holds (plaintext view).
        records = int(read.stdout.strip().splitlines()[-1].split()[1])
        plain = bench("consume", "--bootstrap", secured.broker.bootstrap, "--topic", topic)
        assert plain.returncode == 0, plain.stdout + plain.stderr
        assert records > 0 and records == int(plain.stdout.strip().splitlines()[-1].split()[1])
    connected = bench("connect", "--bootstrap", secured.bootstrap("SASL_SSL"), "--count", "5",
                      "--security-protocol", "SASL_SSL", "--sasl-mechanism", "PLAIN",
                      "--sasl-username", "alice", "--sasl-password", "alice-secret",
                      "--ssl-ca-location", secured.certs["ca"])
    assert connected.returncode == 0, connected.stderr
    assert "5 connections" in connected.stdout, connected.stdout
    wrong = bench("connect", "--bootstrap", secured.bootstrap("SASL_PLAINTEXT"), "--count", "1",
                  "--security-protocol", "SASL_PLAINTEXT", "--sasl-mechanism", "SCRAM-SHA-256",
                  "--sasl-username", "frank", "--sasl-password", "wrong")
    assert wrong.returncode != 0 and "authentication failed" in wrong.stderr.lower(), wrong.stderr
