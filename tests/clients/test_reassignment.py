"""Moving replicas and leaders on a 3-node cluster with Kafka's own tools
(4.1.1 from Maven Central): `kafka-reassign-partitions --execute` moves a
partition's replicas (the new replica catches up as a follower and joins
the ISR, the one left out is deleted from its broker's disk),
`--verify` reports it completed, and `kafka-leader-election --election-type
preferred` moves leadership back to the first replica after a failover.
Every wait polls a condition with a deadline."""
import json
import os

from confluent_kafka import Producer

from test_cluster import (CLIENT_TIMEOUT_S, FORMED_TIMEOUT_S, NONE, NotYet, created, java, metadata,
                          needs_jvm_tools, own_cluster, read_partition, wait_topic, wait_until)

_ = own_cluster  # the fixture, imported for pytest

REASSIGN = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
ELECT = "org.apache.kafka.tools.LeaderElectionCommand"
RECORDS = 300


def produce_all(cluster, topic, count, prefix):
    bootstrap = ",".join(n.bootstrap for n in cluster.live())
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True})
    failures = []
    for i in range(count):
        producer.produce(topic, value=f"{prefix}-{i}".encode(),
                         on_delivery=lambda error, _m: error and failures.append(error))
    assert producer.flush(CLIENT_TIMEOUT_S) == 0, "undelivered records"
    assert failures == [], failures[:3]


@needs_jvm_tools
def test_kafka_reassign_partitions_moves_a_replica_and_preferred_election_moves_leaders(own_cluster, tmp_path):
    cluster = own_cluster
    node = cluster.nodes[1]
    created(node, "moved", assignment={0: [1, 2]})
    wait_topic(cluster, "moved", 1)
    produce_all(cluster, "moved", RECORDS, "before")

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": "moved", "partition": 0, "replicas": [3, 2]}]}))
    started = java(REASSIGN, "--bootstrap-server", node.bootstrap, "--reassignment-json-file", str(plan),
                   "--execute")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "Successfully started partition reassignment for moved-0" in started.stdout, started.stdout

    def moved():
        partition = metadata(node).topics["moved"].partitions[0]
        if sorted(partition.replicas) != [2, 3] or sorted(partition.isr) != [2, 3]:
            raise NotYet(f"moved-0 is {partition}")
        return partition

    wait_until("moved-0 on brokers 2 and 3, both in sync", moved, FORMED_TIMEOUT_S, cluster)
    verified = java(REASSIGN, "--bootstrap-server", node.bootstrap, "--reassignment-json-file", str(plan),
                    "--verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "Reassignment of partition moved-0 is completed." in verified.stdout, verified.stdout

    def deleted():
        if os.path.exists(os.path.join(cluster.nodes[1].data_dir, "moved-0")):
            raise NotYet("broker 1 still has moved-0 on disk")
        return True

    wait_until("broker 1 to delete its replica", deleted, FORMED_TIMEOUT_S, cluster)
    # The new replica has every record: it can lead, and serves them all.
    produce_all(cluster, "moved", RECORDS, "after")
    values = read_partition(node, "moved", 0, 2 * RECORDS)
    assert values == [f"before-{i}".encode() for i in range(RECORDS)] + \
        [f"after-{i}".encode() for i in range(RECORDS)]

    # Failover away from the preferred replica (3), then back with the tool.
    created(node, "elected", assignment={0: [3, 1, 2]})
    wait_topic(cluster, "elected", 1)
    produce_all(cluster, "elected", 10, "e")
    cluster.nodes[3].kill()

    def failed_over():
        partition = metadata(node).topics["elected"].partitions[0]
        if partition.leader in (-1, 3):
            raise NotYet(f"elected-0 is {partition}")
        return partition

    wait_until("another leader for elected-0", failed_over, FORMED_TIMEOUT_S, cluster)
    cluster.nodes[3].start()

    def back_in_sync():
        partition = metadata(node).topics["elected"].partitions[0]
        if sorted(partition.isr) != [1, 2, 3]:
            raise NotYet(f"elected-0 is {partition}")
        return partition

    wait_until("broker 3 back in the ISR of elected-0", back_in_sync, FORMED_TIMEOUT_S, cluster)
    election = java(ELECT, "--bootstrap-server", node.bootstrap, "--election-type", "preferred",
                    "--topic", "elected", "--partition", "0")
    assert election.returncode == 0, election.stdout + election.stderr
    assert "Successfully completed leader election (PREFERRED) for partitions elected-0" in election.stdout, \
        election.stdout
    partition = metadata(node).topics["elected"].partitions[0]
    assert partition.leader == 3, partition
    assert read_partition(node, "elected", 0, 10) == [f"e-{i}".encode() for i in range(10)]
    assert metadata(node).topics["elected"].error == NONE
