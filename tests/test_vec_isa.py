"""Inductor's vector-ISA checks answered from the user's cache (accel/vec_isa.py): each test
library is built and loaded once per machine; a yes is what later processes get, a no is
checked again."""

import platform

import pytest
import torch
from torch._inductor import cpu_vec_isa

from clampdsl.accel import vec_isa

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.machine() != "x86_64",
    reason="the checks are remembered on x86 Linux only",
)


class Builds:
    """A stand-in for inductor's check: code that holds 'bad' does not build. Keeps the
    (isa, code) pairs it would have built and loaded a library for."""

    def __init__(self):
        self.checked = []

    def check(self, isa, code: str) -> bool:
        self.checked.append((str(isa), code))
        return "bad" not in code


@pytest.fixture
def builds(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # an empty user cache
    return Builds()


def in_new_process(monkeypatch, builds: Builds, isa=None):
    """The check as a new process has it: inductor's own, wrapped afresh."""
    monkeypatch.setattr(cpu_vec_isa.VecISA, "check_build", lambda i, code: builds.check(i, code))
    assert vec_isa.remember_isa_checks()
    isa = cpu_vec_isa.VecAVX2() if isa is None else isa  # bool(isa) would check it
    return lambda code: cpu_vec_isa.VecISA.check_build(isa, code)


def test_a_yes_is_checked_once_then_read_from_disk(monkeypatch, builds):
    check = in_new_process(monkeypatch, builds)
    assert check("good code") is True
    assert vec_isa.remember_isa_checks()  # wrapped already: says so, wraps nothing again
    assert cpu_vec_isa.VecISA.check_build.__wrapped__.__name__ == "<lambda>"  # once
    check = in_new_process(monkeypatch, builds)
    assert check("good code") is True
    assert builds.checked == [("avx2", "good code")]
    assert check("other code") is True  # the code is part of the key
    assert len(builds.checked) == 2


def test_a_no_is_checked_again(monkeypatch, builds):
    assert in_new_process(monkeypatch, builds)("bad code") is False
    assert in_new_process(monkeypatch, builds)("bad code") is False
    assert len(builds.checked) == 2


def test_each_instruction_set_is_checked_for_itself(monkeypatch, builds):
    in_new_process(monkeypatch, builds)("good code")
    in_new_process(monkeypatch, builds, cpu_vec_isa.VecAVX512())("good code")
    assert builds.checked == [("avx2", "good code"), ("avx512", "good code")]


def test_another_torch_checks_again(monkeypatch, builds):
    in_new_process(monkeypatch, builds)("good code")
    monkeypatch.setattr(torch, "__version__", "0.0.1")
    in_new_process(monkeypatch, builds)("good code")
    assert len(builds.checked) == 2


def test_an_unreadable_record_means_checking(monkeypatch, builds):
    vec_isa.record_path().write_text("{not json")
    assert in_new_process(monkeypatch, builds)("good code") is True
    assert builds.checked == [("avx2", "good code")]


def test_no_usable_cache_directory_means_checking(monkeypatch, builds, tmp_path):
    vec_isa.record_path().mkdir()  # where the record would go, a directory
    check = in_new_process(monkeypatch, builds)
    assert check("good code") is True and check("good code") is True
    (tmp_path / "clampdsl").chmod(0o777)  # not private: not the user's cache
    assert vec_isa.record_path() is None
    assert check("good code") is True
    assert len(builds.checked) == 3


def test_the_record_agrees_with_inductors_own_check(monkeypatch, builds, tmp_path):
    """The real check, first as inductor has it, then through the record: the same
    answer, and a process with an empty inductor cache builds nothing."""
    code = cpu_vec_isa.VecISA._avx_code
    isa = cpu_vec_isa.VecAVX2()
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor-1"))
    real = cpu_vec_isa.VecISA.check_build(isa, code)
    # Restored at the end of the test, like every other monkeypatched name.
    monkeypatch.setattr(cpu_vec_isa.VecISA, "check_build", cpu_vec_isa.VecISA.check_build)
    assert vec_isa.remember_isa_checks()
    assert cpu_vec_isa.VecISA.check_build(isa, code) is real
    empty = tmp_path / "inductor-2"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(empty))
    assert cpu_vec_isa.VecISA.check_build(isa, code) is real
    assert real is True and not any(empty.rglob("*.so"))
