"""What bounds a warm run of a spec: its step's GEMMs against this machine's matmul peak.

    python benchmarks/bound.py                                  # specs/three_subcircuits.clamp
    python benchmarks/bound.py specs/paper/fig5b.clamp --group 0

Builds a group's session as `clampdsl run` does (compiled, the accelerations on), times its
step, and records 100 steps with torch.profiler: the FLOPs and time of the step's matrix
products (aten's mm, bmm, addmm and baddbmm, which inductor calls as external kernels on a
CPU). It then times a 2048² fp32 matmul on every thread, the most this machine's matmul
does, and prints the least time the group's training can take: its steps' GEMM FLOPs at
that rate. A result identical to today's keeps every GEMM and its order of sums, so no
faster step exists short of a faster machine. docs/performance.md, "What bounds a warm
run", quotes its figures.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GEMMS = {"aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm"}


def step_seconds(session, first: int, steps: int) -> float:
    """Seconds a step, over `steps` steps from `first`, waiting for the last."""
    started = time.perf_counter()
    for step in range(first, first + steps):
        losses = session.train_step(step)
    float(losses.sum())
    return (time.perf_counter() - started) / steps


def profiled_gemms(session, first: int, steps: int) -> tuple[float, float]:
    """(GEMM FLOPs a step, GEMM seconds a step) over `steps` profiled steps."""
    from torch.profiler import profile

    with profile(with_flops=True) as recorded:
        step_seconds(session, first, steps)
    gemms = [event for event in recorded.key_averages() if event.key in GEMMS]
    flops = sum(event.flops for event in gemms)
    seconds = sum(event.self_cpu_time_total for event in gemms) * 1e-6
    return flops / steps, seconds / steps


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a size² fp32 matmul on torch's threads: the median of `repeats`."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # noqa: B018 — warms the kernel and its buffers
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b  # noqa: B018
        times.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default=str(ROOT / "specs/three_subcircuits.clamp"))
    parser.add_argument("--group", type=int, default=0, help="the group of the plan to measure")
    args = parser.parse_args()

    from clampdsl import accel
    from clampdsl.compile import compile_file
    from clampdsl.train.session import GroupSession

    plan = compile_file(args.spec)
    accel.enable()  # as `clampdsl run` does
    session = GroupSession(plan, args.group, "cpu", "on")
    steps = session.config.train.steps
    step_seconds(session, 0, 50)  # compiles, then warms
    step = statistics.median(step_seconds(session, 50 + 100 * i, 100) for i in range(5))
    flops, gemm_seconds = profiled_gemms(session, 550, 100)
    peak = matmul_peak()
    least = flops / peak
    rows = [
        ("runs in the group", f"{len(session.runs)}"),
        ("step", f"{step * 1e3:.2f} ms"),
        ("GEMMs a step", f"{flops / 1e6:.0f} MFLOP in {gemm_seconds * 1e3:.2f} ms"),
        ("GEMMs' rate", f"{flops / gemm_seconds / 1e9:.0f} GFLOP/s"),
        ("the rest of the step", f"{(step - gemm_seconds) * 1e3:.2f} ms: fused kernels, Python"),
        ("2048² matmul", f"{peak / 1e9:.0f} GFLOP/s"),
        ("GEMMs a step at that rate", f"{least * 1e3:.2f} ms ({least / step:.0%} of the step)"),
        (f"{steps:,} steps", f"{steps * step:.1f} s; their GEMMs at peak {steps * least:.1f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{Path(args.spec).name}, group {args.group}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


if __name__ == "__main__":
    main()
