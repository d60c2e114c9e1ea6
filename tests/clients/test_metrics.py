"""The admin endpoint (`sluice.admin.listen`): `/metrics` parsed with the
Prometheus project's own OpenMetrics parser while confluent-kafka produces
and consumes, its counters moving by what was produced and read; the
readiness and liveness paths; bad HTTP requests answered with a 4xx while
the Kafka listener keeps serving; a controller-only node's endpoint,
ready once its quorum has a leader."""
import socket
import struct
import subprocess
import tempfile
import time
import types
import urllib.error
import urllib.request

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from conftest import BROKER, free_port

TIMEOUT_S = 30
RECORDS = 500
VALUE = b"m" * 100


def get(broker, path):
    """(status, content type, body) of GET `path` on the admin endpoint."""
    url = f"http://127.0.0.1:{broker.admin_port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:
            return answer.status, answer.headers.get("Content-Type"), answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type"), error.read().decode()


def scrape(broker):
    """{(sample name, frozenset of labels): value} of one scrape."""
    status, content_type, body = get(broker, "/metrics")
    assert status == 200 and content_type.startswith("application/openmetrics-text"), (status, content_type)
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0)


def raw(broker, data):
    """The status line the admin endpoint answers `data` with."""
    with socket.create_connection(("127.0.0.1", broker.admin_port), timeout=TIMEOUT_S) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return answer.split(b"\r\n", 1)[0].decode()


