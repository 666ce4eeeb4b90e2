"""Inductor's probe of the CPU's vector instruction sets, answered from disk after the first
time on a machine.

Before its first CPU compile, every process asks which vector instruction sets (AVX-512
with AMX, VNNI or BF16, AVX-512, AVX2) its kernels may use. For each one the CPU reports,
it builds a test library (cached on disk) and starts a child process that loads it (not
cached): seconds in every process, paid by the trainer, by its eval-compiling child and by
every `--jobs` worker (docs/performance.md, "Accelerations").

Whether a given test library loads depends on the library, the CPU, the compiler and the
torch that built it, no more. So each answer is recorded in inductor's cache directory
under those, and a later process takes it from there instead of starting the child. Every
other step of the probe runs as before (a test library that fails to build still says
no), inductor's settings are untouched, and so are its cache keys and the code it
generates.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
from pathlib import Path

import torch

RECORD_NAME = "clampdsl-vec-isa.json"


def remember_load_probes() -> bool:
    """Wraps inductor's load probe (`VecISA._probe_load`) so that its answers are kept on
    disk (once; later calls do nothing). Returns whether the probe is now wrapped: not off
    x86 Linux, without a compiler, or on a torch that probes otherwise."""
    from torch._inductor import cpu_vec_isa

    probe = getattr(cpu_vec_isa.VecISA, "_probe_load", None)
    if probe is None:
        return False
    if getattr(probe, "remembers_answers", False):
        return True
    key = _machine_key()
    if key is None:
        return False

    @functools.wraps(probe)
    def probe_load(isa, library: str) -> bool:
        name = f"{key}/{Path(library).name}"
        known = _read_record().get(name)
        if isinstance(known, bool):
            return known
        loads = probe(isa, library)
        _write_record(_read_record() | {name: loads})
        return loads

    probe_load.remembers_answers = True
    cpu_vec_isa.VecISA._probe_load = probe_load
    return True


def record_path() -> Path:
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return Path(cache_dir()) / RECORD_NAME


def _machine_key() -> str | None:
    """The CPU, compiler and torch a test library's loading depends on; None off x86 Linux
    or without a compiler (compiling then falls back to eager anyway)."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        return None
    from torch._inductor import cpu_vec_isa
    from torch._inductor.cpp_builder import get_cpp_compiler

    try:
        compiler = Path(shutil.which(get_cpp_compiler()) or "").resolve(strict=True)
        stat = compiler.stat()
    except (OSError, RuntimeError):
        return None
    facts = [torch.__version__, torch.__file__, str(compiler), stat.st_size, stat.st_mtime_ns]
    facts.append(cpu_vec_isa.x86_isa_checker())
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:16]


def _read_record() -> dict:
    try:
        record = json.loads(record_path().read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _write_record(record: dict) -> None:
    """Writes the record whole (whatever other processes write at the same time), or, where
    the cache directory takes no file, nothing: the probe then runs every time."""
    path = record_path()
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(record, indent=1, sort_keys=True))
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
