"""The bus tests' 3-node NATS JetStream cluster: one per session, whole again after every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.bus.natscluster import NatsCluster


@pytest.fixture(scope="session")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    cluster = NatsCluster(tmp_path_factory.mktemp("nats"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def _heal_cluster(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that killed nodes leaves the next one a whole cluster (only where the cluster is in use)."""
    yield
    if "nats_cluster" in request.fixturenames:
        cluster: NatsCluster = request.getfixturevalue("nats_cluster")
        cluster.heal()
