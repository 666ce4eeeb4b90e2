"""Freed activations are reused without page faults (accel/host_memory.py)."""

import subprocess
import sys

import pytest

# A forward's pattern: activations of 1-13 MB at once, all freed at the end; prints the
# page faults of the calls after the first.
FORWARDS = """
import resource, sys, torch
torch.set_num_threads(1)  # no thread stacks faulted in while measuring
from clampdsl.accel.host_memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def forward():
    sizes = [(1 << 18) * (1 + (i * 7) % 13) for i in range(20)]  # floats
    return [torch.empty(size).fill_(1.0) for size in sizes]
forward()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    forward()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(setting: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", FORWARDS, setting], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_activations_reuse_freed_pages():
    default = page_faults("default")
    if default < 20_000:
        pytest.skip(f"this malloc kept the pages by itself ({default} faults)")
    assert page_faults("keep") < default / 10
