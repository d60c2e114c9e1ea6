"""Crash soak on one broker: an idempotent acks=all producer
(test_replication's Workload) and a consumer group committing what it
reads run while the broker is SIGKILLed at random points and restarted on
the same port and data dir, round after round.

Checked, Jepsen-style, after the last round:
- every acknowledged record is read once, at its acknowledged offset; no
  record read was never sent; per-key order (test_replication's
  check_history, the checker of the replication soak);
- committed group offsets never go backwards: after every restart the
  committed offset of each partition is at least every commit the broker
  acknowledged before the kill, and at least what the previous restart
  showed;
- liveness: every record is delivered in the end (librdkafka's retries),
  the group commits again after every restart, no fatal producer error.

SLUICE_CRASH_ROUNDS sets the rounds (20 by default, what CI runs;
scripts/soak-crash.sh runs 1,000), SLUICE_CRASH_SEED the kill points
(printed), SLUICE_CRASH_BENCH a `bench` binary whose `bench produce`
(acks=all, another topic) adds load in every round and dies with the
broker."""
import collections
import os
import random
import subprocess
import threading
import time

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from test_cluster import NotYet, wait_until
from test_replication import SHOWN_MAX, Workload, check_history, read_everything

ROUNDS = int(os.environ.get("SLUICE_CRASH_ROUNDS", "20"))
SEED = int(os.environ.get("SLUICE_CRASH_SEED", str(random.randrange(1 << 30))))
BENCH = os.environ.get("SLUICE_CRASH_BENCH")
TOPIC, PARTITIONS = "soak", 3
BENCH_TOPIC = "soak-bench"  # bench's load, unchecked
# Bounded on disk over a thousand rounds: retention deletes its old segments.
BENCH_TOPIC_CONFIG = {"retention.bytes": str(256 << 20), "segment.bytes": str(32 << 20)}
BENCH_RATE = "20000"  # records/s (1 KiB each), so the checked workload keeps a share of the 2 cores
GROUP = "soak-group"
KILL_DELAY_MAX_S = 0.5  # a random point in the load after the round's progress
PROGRESS_TIMEOUT_S = 60  # acks (or commits) growing again after a restart
# A restarted broker registers once its killed incarnation's session has
# expired (Kafka's DUPLICATE_BROKER_REGISTRATION until then): a short
# session keeps a round to seconds.
SETTINGS = ["group.initial.rebalance.delay.ms=0", "group.min.session.timeout.ms=1000",
            "log.retention.check.interval.ms=2000", "broker.session.timeout.ms=3000",
            "broker.heartbeat.interval.ms=500"]


class OneNode:
    """The one broker in the shape test_replication's helpers take."""

    def __init__(self, broker):
        self.broker = broker

    def live(self):
        return [self.broker]

    def log_tails(self):
        return "".join(self.broker.log_lines()[-40:])


class Committer:
    """A group member in a thread: reads the topic and, after every poll
    that returned records, commits the next offsets synchronously;
    remembers every commit the broker acknowledged and every acknowledged
    commit lower than an earlier one."""

    def __init__(self, bootstrap):
        self.config = {"bootstrap.servers": bootstrap, "group.id": GROUP, "auto.offset.reset": "earliest",
                       "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 300,
                       "reconnect.backoff.ms": 100, "reconnect.backoff.max.ms": 1000}
        self.lock = threading.Lock()
        self.acked = collections.Counter()  # partition -> highest acknowledged commit
        self.commits = 0  # acknowledged commit requests
        self.backwards = []
        self.crash = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        try:
            consumer = Consumer(self.config)
            consumer.subscribe([TOPIC])
            while not self.stopping.is_set():
                messages = consumer.consume(200, 0.2)
                nexts = {}
                for message in messages:
                    if message.error() is None:
                        nexts[message.partition()] = message.offset() + 1
                if not nexts:
                    continue
                offsets = [TopicPartition(TOPIC, p, o) for p, o in nexts.items()]
                try:
                    answered = consumer.commit(offsets=offsets, asynchronous=False)
                except KafkaException:
                    continue  # the broker is down or the group rebalancing: not acknowledged
                with self.lock:
                    for tp in answered or []:
                        if tp.error is not None:
                            continue
                        if tp.offset < self.acked[tp.partition]:
                            self.backwards.append((tp.partition, self.acked[tp.partition], tp.offset))
                        self.acked[tp.partition] = max(self.acked[tp.partition], tp.offset)
                    self.commits += 1
            consumer.close()
        except Exception as error:  # reported by stop()
            self.crash = error

    def snapshot(self):
        with self.lock:
            return collections.Counter(self.acked), self.commits

    def wait_commit(self, node, what):
        _, before = self.snapshot()

        def committed():
            if self.crash is not None:
                raise AssertionError(f"the committer failed: {self.crash!r}")
            _, now = self.snapshot()
            if now <= before:
                raise NotYet(f"{now} acknowledged commits, {before} before")
            return True

        wait_until(f"an acknowledged group commit {what}", committed, PROGRESS_TIMEOUT_S, node)

    def stop(self):
        self.stopping.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "the committer thread did not finish"
        assert self.crash is None, f"the committer failed: {self.crash!r}"


