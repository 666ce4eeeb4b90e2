"""Golden fixtures: each spec in tests/fixtures/valid compiles to the plan JSON beside it
(`NAME.plan.json`), and each spec in tests/fixtures/invalid fails with the diagnostics
beside it (`NAME.errors`), as `clampdsl validate` prints them.

After a deliberate change, regenerate them and read the diff:
    CLAMPDSL_REGENERATE=1 python -m pytest tests/test_fixtures.py
"""

import json
import os

import pytest
from conftest import FIXTURES

from clampdsl.compile import compile_file
from clampdsl.lang.diagnostics import SpecError

REGENERATE = os.environ.get("CLAMPDSL_REGENERATE") == "1"
VALID = sorted((FIXTURES / "valid").glob("*.clamp"))
INVALID = sorted((FIXTURES / "invalid").glob("*.clamp"))


def _relative(path):
    """Fixtures name their files relative to the fixtures folder: the same on every machine."""
    return path.relative_to(FIXTURES)


def _check(expected_path, actual: str) -> None:
    if REGENERATE:
        expected_path.write_text(actual)
    assert expected_path.exists(), f"no {expected_path.name}: regenerate (module docstring)"
    assert actual == expected_path.read_text()


@pytest.mark.parametrize("spec", VALID, ids=[p.stem for p in VALID])
def test_valid_spec_compiles_to_its_plan(spec, monkeypatch):
    monkeypatch.chdir(FIXTURES)
    plan = compile_file(_relative(spec))
    actual = json.dumps(plan.to_json(), indent=1, sort_keys=True) + "\n"
    _check(spec.with_suffix(".plan.json"), actual)


@pytest.mark.parametrize("spec", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_spec_fails_with_its_diagnostics(spec, monkeypatch):
    monkeypatch.chdir(FIXTURES)
    with pytest.raises(SpecError) as caught:
        compile_file(_relative(spec))
    _check(spec.with_suffix(".errors"), str(caught.value) + "\n")


def test_there_are_fixtures_of_both_kinds():
    assert VALID and INVALID
