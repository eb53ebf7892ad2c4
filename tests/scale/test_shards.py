"""Shard arithmetic and the image set's per-process manifests (no processes started)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.distributed import Dist, current, runs, shard, strip_option
from harness.imageset import ImageSet


@pytest.mark.parametrize("n, world", [(0, 2), (1, 2), (7, 3), (24, 2), (10, 4), (5, 8)])
def test_shards_partition_the_indices_like_numpy_array_split(n, world):
    indices = list(range(3, 3 + n))
    parts = [shard(indices, r, world) for r in range(world)]
    assert [i for p in parts for i in p] == indices  # disjoint, complete, in order
    assert [list(p) for p in np.array_split(np.array(indices, dtype=int), world)] == parts


def test_shard_rejects_a_rank_outside_the_world():
    with pytest.raises(ValueError):
        shard([1, 2], 2, 2)


def test_runs_of_consecutive_indices():
    assert runs([]) == []
    assert runs([4, 5, 6, 9, 11, 12]) == [(4, 7), (9, 10), (11, 13)]


def test_single_process_needs_no_launcher(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    d = current("auto")
    assert (d.rank, d.world, d.is_main, d.distributed) == (0, 1, True, False)
    assert d.device("auto") == "auto" and d.broadcast(7) == 7
    d.barrier()  # no-op


def test_device_per_local_rank(monkeypatch):
    from harness.features import base

    monkeypatch.setattr(base, "resolve_device", lambda device: "cuda" if device in ("auto", "cuda") else device)
    d = Dist(rank=3, world=4, local_rank=1)
    assert d.device("auto") == "cuda:1" and d.device("cuda") == "cuda:1" and d.device("cpu") == "cpu"


def test_strip_option():
    argv = ["run", "-g", "real", "--num-processes", "2", "--n", "4", "--num-processes=3"]
    assert strip_option(argv, "--num-processes") == ["run", "-g", "real", "--n", "4"]


def _images(start, b):
    return np.stack([np.full((8, 8, 3), (start + j) % 256, dtype=np.uint8) for j in range(b)])


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_shard_writes_merge_into_the_same_manifest_as_appending(tmp_path):
    a = ImageSet.open(tmp_path / "a", {"g": 1}, key="k")
    a.write_batch(0, _images(0, 6), seeds=list(range(6)))
    b = ImageSet.open(tmp_path / "b", {"g": 1}, key="k")
    b.write_shard(1, 3, _images(3, 3), seeds=[3, 4, 5])  # rank 1 finishes first
    b.write_shard(0, 0, _images(0, 3), seeds=[0, 1, 2])
    assert len(ImageSet.attach(tmp_path / "b", key="k")) == 0 and b.missing(6) == []
    b.merge_shards()
    assert not list((tmp_path / "b").glob("manifest.*.jsonl"))
    assert (tmp_path / "a" / "manifest.jsonl").read_bytes() == (tmp_path / "b" / "manifest.jsonl").read_bytes()
    assert a.content_hash() == ImageSet.read(tmp_path / "b").content_hash()


def test_entries_past_a_gap_wait_as_pending_and_are_not_regenerated(tmp_path):
    s = ImageSet.open(tmp_path, {}, key="k")
    s.write_shard(0, 0, _images(0, 2))
    s.write_shard(1, 4, _images(4, 2))  # 2, 3 never written (that rank was killed)
    with open(s.shard_manifest_path(1), "a") as f:
        f.write('{"index": 6, "file": "images/0000')  # a line cut by the kill
    s = ImageSet.open(tmp_path, {}, key="k")  # a resume merges what is there
    assert len(s) == 2
    assert [e["index"] for e in _lines(tmp_path / "manifest.pending.jsonl")] == [4, 5]
    assert s.missing(8) == [2, 3, 6, 7]
    s.write_shard(0, 2, _images(2, 2))
    s.write_shard(1, 6, _images(6, 2))
    s.merge_shards()
    assert len(s) == 8 and [e["index"] for e in _lines(tmp_path / "manifest.jsonl")] == list(range(8))
    assert not list(tmp_path.glob("manifest.*.jsonl"))
    assert [e.sha256 for e in ImageSet.read(tmp_path).entries] == [e.sha256 for e in _reference(tmp_path.parent / "ref", 8).entries]


def test_a_shard_line_whose_image_is_gone_is_regenerated(tmp_path):
    s = ImageSet.open(tmp_path, {}, key="k")
    s.write_shard(0, 0, _images(0, 3))
    (tmp_path / "images" / "000001.png").unlink()
    assert s.missing(3) == [1]
    s.merge_shards()
    assert len(s) == 1 and s.missing(3) == [1]
    assert [e["index"] for e in _lines(tmp_path / "manifest.pending.jsonl")] == [2]


def _reference(root, n):
    s = ImageSet.open(root, {}, key="k")
    s.write_batch(0, _images(0, n))
    return s
