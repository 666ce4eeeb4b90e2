"""`clampdsl cache export | import` (train/graph_cache.py): a spec's compiled graphs as one
file that fills another machine's compile caches; files it cannot use are refused in words."""

import json
import subprocess
import sys

import pytest
import torch
from conftest import RESUMABLE, clampdsl

from clampdsl.train import graph_cache


def write_cache_file(path, header: dict, artifacts: bytes = b"") -> None:
    path.write_bytes(json.dumps(header).encode() + b"\n" + artifacts)


def test_a_file_that_is_no_cache_is_refused(tmp_path):
    (tmp_path / "spec.clamp").write_text(RESUMABLE)
    with pytest.raises(graph_cache.CacheFileError, match="is not a clampdsl graph cache"):
        graph_cache.import_file(tmp_path / "spec.clamp")
    write_cache_file(tmp_path / "other.bin", {"format": "something else"})
    with pytest.raises(graph_cache.CacheFileError, match="is not a clampdsl graph cache"):
        graph_cache.import_file(tmp_path / "other.bin")


def test_importing_a_missing_file_says_so_in_one_line(tmp_path):
    missing = clampdsl("cache", "import", tmp_path / "none.bin")
    assert missing.returncode == 1
    assert missing.stderr == f"error: {tmp_path / 'none.bin'}: No such file or directory\n"


def test_a_cache_of_another_torch_is_refused_naming_both_releases(tmp_path):
    header = {"format": graph_cache.FORMAT, "torch": "2.0.0", "threads": 2}
    write_cache_file(tmp_path / "old.bin", header, b"whatever")
    with pytest.raises(graph_cache.CacheFileError) as raised:
        graph_cache.import_file(tmp_path / "old.bin")
    assert "torch 2.0.0" in str(raised.value)
    assert f"this is torch {torch.__version__}" in str(raised.value)


def test_an_empty_cache_loads_nothing_and_says_its_threads(tmp_path):
    header = {"format": graph_cache.FORMAT, "torch": torch.__version__, "threads": 3}
    write_cache_file(tmp_path / "empty.bin", header)
    assert graph_cache.import_file(tmp_path / "empty.bin") == (0, 3)


def test_without_torchs_portable_cache_both_commands_say_so(tmp_path, monkeypatch):
    monkeypatch.delattr(torch.compiler, "save_cache_artifacts")
    assert not graph_cache.supported()
    with pytest.raises(graph_cache.CacheFileError, match="has no portable compile cache"):
        graph_cache.export([], "cpu", "on")
    with pytest.raises(graph_cache.CacheFileError, match="has no portable compile cache"):
        graph_cache.import_file(tmp_path / "any.bin")


COUNT_HITS = """
import sys
from torch._dynamo.utils import counters
from clampdsl import accel
from clampdsl.compile import compile_file
from clampdsl.train.session import GroupSession

accel.enable()  # as `clampdsl run` does: the accelerations are part of the cache key
session = GroupSession(compile_file(sys.argv[1]), 0, "cpu", "on")
session.train_step(0)
print(counters["inductor"]["fxgraph_cache_hit"], counters["inductor"]["fxgraph_cache_miss"])
"""


@pytest.mark.slow
def test_exported_graphs_fill_an_empty_cache_elsewhere(tmp_path, monkeypatch):
    """Exported from one empty cache, imported into another: the step finds its graph."""
    spec = tmp_path / "spec.clamp"
    spec.write_text(RESUMABLE)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "here"))
    eager = clampdsl("cache", "export", spec, "--to", tmp_path / "g.bin")  # 40 steps: eager
    assert "0 graphs" in eager.stdout and "--compile on" in eager.stderr
    exported = clampdsl("cache", "export", spec, "--to", tmp_path / "g.bin", "--compile", "on")
    assert exported.returncode == 0, exported.stderr
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "there"))
    imported = clampdsl("cache", "import", tmp_path / "g.bin")
    assert imported.returncode == 0, imported.stderr
    assert "loaded" in imported.stdout
    counted = subprocess.run(
        [sys.executable, "-c", COUNT_HITS, str(spec)], capture_output=True, text=True
    )
    assert counted.stdout.split() == ["1", "0"], counted.stderr  # one hit, no miss
