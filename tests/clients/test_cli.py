"""The `sluice` CLI against the real broker: every command's happy path and
its main error path, and `log verify` on a corrupted copy of a real
segment."""
import json
import os
import shutil
import subprocess

from conftest import ROOT

SLUICE = os.path.join(ROOT, "target", "debug", "sluice")


def sluice(broker, *args, stdin=None, ok=True):
    env = dict(os.environ, SLUICE_BOOTSTRAP=broker.bootstrap if broker else "127.0.0.1:1")
    result = subprocess.run([SLUICE, *args], input=stdin, capture_output=True, text=True,
                            timeout=60, env=env)
    if ok:
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        assert result.returncode != 0, result.stdout
    return result


def test_topic_commands(broker):
    sluice(broker, "topic", "create", "cli-t", "-p", "3", "-c", "retention.ms=3600000")
    err = sluice(broker, "topic", "create", "cli-t", ok=False)
    assert "TopicAlreadyExists" in err.stderr
    listed = json.loads(sluice(broker, "topic", "list", "--format", "json").stdout)
    assert {"name": "cli-t", "partitions": 3, "replicas": 1, "internal": False} in listed
    assert all(not t["internal"] for t in listed)
    described = json.loads(sluice(broker, "topic", "describe", "cli-t", "--format", "json").stdout)
    assert [p["partition"] for p in described[0]["partitions"]] == [0, 1, 2]
    assert "retention.ms=3600000" in described[0]["configs"]
    sluice(broker, "topic", "alter-config", "cli-t", "--set", "retention.ms=1000")
    described = json.loads(sluice(broker, "topic", "describe", "cli-t", "--format", "json").stdout)
    assert "retention.ms=1000" in described[0]["configs"]
    bad = sluice(broker, "topic", "alter-config", "cli-t", "--set", "retention.ms=soon", ok=False)
    assert "InvalidConfig" in bad.stderr
    sluice(broker, "topic", "add-partitions", "cli-t", "--count", "5")
    shrink = sluice(broker, "topic", "add-partitions", "cli-t", "--count", "2", ok=False)
    assert "InvalidPartitions" in shrink.stderr
    assert "5" in sluice(broker, "topic", "list").stdout
    missing = sluice(broker, "topic", "describe", "cli-nope", ok=False)
    assert "UnknownTopicOrPartition" in missing.stderr
    sluice(broker, "topic", "delete", "cli-t")
    again = sluice(broker, "topic", "delete", "cli-t", ok=False)
    assert "UnknownTopicOrPartition" in again.stderr


def test_produce_and_consume(broker):
    sluice(broker, "topic", "create", "cli-data", "-p", "2")
    lines = "".join(f"key{i}:value{i}\n" for i in range(20))
    produced = json.loads(sluice(broker, "produce", "cli-data", "-K", ":", "-H", "src=cli",
                                 "--compression", "zstd", "--format", "json", stdin=lines).stdout)
    assert produced["produced"] == 20
    records = [json.loads(line) for line in
               sluice(broker, "consume", "cli-data", "-e", "--format", "json").stdout.splitlines()]
    assert sorted(r["value"] for r in records) == sorted(f"value{i}" for i in range(20))
    assert all(r["headers"] == {"src": "cli"} for r in records)
    # Same key, same partition (murmur2, as the Java client).
    by_key = {r["key"]: r["partition"] for r in records}
    again = [json.loads(line) for line in sluice(
        broker, "produce", "cli-data", "-K", ":", "--format", "json", stdin="key3:x\n").stdout.splitlines()]
    assert list(again[0]["offsets"].keys()) == [str(by_key["key3"])]
    text = sluice(broker, "consume", "cli-data", "-p", "0", "--from", "offset:1", "-n", "2",
                  "--print", "partition,offset").stdout.splitlines()
    assert [line.split("\t")[:2] for line in text] == [["0", "1"], ["0", "2"]]
    assert sluice(broker, "consume", "cli-data", "--from", "end", "-e").stdout == ""
    bad = sluice(broker, "consume", "cli-data", "--from", "yesterday", ok=False)
    assert "--from yesterday" in bad.stderr
    unknown = sluice(broker, "produce", "cli-nope", stdin="x\n", ok=False)
    assert "UnknownTopicOrPartition" in unknown.stderr


def test_group_commands(broker):
    sluice(broker, "topic", "create", "cli-g", "-p", "2")
    sluice(broker, "produce", "cli-g", stdin="".join(f"v{i}\n" for i in range(10)))
    first = sluice(broker, "consume", "cli-g", "--group", "cli-group", "-e").stdout.splitlines()
    assert len(first) == 10
    assert sluice(broker, "consume", "cli-g", "--group", "cli-group", "-e").stdout == "", \
        "the group resumes from its commits"
    listed = json.loads(sluice(broker, "group", "list", "--format", "json").stdout)
    assert {"group": "cli-group", "protocol_type": "consumer", "state": "Empty"} in listed
    described = json.loads(sluice(broker, "group", "describe", "cli-group", "--format", "json").stdout)
    assert sum(p["committed"] for p in described["partitions"]) == 10
    assert all(p["lag"] == 0 for p in described["partitions"])
    sluice(broker, "group", "seek", "cli-group", "--topic", "cli-g", "--to", "earliest")
    described = json.loads(sluice(broker, "group", "describe", "cli-group", "--format", "json").stdout)
    assert sum(p["lag"] for p in described["partitions"]) == 10
    bad = sluice(broker, "group", "seek", "cli-group", "--topic", "cli-g", "--to", "sometime", ok=False)
    assert "--from sometime" in bad.stderr or "sometime" in bad.stderr


