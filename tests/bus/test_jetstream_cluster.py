"""The cluster fixture itself: three JetStream servers with one meta leader; a killed node comes back."""

from __future__ import annotations

from tests.bus.natscluster import NatsCluster


def test_cluster_has_three_nodes_and_survives_a_kill(nats_cluster: NatsCluster) -> None:
    assert len(nats_cluster.urls) == 3
    assert nats_cluster.alive() == [0, 1, 2]
    nats_cluster.kill(1)
    assert nats_cluster.alive() == [0, 2]
    nats_cluster.start(1)  # same store directory and ports: it rejoins
    assert nats_cluster.alive() == [0, 1, 2]
