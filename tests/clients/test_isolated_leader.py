"""A partition leader cut off from the controller quorum, but not from its
followers or its clients, stops acknowledging acks=all writes, and nothing
it acknowledged is lost: the followers go over to the leader the
controller elects (at a higher leader epoch) and the old leader's
acknowledgements all need them, so no two leaders acknowledge at one
epoch. After the cut heals, the old leader truncates what only it had and
rejoins the ISR, and the three logs are equal.

Node 1 runs in a network namespace this test creates, with two veth pairs
of its own: one carries client and replication traffic, the other the
controller traffic, and the cut is that second link going down. Nodes 2
and 3 listen on the host ends of those links. Only those test-made links
and namespaces carry the traffic; everything is removed at the end. Needs
root and `ip netns` (skipped without)."""
import hashlib
import os
import random
import subprocess
import time

import pytest

from test_cluster import (FORMED_TIMEOUT_S, NONE, Cluster, NotYet, created, fetch, metadata, produce,
                          read_partition, wait_topic, wait_until)

TOPIC = "isolated"
PRODUCE_TIMEOUT_MS = 2000  # acks=all answered or REQUEST_TIMED_OUT within this


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class Namespace:
    """A network namespace with a client link and a controller link to the
    host, each a veth pair on a /24 of its own."""

    def __init__(self):
        tag = f"{os.getpid() % 10000}{random.randrange(100)}"
        self.name = f"sluice-iso-{tag}"
        third = random.randrange(10, 250)
        self.client_net, self.controller_net = f"10.213.{third}", f"10.214.{third}"
        self.links = [(f"slc{tag}", f"slcn{tag}", self.client_net),
                      (f"slk{tag}", f"slkn{tag}", self.controller_net)]

    def create(self):
        ip("netns", "add", self.name)
        ip("netns", "exec", self.name, "ip", "link", "set", "lo", "up")
        for host_end, ns_end, net in self.links:
            ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
            ip("link", "set", ns_end, "netns", self.name)
            ip("addr", "add", f"{net}.1/24", "dev", host_end)
            ip("link", "set", host_end, "up")
            ip("netns", "exec", self.name, "ip", "addr", "add", f"{net}.2/24", "dev", ns_end)
            ip("netns", "exec", self.name, "ip", "link", "set", ns_end, "up")

    def controller_link(self, up):
        host_end = self.links[1][0]
        ip("link", "set", host_end, "up" if up else "down")

    def remove(self):
        for host_end, _, _ in self.links:
            ip("link", "del", host_end, check=False)
        ip("netns", "del", self.name, check=False)


@pytest.fixture
def namespace():
    if os.geteuid() != 0:
        pytest.skip("needs root for ip netns")
    ns = Namespace()
    try:
        ns.create()
    except (OSError, subprocess.CalledProcessError) as error:
        ns.remove()
        pytest.skip(f"ip netns unavailable: {error}")
    yield ns
    ns.remove()


def log_digest(node, partition=0):
    """sha256 of the concatenated segment files of a partition (node stopped)."""
    directory = os.path.join(node.data_dir, f"{TOPIC}-{partition}")
    digest = hashlib.sha256()
    for name in sorted(n for n in os.listdir(directory) if n.endswith(".log")):
        with open(os.path.join(directory, name), "rb") as f:
            digest.update(f.read())
    return digest.hexdigest()


def test_a_leader_cut_off_from_the_controller_stops_acknowledging_and_loses_nothing(namespace):
    ns = namespace
    placement = {1: (f"{ns.client_net}.2", f"{ns.controller_net}.2", ("ip", "netns", "exec", ns.name))}
    for i in (2, 3):
        placement[i] = (f"{ns.client_net}.1", f"{ns.controller_net}.1", ())
    cluster = Cluster(settings=["replica.lag.time.max.ms=30000"], placement=placement)
    try:
        cluster.start()
        leader, followers = cluster.nodes[1], [cluster.nodes[2], cluster.nodes[3]]
        created(followers[0], TOPIC, assignment={0: [1, 2, 3]})
        before = wait_topic(cluster, TOPIC, 1)[0]
        assert before.leader == 1 and sorted(before.isr) == [1, 2, 3], before

        acknowledged = []  # values the old leader acknowledged with acks=all
        for i in range(20):
            value = b"before-%d" % i
            error, _ = produce(leader, TOPIC, 0, [value], timeout_ms=PRODUCE_TIMEOUT_MS)
            assert error == NONE, f"acks=all before the cut: error {error}"
            acknowledged.append(value)

        ns.controller_link(up=False)
        cut_at = time.monotonic()

        def elected():
            # Keep writing to the old leader while the controller replaces it.
            value = b"during-%d" % len(acknowledged)
            error, _ = produce(leader, TOPIC, 0, [value], timeout_ms=PRODUCE_TIMEOUT_MS)
            if error == NONE:
                acknowledged.append(value)
            now = metadata(followers[0]).topics[TOPIC].partitions[0]
            if now.leader in (-1, 1):
                raise NotYet(f"still {now} after {time.monotonic() - cut_at:.1f}s")
            return now

        after = wait_until("a new leader for the cut-off one", elected, FORMED_TIMEOUT_S, cluster)
        assert 1 not in after.isr, after
        # From now on the old leader cannot gather its ISR: every acks=all
        # write to it is refused or times out, however long it still thinks
        # it leads.
        for i in range(3):
            error, _ = produce(leader, TOPIC, 0, [b"late-%d" % i], timeout_ms=PRODUCE_TIMEOUT_MS)
            assert error != NONE, "the cut-off leader acknowledged an acks=all write after its replacement"
        new_leader = cluster.nodes[after.leader]
        error, _ = produce(new_leader, TOPIC, 0, [b"new-leader"], timeout_ms=PRODUCE_TIMEOUT_MS)
        assert error == NONE, f"acks=all on the new leader: error {error}"
        acknowledged.append(b"new-leader")

        ns.controller_link(up=True)

        def rejoined():
            now = metadata(new_leader).topics[TOPIC].partitions[0]
            if sorted(now.isr) != [1, 2, 3]:
                raise NotYet(f"{now}")
            return now

        wait_until("the old leader back in the ISR", rejoined, FORMED_TIMEOUT_S, cluster)
        # A last write that every replica must have before it is acknowledged.
        error, _ = produce(new_leader, TOPIC, 0, [b"marker"], timeout_ms=PRODUCE_TIMEOUT_MS)
        assert error == NONE, f"marker: error {error}"
        acknowledged.append(b"marker")

        error, high_watermark = fetch(new_leader, TOPIC, 0)
        assert error == NONE, f"fetch: error {error}"
        values = read_partition(new_leader, TOPIC, 0, high_watermark)
        assert len(values) == high_watermark, f"read {len(values)} of {high_watermark}"
        lost = [v for v in acknowledged if v not in values]
        assert lost == [], f"acknowledged and lost: {lost[:5]}"
        assert len(values) == len(set(values)), "a value twice"
        assert not any(v.startswith(b"late-") for v in values), "a refused write became visible"
        for node in cluster.nodes.values():
            node.stop()
        digests = {node.node_id: log_digest(node) for node in cluster.nodes.values()}
        assert len(set(digests.values())) == 1, f"replicas differ after the heal: {digests}"
    finally:
        cluster.close()
