"""A two-node Ray cluster (Ray's local multi-node test cluster) measures one folder on both nodes."""

from __future__ import annotations

import pytest

from partus.engine import predict_to_file
from partus.io import read_predictions_csv

pytestmark = pytest.mark.slow


def test_two_nodes_share_a_folder(mixed_inputs, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    assert not ray.is_initialized()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        images = [p for p in sorted(mixed_inputs.iterdir()) if p.suffix != ".avi"]
        # the engine keeps Ray's default (work goes to workers as they come up, so a busy shared cluster still
        # runs); here both must be up first, or the first to load its model may take all the work
        monkeypatch.setattr(ray.data.DataContext.get_current(), "wait_for_min_actors_s", 120)
        stats = predict_to_file([*images, mixed_inputs / "clip.avi"], tmp_path / "p.csv", engine="ray",
                                address=cluster.address, workers=2, batch_size=4)  # fmt: skip
        nodes = {w.split(":")[0] for w in stats.workers}
        assert len(nodes) == 2 and stats.rows == len(read_predictions_csv(tmp_path / "p.csv")) == 51
        assert ray.is_initialized() is False  # the job disconnected; the cluster is still up
    finally:
        cluster.shutdown()