def test_counters_move_by_what_was_produced_and_consumed(broker_factory):
    broker = broker_factory(settings=["sluice.cores=2"])
    topic = "metered"
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(topic, 4, 1)])[topic].result(TIMEOUT_S)
    before = scrape(broker)
    assert value(before, "sluice_broker_ready") == 1
    assert value(before, "kafka_server_brokertopicmetrics_messagesin_total", topic=topic) == 0

    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "acks": "all"})
    for i in range(RECORDS):
        producer.produce(topic, value=VALUE, partition=i % 4)
    assert producer.flush(TIMEOUT_S) == 0
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "metered",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(4)])
    read = 0
    while read < RECORDS:
        message = consumer.poll(TIMEOUT_S)
        assert message is not None, f"{read} of {RECORDS} read"
        assert message.error() is None, message.error()
        read += 1
    consumer.commit(asynchronous=False)
    consumer.close()

    after = scrape(broker)
    assert value(after, "kafka_server_brokertopicmetrics_messagesin_total", topic=topic) == RECORDS
    bytes_in = value(after, "kafka_server_brokertopicmetrics_bytesin_total", topic=topic)
    batches = value(after, "sluice_produce_batches_total", topic=topic)
    # Each record's value plus its framing, in batches of at least one.
    assert RECORDS * len(VALUE) < bytes_in < RECORDS * (len(VALUE) + 100), bytes_in
    assert 4 <= batches <= RECORDS, batches
    # A consumer reads whole batches: at least everything produced.
    assert value(after, "kafka_server_brokertopicmetrics_bytesout_total", topic=topic) >= bytes_in
    ends = [value(after, "kafka_log_log_logendoffset", topic=topic, partition=str(p)) for p in range(4)]
    assert ends == [RECORDS // 4] * 4, ends
    assert all(value(after, "kafka_log_log_size", topic=topic, partition=str(p)) > 0 for p in range(4))
    produces = sum(v for (name, labels), v in after.items()
                   if name == "kafka_network_requestmetrics_requests_total" and ("request", "Produce") in labels)
    assert produces >= batches / 4, produces
    assert value(after, "sluice_request_duration_seconds_count", request="Produce") == produces
    # Total time splits into the run queue's part and the handler's.
    assert value(after, "sluice_request_queue_seconds_count", request="Produce") == produces
    assert value(after, "sluice_request_local_seconds_count", request="Produce") == produces
    total = value(after, "sluice_request_duration_seconds_sum", request="Produce")
    parts = (value(after, "sluice_request_queue_seconds_sum", request="Produce")
             + value(after, "sluice_request_local_seconds_sum", request="Produce"))
    assert abs(total - parts) <= 1e-6 * produces + 1e-9, (total, parts)
    # The acknowledgement latency per acks value covers every produce.
    assert value(after, "sluice_produce_duration_seconds_count", acks="all") == produces
    accepted = sum(v for (name, labels), v in after.items()
                   if name == "sluice_connections_accepted_total" and ("listener", "PLAINTEXT") in labels)
    assert accepted >= 2, accepted  # the producer's and the consumer's at least
    # Every partition answer's code counts: each produced partition said NONE.
    assert value(after, "kafka_network_requestmetrics_errors_total", request="Produce", error="NONE") >= produces
    # An error is counted under Kafka's name for it.
    future = admin.delete_topics(["no-such-topic"])["no-such-topic"]
    try:
        future.result(TIMEOUT_S)
    except KafkaException:
        pass
    # The group's committed offsets, and its lag (none: it read everything).
    committed = [value(after, "sluice_consumer_group_committed_offset", group="metered", topic=topic,
                       partition=str(p)) for p in range(4)]
    assert committed == [RECORDS // 4] * 4, committed
    lags = [value(after, "sluice_consumer_group_lag", group="metered", topic=topic, partition=str(p))
            for p in range(4)]
    assert lags == [0] * 4, lags
    assert ("sluice_consumer_group_lag", frozenset({"group": "metered", "topic": topic, "partition": "0"}.items())) \
        in after, "lag not exported"
    assert value(after, "kafka_coordinator_group_groupmetadatamanager_numgroups") >= 1
    assert value(after, "sluice_consumer_groups", state="Empty") >= 1  # assign() only: no members
    # A frame over the size limit: the broker closes, and says why.
    with socket.create_connection(("127.0.0.1", broker.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(struct.pack(">i", 0x7FFFFFFF))
        assert sock.recv(16) == b""
    errors = scrape(broker)
    assert value(errors, "kafka_network_requestmetrics_errors_total", request="DeleteTopics",
                 error="UNKNOWN_TOPIC_OR_PARTITION") == 1
    bad_frames = sum(v for (name, labels), v in errors.items()
                     if name == "sluice_connections_closed_by_broker_total" and ("reason", "bad_frame") in labels)
    assert bad_frames == 1, bad_frames
    # Two cores, four partitions: some produce went through a core that
    # does not own its partition (the client's connections land on one or
    # both cores).
    hops = sum(v for (name, labels), v in after.items()
               if name == "sluice_cross_core_calls_total" and ("kind", "produce") in labels)
    assert 0 < hops <= produces, hops
    # acks=all on the default flush policy: durable writes happened.
    flushes = sum(v for (name, _), v in after.items() if name == "sluice_storage_flushes_total")
    assert flushes >= 1
    # Every durable write is in the latency histogram, once.
    timed = sum(v for (name, _), v in after.items() if name == "sluice_storage_flush_duration_seconds_count")
    assert timed == flushes, (timed, flushes)
    assert value(after, "sluice_scrape_cores_missing") == 0
    # A single node leads its own quorum; the topic and its partitions are
    # in the cluster counts (__consumer_offsets too, once a group used it).
    assert value(after, "kafka_controller_kafkacontroller_activecontrollercount") == 1
    assert value(after, "kafka_server_raftmetrics_current_leader") == 0  # node.id defaults to 0
    assert value(after, "kafka_controller_kafkacontroller_offlinepartitionscount") == 0
    assert value(after, "kafka_controller_kafkacontroller_globaltopiccount") >= 1
    assert value(after, "kafka_controller_kafkacontroller_globalpartitioncount") >= 4
    assert value(after, "kafka_controller_kafkacontroller_activebrokercount") == 1
    assert value(after, "sluice_metadata_applied_offset") >= value(before, "sluice_metadata_applied_offset") > 0
    # The topic's creation went through the quorum this node leads.
    assert value(after, "sluice_controller_commit_duration_seconds_count") >= 1


def connections_open(broker):
    return sum(v for (name, _), v in scrape(broker).items() if name == "sluice_connections_open")


def wait_for(condition, what):
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_client_that_resets_or_stops_inside_a_frame_is_not_a_bad_frame(broker):
    def bad_frames():
        return sum(v for (name, labels), v in scrape(broker).items()
                   if name == "sluice_connections_closed_by_broker_total" and ("reason", "bad_frame") in labels)
    wait_for(lambda: connections_open(broker) == 0, "no connections open")
    # Half a size field, then a reset (SO_LINGER 0: RST, not FIN); then half
    # a body, then a plain close.
    for partial, reset in [(b"\x00\x00", True), (struct.pack(">i", 100) + b"x" * 10, False)]:
        sock = socket.create_connection(("127.0.0.1", broker.port), timeout=TIMEOUT_S)
        sock.sendall(partial)
        wait_for(lambda: connections_open(broker) == 1, "the connection to be accepted")
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        wait_for(lambda: connections_open(broker) == 0, "the broker to see the client go")
    assert bad_frames() == 0
    # A size over socket.request.max.bytes still is one.
    with socket.create_connection(("127.0.0.1", broker.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(struct.pack(">i", 0x7FFFFFFF))
        assert sock.recv(16) == b""
    wait_for(lambda: bad_frames() == 1, "the oversized frame to be counted")


def test_status_paths_and_bad_requests(broker):
    assert get(broker, "/v1/status/live")[0] == 200
    assert get(broker, "/v1/status/ready")[0] == 200
    assert get(broker, "/metrics?x=1")[0] == 200
    assert get(broker, "/nope")[0] == 404
    assert raw(broker, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n") == "HTTP/1.1 405 Method Not Allowed"
    assert raw(broker, b"\x16\x03\x01\x00\xa5garbage\r\n\r\n") == "HTTP/1.1 400 Bad Request"
    assert raw(broker, b"GET /metrics") == "HTTP/1.1 400 Bad Request"  # closed before the head ended
    assert raw(broker, b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n") == "HTTP/1.1 431 Request Header Fields Too Large"
    # The Kafka listener still serves, and so does the endpoint.
    metadata = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=TIMEOUT_S)
    assert metadata.brokers
    assert get(broker, "/v1/status/live")[0] == 200


def test_controller_only_node_reports_its_quorum():
    """process.roles=controller: no client listener, but the endpoint says
    ready once the (one-voter) quorum elected this node, and /metrics
    has the quorum's figures and no partitions."""
    with tempfile.TemporaryDirectory() as data_dir:
        controller_port, admin_port = free_port(), free_port()
        settings = ["process.roles=controller", "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
                    f"listeners=CONTROLLER://127.0.0.1:{controller_port}",
                    f"sluice.admin.listen=127.0.0.1:{admin_port}"]
        cmd = [BROKER, "--data-dir", data_dir]
        for setting in settings:
            cmd += ["--set", setting]
        log = tempfile.TemporaryFile(mode="w+")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, text=True)
        try:
            node = types.SimpleNamespace(admin_port=admin_port)
            deadline = time.monotonic() + TIMEOUT_S
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    raise AssertionError(f"exited {proc.returncode}: {log.read()}")
                try:
                    status = get(node, "/v1/status/ready")[0]
                except (ConnectionError, urllib.error.URLError):
                    status = None
                if status == 200:
                    break
                assert time.monotonic() < deadline, f"not ready: {status}"
                time.sleep(0.05)
            samples = scrape(node)
            assert value(samples, "kafka_controller_kafkacontroller_activecontrollercount") == 1
            assert value(samples, "kafka_server_raftmetrics_current_leader") == 1
            assert not any(name == "kafka_log_log_logendoffset" for name, _ in samples)
        finally:
            proc.kill()
            proc.wait()
            log.close()
