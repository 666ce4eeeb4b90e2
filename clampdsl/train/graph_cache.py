"""A spec's compiled graphs as one portable file: `clampdsl cache export`, `cache import`.

Compiling a group's graphs from an empty cache is most of a cold run's wall time on a CPU
(docs/performance.md). torch records every graph a process compiles or finds in its cache
as a portable artifact (`torch.compiler.save_cache_artifacts`, torch ≥ 2.7); loaded on
another machine (`load_cache_artifacts`), they fill its caches, and a run there starts
with inductor's scheduling and code generation done. Only the C++ kernels are compiled
again, from the generated source, where that machine has not compiled them before.

The file is the artifacts behind one JSON header line: the format, the torch release and
torch's thread count (inductor's CPU kernels are specialised on it) that wrote it. A
cache file holds generated code and pickles: import only files from someone you trust.
It is never a spec's to name; only a user's `cache import` reads one.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from clampdsl.compile.plan import Plan
from clampdsl.train.session import GroupSession

FORMAT = "clampdsl-graph-cache 1"


class CacheFileError(ValueError):
    """A file that is not a cache of this torch's, said in words."""


def supported() -> bool:
    return hasattr(torch.compiler, "save_cache_artifacts")


def export(
    plans: list[Plan], device: str, compile: str, store: Path | None = None
) -> tuple[bytes, int]:
    """The graphs `clampdsl run --compile COMPILE` compiles for these plans, as a cache file,
    and the number of graphs in it. Each group builds a session and takes one step and one
    eval, which compile (or find in the cache) the step's graph and the eval graphs; the
    session is thrown away, nothing is trained or written but the file. `store`: the run
    store, where grafts' donor specs' runs are."""
    _require_support()
    for plan in plans:
        for index in range(len(plan.groups)):
            session = GroupSession(plan, index, device, compile, store)
            if session.compiled:
                session.train_step(0)
                session.evaluate(0)
    saved = torch.compiler.save_cache_artifacts()
    if saved is None:
        return _with_header(b""), 0
    artifacts, info = saved
    return _with_header(artifacts), sum(len(keys) for keys in info.artifacts.values())


def import_file(path: Path) -> tuple[int, int | None]:
    """Loads a cache file into this machine's compile caches: the number of graphs it held,
    and the torch thread count they were compiled for (runs with another count compile
    their own)."""
    _require_support()
    header, _, artifacts = path.read_bytes().partition(b"\n")
    try:
        written = json.loads(header)
    except ValueError:
        written = None
    if not isinstance(written, dict) or written.get("format") != FORMAT:
        raise CacheFileError(f"{path} is not a clampdsl graph cache (`clampdsl cache export`)")
    if written.get("torch") != torch.__version__:
        raise CacheFileError(
            f"{path} holds graphs of torch {written.get('torch')}; this is torch "
            f"{torch.__version__}, whose caches cannot use them"
        )
    info = torch.compiler.load_cache_artifacts(artifacts) if artifacts else None
    graphs = 0 if info is None else sum(len(keys) for keys in info.artifacts.values())
    return graphs, written.get("threads")


def _with_header(artifacts: bytes) -> bytes:
    header = {"format": FORMAT, "torch": torch.__version__, "threads": torch.get_num_threads()}
    return json.dumps(header).encode() + b"\n" + artifacts


def _require_support() -> None:
    if not supported():
        raise CacheFileError(
            f"torch {torch.__version__} has no portable compile cache (torch ≥ 2.7 has)"
        )
