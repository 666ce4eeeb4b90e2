import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def tiny_spec() -> Path:
    return FIXTURES / "tiny.clamp"


def clampdsl(*args, cwd=None) -> subprocess.CompletedProcess:
    """The command line, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "clampdsl", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


HEADER = "clampdsl 1\n"


def spec(body: str) -> str:
    """A spec with the version header and a given body (dedented by the caller)."""
    return HEADER + body
