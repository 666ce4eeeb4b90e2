"""The accelerations (clampdsl/accel): switched on by entry points only, each a no-op
where the private torch module it reaches into is missing, and importing clampdsl never
fails for one."""

import subprocess
import sys

import pytest
from conftest import ROOT

from clampdsl import accel

# Each acceleration and the private module it needs.
NEEDS = {
    "inductor-backport": "torch._inductor.sizevars",
    "vec-isa-record": "torch._inductor.cpu_vec_isa",
    "warm-evals": "torch._inductor.config",
}
TINY = ROOT / "tests" / "fixtures" / "tiny.clamp"


def _python(code: str, **env) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=os.environ | env
    )


@pytest.mark.parametrize(("name", "module"), NEEDS.items())
def test_a_missing_private_module_leaves_its_acceleration_off(name, module):
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"  # as if torch had moved it
        "import clampdsl, clampdsl.api, clampdsl.train.session\n"
        "from clampdsl import accel\n"
        f"done = accel.enable()\n"
        f"assert done[{name!r}] is False, done\n"
        f"assert sum(done.values()) >= 1, done\n"  # the others still apply
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr


def test_building_and_training_a_session_switches_nothing_on():
    code = (
        "from clampdsl import accel\n"
        "from clampdsl.compile import compile_file\n"
        "from clampdsl.train.session import GroupSession\n"
        "from torch._inductor import cpu_vec_isa, sizevars\n"
        f"session = GroupSession(compile_file({str(TINY)!r}), 0, 'cpu', 'off')\n"
        "session.train_step(0); session.evaluate(0)\n"
        "assert accel.enable([]) == {}\n"
        "assert not hasattr(cpu_vec_isa.VecISA.check_build, 'remembers_answers')\n"
        "assert 'simplify' in sizevars.simplify_index_in_vec_range.__wrapped__.__code__.co_names\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr


def test_the_environment_chooses_which():
    code = "from clampdsl import accel; print(sorted(accel.enable()))"
    assert _python(code, CLAMPDSL_ACCELERATIONS="none").stdout.strip() == "[]"
    chosen = _python(code, CLAMPDSL_ACCELERATIONS="vec-isa-record,nonsense").stdout.strip()
    assert chosen == "['vec-isa-record']"
    assert _python(code).stdout.strip() == str(sorted(accel.ACCELERATIONS))


def test_an_unknown_torch_gets_none(monkeypatch):
    import torch

    monkeypatch.setattr(accel, "_enabled", {})
    monkeypatch.setattr(torch, "__version__", "3.0.0")
    assert not any(accel.enable().values())
