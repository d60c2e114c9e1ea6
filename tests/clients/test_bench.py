"""bench against the real broker: a short run per acks setting must finish
with no errors and a well-formed JSON report (no timing is asserted)."""
import json
import os
import subprocess

from conftest import ROOT

BENCH = os.path.join(ROOT, "target", "debug", "bench")


def test_bench_produce_runs_every_acks_setting(broker, tmp_path):
    report = tmp_path / "report.json"
    result = subprocess.run(
        [BENCH, "produce", "--bootstrap", broker.bootstrap, "--acks", "0,1,all",
         "--duration-s", "1", "--warmup-s", "0", "--json", str(report)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(report.read_text())
    assert [run["acks"] for run in data["runs"]] == ["0", "1", "all"]
    for run in data["runs"]:
        assert run["errors"] == 0
        assert run["messages"] > 0
    assert data["runs"][2]["latency_ms"]["p50"] > 0
    assert data["machine"]["cores"] >= 1


def test_bench_rate_mode_and_bad_arguments(broker):
    ok = subprocess.run([BENCH, "produce", "--bootstrap", broker.bootstrap, "--acks", "1",
                         "--rate", "2000", "--duration-s", "1", "--warmup-s", "0"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "acks" in ok.stdout
    bad = subprocess.run([BENCH, "produce", "--bootstrap", broker.bootstrap, "--acks", "2"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "bad acks value" in bad.stderr


def test_bench_consume_reads_every_produced_record(broker, tmp_path):
    from test_confluent import create
    create(broker, "bench-read", 3)
    report = tmp_path / "report.json"
    produced = subprocess.run(
        [BENCH, "produce", "--bootstrap", broker.bootstrap, "--topic", "bench-read",
         "--keep-topic", "--acks", "all", "--duration-s", "1", "--warmup-s", "0",
         "--json", str(report)], capture_output=True, text=True, timeout=120)
    assert produced.returncode == 0, produced.stderr
    runs = json.loads(report.read_text())["runs"]
    # Warm-up messages are not counted in the report; the log holds at
    # least the measured ones.
    measured = runs[0]["messages"]
    read = subprocess.run([BENCH, "consume", "--bootstrap", broker.bootstrap,
                           "--topic", "bench-read", "--repeat", "2"],
                          capture_output=True, text=True, timeout=120)
    assert read.returncode == 0, read.stderr
    rows = [line.split() for line in read.stdout.splitlines()[1:]]
    assert len(rows) == 2
    assert rows[0][1] == rows[1][1], "both reads see the same records"
    assert int(rows[0][1]) >= measured > 0
    missing = subprocess.run([BENCH, "consume", "--bootstrap", broker.bootstrap,
                              "--topic", "no-such-topic"],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0


def test_bench_compare_overlays_reports_in_a_table_and_charts(broker, tmp_path):
    reports = []
    for label in ("first", "second"):
        report = tmp_path / f"{label}.json"
        run = subprocess.run(
            [BENCH, "produce", "--bootstrap", broker.bootstrap, "--topic", f"cmp-{label}",
             "--acks", "1,all", "--duration-s", "1", "--warmup-s", "0", "--label", label,
             "--json", str(report), "--hgrm-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert json.loads(report.read_text())["label"] == label
        reports.append(str(report))
    hgrm = (tmp_path / "first-acks-all.hgrm").read_text()
    assert "Percentile" in hgrm and "#[Max" in hgrm
    # The interval log: a header, then "start,length,max,HISTF..." lines.
    hlog = (tmp_path / "first-acks-all.hlog").read_text().splitlines()
    assert any(line.startswith("#[StartTime") for line in hlog)
    intervals = [line.split(",") for line in hlog if line[:1].isdigit()]
    assert intervals and all(len(i) == 4 and i[3].startswith("HISTF") for i in intervals)
    svg, png = tmp_path / "chart.svg", tmp_path / "chart.png"
    compared = subprocess.run([BENCH, "compare", *reports, "--svg", str(svg), "--png", str(png)],
                              capture_output=True, text=True, timeout=120)
    assert compared.returncode == 0, compared.stderr
    rows = [line.split() for line in compared.stdout.splitlines()[1:]]
    assert [(r[0], r[1]) for r in rows] == [("first", "1"), ("first", "all"),
                                             ("second", "1"), ("second", "all")]
    assert "second acks=all" in svg.read_text()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = subprocess.run([BENCH, "compare", str(tmp_path / "missing.json")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "missing.json" in bad.stderr


def test_bench_consumers_verify_every_record_end_to_end(broker, tmp_path):
    report = tmp_path / "e2e.json"
    run = subprocess.run(
        [BENCH, "produce", "--bootstrap", broker.bootstrap, "--topic", "bench-e2e",
         "--partitions", "3", "--producers", "2", "--consumers", "2", "--acks", "0,1,all",
         "--duration-s", "1", "--warmup-s", "0", "--json", str(report)],
        capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "end to end" in run.stdout
    for r in json.loads(report.read_text())["runs"]:
        e2e = r["e2e"]
        assert e2e["lost"] == 0 and e2e["duplicated"] == 0 and e2e["corrupted"] == 0
        # acks=0 too: each producer ends with a round trip on its
        # connection, so its last sends are in the log before the run reads
        # its drain targets (without it, CI saw 1,968 of 151,728 acks=0
        # records counted by the acks=1 run instead).
        assert e2e["consumed"] >= r["messages"] > 0
        assert e2e["latency_ms"]["p50"] > 0


def test_bench_open_loop_with_linger_sizes_and_a_message_count(broker, tmp_path):
    report = tmp_path / "open.json"
    run = subprocess.run(
        [BENCH, "produce", "--bootstrap", broker.bootstrap, "--topic", "bench-open",
         "--rate", "5000", "--linger-ms", "2", "--message-bytes", "64",
         "--message-bytes-max", "4096", "--messages", "3000", "--producers", "2",
         "--consumers", "1", "--acks", "1", "--warmup-s", "0", "--json", str(report)],
        capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    only = json.loads(report.read_text())["runs"][0]
    assert only["messages"] == 3000, "exactly the count asked for"
    assert only["e2e"]["consumed"] == 3000 and only["e2e"]["lost"] == 0
    # Mean size ~2 KiB, not the fixed 64 bytes.
    assert only["mb_per_s"] * only["seconds"] * 1e6 / 3000 > 1000
    bad = subprocess.run([BENCH, "produce", "--bootstrap", broker.bootstrap,
                          "--message-bytes", "100", "--message-bytes-max", "50"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "message-bytes-max" in bad.stderr


def test_bench_compressed_batches_are_consumed_and_verified(broker, tmp_path):
    for codec in ("gzip", "snappy", "lz4", "zstd"):
        report = tmp_path / f"{codec}.json"
        run = subprocess.run(
            [BENCH, "produce", "--bootstrap", broker.bootstrap, "--topic", f"bench-{codec}",
             "--compression", codec, "--messages", "2000", "--consumers", "1", "--acks", "1",
             "--warmup-s", "0", "--json", str(report)],
            capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, codec + run.stdout + run.stderr
        data = json.loads(report.read_text())
        assert data["parameters"]["compression"] == codec
        e2e = data["runs"][0]["e2e"]
        assert (e2e["consumed"], e2e["lost"], e2e["corrupted"]) == (2000, 0, 0), codec


def test_bench_keyed_messages_spread_by_key_and_are_verified(broker, tmp_path):
    from confluent_kafka import Consumer, TopicPartition
    report = tmp_path / "keys.json"
    run = subprocess.run(
        [BENCH, "produce", "--bootstrap", broker.bootstrap, "--topic", "bench-keys",
         "--keep-topic", "--keys", "10", "--key-distribution", "zipf", "--messages", "3000",
         "--consumers", "1", "--acks", "all", "--warmup-s", "0", "--json", str(report)],
        capture_output=True, text=True, timeout=120)
    # --keep-topic: bench-keys does not exist yet, so bench reports it.
    assert run.returncode != 0 and "bench-keys" in run.stderr
    from test_confluent import create
    create(broker, "bench-keys", 3)
    run = subprocess.run(
        [BENCH, "produce", "--bootstrap", broker.bootstrap, "--topic", "bench-keys",
         "--keep-topic", "--keys", "10", "--key-distribution", "zipf", "--messages", "3000",
         "--consumers", "1", "--acks", "all", "--warmup-s", "0", "--json", str(report)],
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    e2e = json.loads(report.read_text())["runs"][0]["e2e"]
    assert (e2e["consumed"], e2e["lost"], e2e["duplicated"]) == (3000, 0, 0)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "wm"})
    highs = [c.get_watermark_offsets(TopicPartition("bench-keys", p), timeout=30)[1]
             for p in range(3)]
    c.close()
    assert sum(highs) == 3000 and sum(1 for h in highs if h > 0) >= 2, highs


def test_bench_group_consumers_and_its_own_chart(broker, tmp_path):
    report, svg, png = tmp_path / "group.json", tmp_path / "acks.svg", tmp_path / "acks.png"
    run = subprocess.run(
        [BENCH, "produce", "--bootstrap", broker.bootstrap, "--topic", "bench-group",
         "--partitions", "4", "--producers", "2", "--consumers", "2",
         "--consumer-group", "bench-g", "--messages", "4000", "--acks", "1,all",
         "--warmup-s", "0", "--json", str(report), "--svg", str(svg), "--png", str(png)],
        capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    for r in json.loads(report.read_text())["runs"]:
        assert (r["e2e"]["consumed"], r["e2e"]["lost"], r["e2e"]["duplicated"]) == (4000, 0, 0)
    assert "acks=all" in svg.read_text()
    assert png.read_bytes()[:4] == b"\x89PNG"
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})  # must outlive its futures
    listed = admin.list_consumer_groups().result(30)
    groups = {g.group_id for g in listed.valid}
    assert {"bench-g-acks-1", "bench-g-acks-all"} <= groups, groups


def test_bench_reports_the_brokers_own_counters(broker, tmp_path):
    report = tmp_path / "metrics.json"
    run = subprocess.run(
        [BENCH, "produce", "--bootstrap", broker.bootstrap, "--topic", "bench-metrics", "--acks", "all",
         "--messages", "3000", "--warmup-s", "0", "--broker-metrics", f"127.0.0.1:{broker.admin_port}",
         "--json", str(report)],
        capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "broker counters over the measured window" in run.stdout
    only = json.loads(report.read_text())["runs"][0]
    counted = only["broker_metrics"]
    # The window opens as the producers start, so the broker may miss the
    # first batches but never counts more than bench had answered.
    assert 0 < counted["batches"] <= only["batches"], (counted, only["batches"])
    # acks=all on the default flush policy: every batch waited for a
    # durable write, one write covering one or more batches.
    assert 1 <= counted["durable_writes"] <= counted["batches"], counted
    assert counted["produce_requests"] >= counted["batches"] / 4
    bad = subprocess.run([BENCH, "produce", "--bootstrap", broker.bootstrap, "--messages", "10",
                          "--broker-metrics", "127.0.0.1:1"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "--broker-metrics" in bad.stderr
