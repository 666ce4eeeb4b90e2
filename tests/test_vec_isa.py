"""Inductor's load probes answered from disk (accel/vec_isa.py): each test library is
loaded by a child process once per machine, and its answer, yes or no, is what later
processes get."""

import platform

import pytest
import torch
from torch._inductor import cpu_vec_isa

from clampdsl.accel import vec_isa

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.machine() != "x86_64",
    reason="the probe is remembered on x86 Linux only",
)


class Children:
    """A stand-in for inductor's load probe: libraries named 'bad…' do not load. Keeps
    the libraries it would have started a child process for."""

    def __init__(self):
        self.started = []

    def probe(self, isa, library: str) -> bool:
        self.started.append(library)
        return not library.rsplit("/", 1)[-1].startswith("bad")


@pytest.fixture
def children(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))  # an empty inductor cache
    return Children()


def in_new_process(monkeypatch, children: Children):
    """The load probe as a new process has it: inductor's own, wrapped afresh."""
    monkeypatch.setattr(
        cpu_vec_isa.VecISA, "_probe_load", lambda isa, lib: children.probe(isa, lib)
    )
    assert vec_isa.remember_load_probes()
    isa = cpu_vec_isa.VecAVX2()
    return lambda library: cpu_vec_isa.VecISA._probe_load(isa, library)


def test_each_answer_is_probed_once_then_read_from_disk(monkeypatch, children):
    probe = in_new_process(monkeypatch, children)
    assert probe("/cache/good.so") is True
    assert probe("/cache/bad.so") is False
    assert children.started == ["/cache/good.so", "/cache/bad.so"]
    assert vec_isa.remember_load_probes()  # wrapped already: says so, wraps nothing again
    assert cpu_vec_isa.VecISA._probe_load.__wrapped__.__name__ == "<lambda>"  # once
    probe = in_new_process(monkeypatch, children)
    assert probe("/elsewhere/good.so") is True  # the library's name is the key
    assert probe("/cache/bad.so") is False  # a no is remembered as a no
    assert len(children.started) == 2
    assert probe("/cache/other.so") is True
    assert len(children.started) == 3


def test_another_torch_probes_again(monkeypatch, children):
    in_new_process(monkeypatch, children)("/cache/good.so")
    monkeypatch.setattr(torch, "__version__", "0.0.1")
    in_new_process(monkeypatch, children)("/cache/good.so")
    assert len(children.started) == 2


def test_an_unreadable_record_means_probing(monkeypatch, children):
    vec_isa.record_path().write_text("{not json")
    assert in_new_process(monkeypatch, children)("/cache/good.so") is True
    assert children.started == ["/cache/good.so"]


def test_a_cache_directory_that_takes_no_file_means_probing(monkeypatch, children):
    vec_isa.record_path().mkdir()  # where the record would go, a directory
    probe = in_new_process(monkeypatch, children)
    assert probe("/cache/good.so") is True and probe("/cache/good.so") is True
    assert len(children.started) == 2
