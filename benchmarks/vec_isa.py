"""The `vec-isa-record` acceleration (clampdsl/accel/vec_isa.py): a trivial compile in a fresh
process, with the acceleration and without, in interleaved rounds; medians in seconds.

    python benchmarks/vec_isa.py              # 3 rounds
    python benchmarks/vec_isa.py --rounds 5

"Empty" gives every process a new, empty inductor cache (a new machine, a CI run, a `/tmp`
emptied by a reboot); "warm" one inductor cache for all, filled before the first round.
The record lives in a user cache of the benchmark's own, filled before the first round.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

COMPILE = """import time
start = time.perf_counter()
from clampdsl import accel
accel.enable()
import torch
torch.compile(lambda x: (x * 2).exp().sum())(torch.randn(100))
print(time.perf_counter() - start)
"""
SETTINGS = {"with": "vec-isa-record", "without": "none"}


def seconds(acceleration: str, inductor_cache: str, user_cache: str) -> float:
    env = os.environ | {
        "CLAMPDSL_ACCELERATIONS": acceleration,
        "TORCHINDUCTOR_CACHE_DIR": inductor_cache,
        "XDG_CACHE_HOME": user_cache,
    }
    result = subprocess.run(
        [sys.executable, "-c", COMPILE], env=env, capture_output=True, text=True, check=True
    )
    return float(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as scratch:
        user_cache, warm = f"{scratch}/user", f"{scratch}/warm"
        seconds("all", warm, user_cache)  # fills the record and the warm inductor cache
        times = {(cache, name): [] for cache in ("empty", "warm") for name in SETTINGS}
        for round_ in range(rounds):
            for (cache, name), found in times.items():
                inductor = warm if cache == "warm" else f"{scratch}/empty-{round_}-{name}"
                found.append(seconds(SETTINGS[name], inductor, user_cache))
    print(f"{'inductor cache':<16}{'without':>10}{'with':>10}   (median s of {rounds})")
    for cache in ("empty", "warm"):
        medians = [statistics.median(times[cache, name]) for name in ("without", "with")]
        print(f"{cache:<16}{medians[0]:>10.2f}{medians[1]:>10.2f}")


if __name__ == "__main__":
    main()