def test_group_seek_refuses_a_group_with_members(broker):
    from confluent_kafka import Consumer
    sluice(broker, "topic", "create", "cli-busy", "-p", "1")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "busy",
                  "session.timeout.ms": 6000})
    c.subscribe(["cli-busy"])
    try:
        for _ in range(100):
            c.poll(0.1)
            if c.assignment():
                break
        assert c.assignment()
        refused = sluice(broker, "group", "seek", "busy", "--topic", "cli-busy", "--to", "latest", ok=False)
        assert "active members" in refused.stderr
        described = json.loads(sluice(broker, "group", "describe", "busy", "--format", "json").stdout)
        assert described["state"] == "Stable" and len(described["members"]) == 1
        assert described["partitions"][0]["member"] is not None
    finally:
        c.close()


def test_cluster_commands(broker):
    info = json.loads(sluice(broker, "cluster", "info", "--format", "json").stdout)
    assert info["brokers"] == [f"0@{broker.bootstrap}"]
    assert info["offline_partitions"] == 0
    health = json.loads(sluice(broker, "cluster", "health", "--format", "json").stdout)
    assert health["healthy"] is True
    down = sluice(None, "cluster", "health", ok=False)
    assert "cannot reach a broker at 127.0.0.1:1" in down.stderr


def test_log_dump_and_verify_a_corrupted_copy(broker_factory, tmp_path):
    broker = broker_factory(data_dir=str(tmp_path / "data"))
    sluice(broker, "topic", "create", "cli-log", "-p", "1")
    for batch in range(5):
        sluice(broker, "produce", "cli-log", stdin="".join(f"b{batch}-r{i}\n" for i in range(50)))
    broker.stop()
    segment_dir = tmp_path / "data" / "cli-log-0"
    verified = json.loads(sluice(None, "log", "verify", str(segment_dir), "--format", "json").stdout)
    assert verified[0]["status"] == "ok" and verified[0]["records"] == 250
    segment = segment_dir / "00000000000000000000.log"
    batches = json.loads(sluice(None, "log", "dump", str(segment), "--format", "json").stdout)
    assert [b["records"] for b in batches] == [50] * 5
    copy = tmp_path / "copy"
    shutil.copytree(segment_dir, copy)
    damaged = copy / "00000000000000000000.log"
    data = bytearray(damaged.read_bytes())
    third = batches[2]["position"]
    data[third + 100] ^= 0xFF
    damaged.write_bytes(bytes(data))
    failed = sluice(None, "log", "verify", str(copy), ok=False)
    assert f"first bad batch at byte {third}" in failed.stderr
    dumped = sluice(None, "log", "dump", str(damaged), ok=False)
    assert len(dumped.stdout.splitlines()) == 1 + 2, "the two good batches are listed"
    # An index entry pointing into the middle of a batch.
    indexed = tmp_path / "indexed"
    shutil.copytree(segment_dir, indexed)
    (indexed / "00000000000000000000.index").write_bytes(
        (0).to_bytes(4, "big") + (7).to_bytes(4, "big"))
    bad_index = sluice(None, "log", "verify", str(indexed), ok=False)
    assert "index: entry 0" in bad_index.stderr
    missing = sluice(None, "log", "verify", str(tmp_path / "nothing"), ok=False)
    assert "nothing" in missing.stderr


def test_consume_group_members_share_the_partitions(broker):
    import signal
    import threading
    import time
    sluice(broker, "topic", "create", "cli-share", "-p", "4")
    values = {f"s{i}" for i in range(40)}
    sluice(broker, "produce", "cli-share", stdin="".join(f"{v}\n" for v in sorted(values)))
    env = dict(os.environ, SLUICE_BOOTSTRAP=broker.bootstrap)
    procs, outputs = [], []

    def start():
        p = subprocess.Popen([SLUICE, "consume", "cli-share", "--group", "sharers"],
                             stdout=subprocess.PIPE, text=True, env=env)
        lines = []
        threading.Thread(target=lambda: lines.extend(p.stdout), daemon=True).start()
        procs.append(p)
        outputs.append(lines)

    def described():
        return json.loads(sluice(broker, "group", "describe", "sharers", "--format", "json").stdout)

    def wait_for(condition, what):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    try:
        start()
        wait_for(lambda: described()["state"] == "Stable" and len(described()["members"]) == 1,
                 "the first member")
        start()
        wait_for(lambda: len({p["member"] for p in described()["partitions"]
                              if p["member"]}) == 2 and described()["state"] == "Stable",
                 "two members sharing the partitions")
        assert sorted(m["assigned"] for m in described()["members"]) == [2, 2]
        wait_for(lambda: sum(len(o) for o in outputs) >= len(values), "every record read")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=30)
    read = [line.strip() for o in outputs for line in o]
    assert sorted(read) == sorted(values), "every record once across the members"


def test_every_network_command_says_when_the_broker_is_down():
    for args in (["topic", "list"], ["topic", "create", "x"], ["produce", "x"],
                 ["consume", "x", "-e"], ["group", "list"], ["group", "describe", "g"],
                 ["cluster", "info"]):
        down = sluice(None, *args, stdin="", ok=False)
        assert "cannot reach a broker at 127.0.0.1:1" in down.stderr, args
