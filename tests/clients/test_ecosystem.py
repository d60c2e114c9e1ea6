"""What Kafka users bring along, run unchanged against the broker: Kafka
Streams (tests/java StreamsTest.java), Kafka Connect in distributed mode
with the FileStream connectors, and Kafka's own admin tools, all 4.1.1 from
Maven Central (scripts/setup-test-env.sh fetches them)."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from conftest import ROOT, free_port

JAVA_DIR = os.path.join(ROOT, "tests", "java")
CLASSPATH = os.path.join(JAVA_DIR, "classes") + ":" + os.path.join(JAVA_DIR, "lib", "*")
DEADLINE_S = 120

needs_jvm = pytest.mark.skipif(
    shutil.which("java") is None or not os.path.isfile(os.path.join(JAVA_DIR, "lib", "connect-file-4.1.1.jar")),
    reason="JVM tools not set up (scripts/setup-test-env.sh needs mvn and javac)")


def java(main, *args, timeout=180):
    """Runs a JVM main class from tests/java/lib; warnings and worse only."""
    return subprocess.run(
        ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", CLASSPATH, main, *args],
        capture_output=True, text=True, timeout=timeout)


def wait_until(what, check, deadline_s=DEADLINE_S):
    """Polls `check` until it returns a true value (returned) or the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@needs_jvm
def test_kafka_streams_word_count_with_repartition_and_state_store(broker, tmp_path):
    result = java("sluice.StreamsTest", broker.bootstrap, str(tmp_path / "state"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "streams ok" in result.stdout
    assert "repartition cleanup.policy=delete" in result.stdout
    assert "changelog cleanup.policy=compact" in result.stdout


def rest(port, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read() or b"null")


def rest_up(port):
    try:
        return rest(port, "GET", "/connectors")[0] == 200
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


@needs_jvm
def test_kafka_connect_distributed_moves_1000_lines_through_a_topic(broker, tmp_path):
    port = free_port()
    suffix = str(time.monotonic_ns())
    source_file, sink_file = tmp_path / "in.txt", tmp_path / "out.txt"
    lines = [f"line {i} of the connect test" for i in range(1000)]
    source_file.write_text("\n".join(lines) + "\n")
    worker = tmp_path / "worker.properties"
    worker.write_text("\n".join([
        f"bootstrap.servers={broker.bootstrap}",
        f"group.id=connect-{suffix}",
        "key.converter=org.apache.kafka.connect.storage.StringConverter",
        "value.converter=org.apache.kafka.connect.storage.StringConverter",
        # Connect creates these itself (compacted) and checks their policy.
        f"config.storage.topic=connect-configs-{suffix}",
        f"offset.storage.topic=connect-offsets-{suffix}",
        f"status.storage.topic=connect-status-{suffix}",
        "config.storage.replication.factor=1",
        "offset.storage.replication.factor=1",
        "status.storage.replication.factor=1",
        "offset.flush.interval.ms=1000",
        f"listeners=http://127.0.0.1:{port}",
        "",
    ]))
    log = open(tmp_path / "connect.log", "w")
    connect = subprocess.Popen(
        ["java", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", CLASSPATH,
         "org.apache.kafka.connect.cli.ConnectDistributed", str(worker)],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until("the Connect REST API", lambda: connect.poll() is not None or rest_up(port))
        assert connect.poll() is None, (tmp_path / "connect.log").read_text()
        # One partition, so that the sink must see the source's order.
        from confluent_kafka.admin import AdminClient, NewTopic
        topic = f"connect-data-{suffix}"
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
        rest(port, "POST", "/connectors", {"name": "file-source", "config": {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "tasks.max": "1", "file": str(source_file), "topic": topic}})
        rest(port, "POST", "/connectors", {"name": "file-sink", "config": {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
            "tasks.max": "1", "file": str(sink_file), "topics": topic}})

        def sunk():
            if connect.poll() is not None:
                return "exited"
            if not sink_file.exists():
                return None
            got = sink_file.read_text().splitlines()
            return got if len(got) >= len(lines) else None

        got = wait_until("1000 lines in the sink file", sunk)
        assert got != "exited", (tmp_path / "connect.log").read_text()
        assert got == lines
        status = rest(port, "GET", "/connectors/file-source/status")[1]
        assert status["connector"]["state"] == "RUNNING", status
    finally:
        connect.terminate()
        try:
            connect.wait(timeout=60)
        except subprocess.TimeoutExpired:
            connect.kill()
            connect.wait()
        log.close()


@needs_jvm
def test_kafka_configs_sets_and_describes_cleanup_policy_compact(broker):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("configs-tool", 1, 1)])["configs-tool"].result(30)
    common = ["--bootstrap-server", broker.bootstrap, "--entity-type", "topics", "--entity-name", "configs-tool"]
    altered = java("kafka.admin.ConfigCommand", *common, "--alter", "--add-config", "cleanup.policy=compact")
    assert altered.returncode == 0, altered.stdout + altered.stderr
    described = java("kafka.admin.ConfigCommand", *common, "--describe")
    assert described.returncode == 0, described.stdout + described.stderr
    assert "cleanup.policy=compact" in described.stdout, described.stdout
    refused = java("kafka.admin.ConfigCommand", *common, "--alter", "--add-config", "cleanup.policy=shred")
    assert refused.returncode != 0
    assert "cleanup.policy" in refused.stdout + refused.stderr


@needs_jvm
def test_kafka_delete_records_and_log_dirs_tools(broker, tmp_path):
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("tools-topic", 2, 1)])["tools-topic"].result(30)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(100):
        producer.produce("tools-topic", value=f"v{i}".encode(), partition=i % 2)
    producer.flush(30)

    offsets = tmp_path / "delete.json"
    offsets.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": "tools-topic", "partition": 0, "offset": 20}]}))
    deleted = java("org.apache.kafka.tools.DeleteRecordsCommand", "--bootstrap-server", broker.bootstrap,
                   "--offset-json-file", str(offsets))
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert "partition: tools-topic-0" in deleted.stdout and "low_watermark: 20" in deleted.stdout, deleted.stdout

    dirs = java("org.apache.kafka.tools.LogDirsCommand", "--bootstrap-server", broker.bootstrap,
                "--describe", "--topic-list", "tools-topic")
    assert dirs.returncode == 0, dirs.stdout + dirs.stderr
    # The tool prints a JSON line: one log dir holding both partitions.
    report = json.loads(next(line for line in dirs.stdout.splitlines() if line.startswith("{")))
    (log_dir,) = report["brokers"][0]["logDirs"]
    assert log_dir["error"] is None
    assert sorted(p["partition"] for p in log_dir["partitions"]) == ["tools-topic-0", "tools-topic-1"]
    assert all(p["size"] > 0 for p in log_dir["partitions"])
