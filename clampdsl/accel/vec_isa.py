"""Inductor's check of the CPU's vector instruction sets, answered from the user's cache after
the first time on a machine.

Before its first CPU compile, every process asks which vector instruction sets (AVX-512
with AMX, VNNI or BF16, AVX-512, AVX2) its kernels may use. For each one the CPU reports,
inductor builds a test library into its cache directory and starts a child process that
loads it: seconds in every process, paid by the trainer, by its eval-compiling child and
by every `--jobs` worker, and about 9 s where inductor's cache is empty (a new machine, a
CI run, a `/tmp` emptied by a reboot), since every test library is then built first
(docs/performance.md, "Accelerations").

Whether a test library builds and loads depends on its code, the instruction set's flags,
the CPU, the compiler and the torch that builds it, no more. So each yes is recorded in the
user's cache directory (clampdsl/user_cache.py) under those, and a later process takes it
from there instead of building and loading. A no is checked again every time: it may come
of a passing fault (a full disk, a child process that hung under load), and kept, it would
leave every later run on slower kernels. Inductor's settings are untouched, and so are its
cache keys and the code it generates.
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

from clampdsl import user_cache

RECORD_NAME = "vec-isa.json"


def remember_isa_checks() -> bool:
    """Wraps inductor's check of one instruction set (`VecISA.check_build`) so that its
    yeses are kept on disk (once; later calls do nothing). Returns whether the check is now
    wrapped: not off x86 Linux, without a compiler, or on a torch that checks otherwise."""
    from torch._inductor import cpu_vec_isa

    check = getattr(cpu_vec_isa.VecISA, "check_build", None)
    if check is None:
        return False
    if getattr(check, "remembers_answers", False):
        return True
    machine = _machine_key()
    if machine is None:
        return False

    @functools.wraps(check)
    def check_build(isa, code: str) -> bool:
        facts = json.dumps([code, isa.build_arch_flags()]).encode()
        name = f"{machine}/{isa}/{hashlib.sha256(facts).hexdigest()[:16]}"
        if _read_record().get(name) is True:
            return True
        works = check(isa, code)
        if works:
            _write_record(_read_record() | {name: True})
        return works

    check_build.remembers_answers = True
    cpu_vec_isa.VecISA.check_build = check_build
    return True


def record_path() -> Path | None:
    directory = user_cache.directory()
    return None if directory is None else directory / RECORD_NAME


def _machine_key() -> str | None:
    """The CPU, compiler and torch a test library's building and loading depend on; None
    off x86 Linux or without a compiler (compiling then falls back to eager anyway)."""
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
    path = record_path()
    if path is None:
        return {}
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _write_record(record: dict) -> None:
    """Writes the record whole (whatever other processes write at the same time), or, where
    the cache directory takes no file, nothing: the check then runs every time."""
    path = record_path()
    if path is None:
        return
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(record, indent=1, sort_keys=True))
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)