def committed_offsets(bootstrap, node):
    """The group's committed offsets as OffsetFetch gives them after a
    restart (the coordinator may still be loading: polled)."""
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False})
    try:
        def fetched():
            tps = reader.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=10)
            errors = [tp.error for tp in tps if tp.error is not None]
            if errors:
                raise NotYet(f"OffsetFetch errors: {errors}")
            return {tp.partition: tp.offset for tp in tps}

        return wait_until("the group's committed offsets", fetched, PROGRESS_TIMEOUT_S, node)
    finally:
        reader.close()


def start_bench(broker):
    if not BENCH:
        return None
    return subprocess.Popen([BENCH, "produce", "--bootstrap", broker.bootstrap, "--topic", BENCH_TOPIC,
                             "--keep-topic", "--acks", "all", "--producers", "1", "--rate", BENCH_RATE,
                             "--duration-s", "3600", "--warmup-s", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bench_records(broker):
    """Records in bench's topic (its log ends; retention took the oldest)."""
    reader = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "soak-bench-reader"})
    try:
        return sum(reader.get_watermark_offsets(TopicPartition(BENCH_TOPIC, p), timeout=10)[1] for p in range(2))
    finally:
        reader.close()


def stop_bench(bench):
    if bench is not None:
        bench.kill()
        bench.wait()


def test_sigkill_soak_loses_nothing_acknowledged(broker_factory):
    rng = random.Random(SEED)
    print(f"seed {SEED}, {ROUNDS} rounds, bench load: {BENCH or 'no'}")
    broker = broker_factory(settings=SETTINGS)
    node = OneNode(broker)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for future in admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1), NewTopic(BENCH_TOPIC, 2, 1, config=BENCH_TOPIC_CONFIG)]).values():
        future.result(30)

    workload = Workload(broker.bootstrap, {TOPIC: PARTITIONS})
    committer = Committer(broker.bootstrap)
    workload.start()
    committer.thread.start()
    seen = {p: -1001 for p in range(PARTITIONS)}  # committed offsets after the last restart
    bench = start_bench(broker)
    try:
        workload.wait_progress(node, "before the first kill")
        committer.wait_commit(node, "before the first kill")
        for round_index in range(ROUNDS):
            time.sleep(rng.uniform(0, KILL_DELAY_MAX_S))  # the kill point, not a wait for anything
            broker.kill()
            acked_commits, _ = committer.snapshot()
            stop_bench(bench)
            broker.start(keep_port=True)
            bench = start_bench(broker)
            committed = committed_offsets(broker.bootstrap, node)
            for p in range(PARTITIONS):
                assert committed[p] >= acked_commits[p], \
                    (f"round {round_index}: {TOPIC}-{p} committed offset {committed[p]} after the restart, "
                     f"{acked_commits[p]} was acknowledged before the kill")
                assert committed[p] >= seen[p], \
                    f"round {round_index}: {TOPIC}-{p} committed offset went back from {seen[p]} to {committed[p]}"
            seen = committed
            workload.wait_progress(node, f"after restart {round_index}")
            committer.wait_commit(node, f"after restart {round_index}")
            if round_index % 10 == 9:
                print(f"round {round_index + 1}: {len(workload.acked)} acknowledged, committed {committed}")
    finally:
        stop_bench(bench)
        workload.stopping.set()
        committer.stopping.set()
    workload.stop()
    committer.stop()
    assert not committer.backwards, f"acknowledged commits that went back: {committer.backwards[:SHOWN_MAX]}"

    ends, read = read_everything(node, {TOPIC: PARTITIONS})
    problems = check_history(workload.sent, workload.acked, ends, read)
    summary = (f"seed {SEED}, {ROUNDS} rounds: {len(workload.sent)} sent, {len(workload.acked)} acknowledged, "
               f"{len(workload.failed)} failed, {sum(len(r) for r in read.values())} read, ends {ends}")
    if BENCH:
        summary += f"; bench load: {bench_records(broker)} records of 1 KiB"
    print(summary)
    assert not problems, f"{len(problems)} problems ({summary}):\n" + "\n".join(problems[:SHOWN_MAX])
    assert not workload.failed, f"{summary}; failed deliveries: {list(workload.failed.items())[:5]}"
