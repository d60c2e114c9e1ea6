#!/usr/bin/env python3
"""Connection floods against one broker, outside CI: what each costs in
broker memory (VmRSS) and in a well-behaved client's latency (`bench
produce` at a fixed rate on its own connections, p50/p99/p99.9).

Phases, each on a fresh broker (release build, --cores 1, fresh data dir):
  baseline    no flood
  idle        10,000 connections, each answered one ApiVersions, then silent
  slowloris   1,000 connections, each sending a frame header that claims
              100 MiB (socket.request.max.bytes) and then one byte a second
  non-reader  100 connections, each pipelining 1 MiB produce requests
              and never reading an answer (with and without
              queued.max.request.bytes=268435456)

    .venv/bin/python scripts/bench-flood.py [--broker target/release/broker]
        [--bench target/release/bench] [--json target/flood.json] [--only NAME]

Prints one row per phase: broker RSS before the flood, with the flood
held, and the bench figures taken while it is held."""
import argparse
import json
import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

READY_TIMEOUT_S = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def frame(api_key, version, body, correlation=1, client=b"flood"):
    header = struct.pack(">hhih", api_key, version, correlation, len(client)) + client
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def api_versions():
    return frame(18, 0, b"")


def record_batch(value):
    """One uncompressed record batch v2 holding `value` (kafka-python builds it)."""
    from kafka.record.memory_records import MemoryRecordsBuilder
    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=len(value) + 1024)
    builder.append(0, None, value, headers=[])
    builder.close()
    return bytes(builder.buffer())


def produce_v3(topic, records):
    t = topic.encode()
    body = (struct.pack(">h", -1)  # transactional id: null
            + struct.pack(">hi", 1, 30000)  # acks=1, timeout
            + struct.pack(">i", 1) + struct.pack(">h", len(t)) + t
            + struct.pack(">i", 1) + struct.pack(">i", 0) + struct.pack(">i", len(records)) + records)
    return frame(0, 3, body)


class Broker:
    def __init__(self, binary, settings):
        self.dir = tempfile.TemporaryDirectory()
        self.port = free_port()
        cmd = [binary, "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.dir.name, "--cores", "1",
               "--set", "sluice.admin.listen="]
        for setting in settings:
            cmd += ["--set", setting]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        ready = threading.Event()

        def drain():
            for line in self.proc.stderr:
                if "sluice broker ready" in line:
                    ready.set()

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(READY_TIMEOUT_S):
            self.stop()
            raise RuntimeError("broker did not become ready")

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.dir.cleanup()


def connect(broker):
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_answer(s):
    size = struct.unpack(">i", recv_exact(s, 4))[0]
    recv_exact(s, size)


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def flood_idle(broker, count=10_000):
    held = []
    for _ in range(count):
        s = connect(broker)
        s.sendall(api_versions())
        read_answer(s)
        held.append(s)
    return held, None


def flood_slowloris(broker, count=1_000):
    held = []
    for _ in range(count):
        s = connect(broker)
        s.sendall(struct.pack(">i", 100 * 1024 * 1024))  # claims socket.request.max.bytes
        held.append(s)
    stop = threading.Event()

    def trickle():
        while not stop.wait(1):
            for s in held:
                try:
                    s.send(b"\x00")
                except OSError:
                    pass

    threading.Thread(target=trickle, daemon=True).start()
    return held, stop


def flood_non_readers(broker, count=100, requests_each=64):
    request = produce_v3("flood", record_batch(b"x" * (1024 * 1024 - 200)))
    held = []
    stop = threading.Event()

    def pipeline(s):
        s.setblocking(True)
        s.settimeout(None)
        for _ in range(requests_each):
            if stop.is_set():
                return
            try:
                s.sendall(request)  # blocks once the broker stops reading
            except OSError:
                return

    for _ in range(count):
        s = connect(broker)
        held.append(s)
        threading.Thread(target=pipeline, args=(s,), daemon=True).start()
    return held, stop


def run_bench(bench, broker, seconds):
    out = tempfile.NamedTemporaryFile(suffix=".json", delete=False)
    out.close()
    subprocess.run([bench, "produce", "--bootstrap", broker.bootstrap, "--topic", "side", "--acks", "all",
                    "--partitions", "1", "--producers", "1", "--rate", "5000", "--duration-s", str(seconds),
                    "--warmup-s", "2", "--json", out.name], check=True, stdout=subprocess.DEVNULL)
    with open(out.name) as f:
        run = json.load(f)["runs"][0]
    os.unlink(out.name)
    return run


def phase(name, args, settings, flood):
    broker = Broker(args.broker, settings)
    try:
        if flood is flood_non_readers:
            from confluent_kafka.admin import AdminClient, NewTopic
            admin = AdminClient({"bootstrap.servers": broker.bootstrap})
            admin.create_topics([NewTopic("flood", 1, 1)])["flood"].result(30)
        before = rss_kib(broker.proc.pid)
        held, stop = flood(broker) if flood else ([], None)
        time.sleep(3) if flood else None  # let the flood settle before measuring (not a synchronisation)
        during = rss_kib(broker.proc.pid)
        run = run_bench(args.bench, broker, args.seconds)
        peak = max(during, rss_kib(broker.proc.pid))
        alive = broker.proc.poll() is None
        if stop:
            stop.set()
        for s in held:
            s.close()
        lat = run["latency_ms"]
        row = {"phase": name, "settings": settings, "connections": len(held), "rss_before_mib": before / 1024,
               "rss_flooded_mib": peak / 1024, "bench_mb_per_s": run["mb_per_s"], "p50_ms": lat["p50"],
               "p99_ms": lat["p99"], "p99.9_ms": lat["p99.9"], "bench_errors": run["errors"],
               "broker_alive": alive}
        print(f"{name:24} conns {len(held):6}  RSS {before / 1024:7.1f} -> {peak / 1024:7.1f} MiB  "
              f"bench {run['mb_per_s']:.1f} MB/s p50 {lat['p50']:.3f} p99 {lat['p99']:.3f} "
              f"p99.9 {lat['p99.9']:.3f} ms errors {run['errors']}", flush=True)
        return row
    finally:
        broker.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", default="target/release/broker")
    parser.add_argument("--bench", default="target/release/bench")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--json")
    parser.add_argument("--only", help="run only the phases whose name contains this (e.g. non-reader)")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 12_000:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard}: need 12000 for 10,000 connections")
    phases = [
        ("baseline", [], None),
        # max.connections' default is 10,000: room for the side producer.
        ("idle x10000", ["max.connections=12000"], flood_idle),
        ("slowloris x1000", [], flood_slowloris),
        ("non-reader x100", [], flood_non_readers),
        ("non-reader x100 bounded", ["queued.max.request.bytes=268435456"], flood_non_readers),
    ]
    rows = [phase(name, args, settings, flood) for name, settings, flood in phases
            if not args.only or args.only in name]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
