"""clampdsl training speed: steps/s, run-steps/s, clamp overheads, eval share, memory.

    python benchmarks/run.py                     # every configuration, eager and compiled
    python benchmarks/run.py --compile on --repeats 7 --json out.json
    python benchmarks/run.py --compile on --rounds 3     # on a noisy machine
    python benchmarks/run.py --only unclamped induction+7ablations
    python benchmarks/run.py --compile on --only "group of 6 (three subcircuits)" --side-by-side 2
    python benchmarks/run.py --device cuda --compile on      # on a GPU: adds the group of 64

The model is the paper's main configuration (2 layers × 8 heads, width 64, batch 32,
512-d exemplar features). Each configuration runs in its own process (so peak memory is
its own), drives the trainer's GroupSession (what is measured is what `clampdsl run`
executes), warms up (compilation is timed separately), then times repeats of N steps and
reports the median. With --side-by-side N each configuration is also measured as N
processes at once, each on 1/N of torch's threads (what `clampdsl run --jobs N` does),
and their run-steps/s are added up. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from configs import CONFIGS, GPU_ONLY, HEADER, HEADERS, MAIN_SPEC_EVERY, spec_for, with_donor

ROOT = Path(__file__).resolve().parents[1]


def measure(name: str, device: str, compile_choice: str, repeats: int, steps: int) -> dict:
    """Runs in a worker process: one configuration, one compile setting."""
    import torch

    from clampdsl import accel
    from clampdsl.compile import compile_source
    from clampdsl.compile.configs import EvalConfig
    from clampdsl.train.session import GroupSession

    torch.manual_seed(0)
    bodies = CONFIGS[name]
    # A long schedule, so that compile="auto" behaves as it would for a real run.
    folder = with_donor(spec_for([None], steps=100_000))
    header = HEADERS.get(name, HEADER)
    spec = spec_for(bodies, steps=100_000, header=header)
    plan = compile_source(spec, str(folder / f"{name}.clamp"))
    accel.enable()  # as `clampdsl run` does
    session = GroupSession(plan, 0, device, compile_choice)
    synchronize = torch.cuda.synchronize if session.device.type == "cuda" else (lambda: None)

    started = time.perf_counter()
    for step in range(3):
        session.train_step(step)
    synchronize()
    first_steps = time.perf_counter() - started
    step = 3
    for _ in range(20):
        session.train_step(step)
        step += 1
    synchronize()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(steps):
            session.train_step(step)
            step += 1
        synchronize()
        seconds.append((time.perf_counter() - started) / steps)
    step_seconds = statistics.median(seconds)

    started = time.perf_counter()
    session.evaluate(step)  # warm up: compiles the eval graph
    synchronize()
    eval_warmup = time.perf_counter() - started
    eval_times = []
    for _ in range(3):
        started = time.perf_counter()
        session.evaluate(step)
        synchronize()
        eval_times.append(time.perf_counter() - started)
    eval_seconds = statistics.median(eval_times)

    def eval_share(every: int) -> float:
        return eval_seconds / (eval_seconds + every * step_seconds)

    if session.device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    runs = len(bodies)
    return {
        "config": name,
        "runs": runs,
        "device": describe(session.device),
        "compiled": session.compiled,
        "steps_per_s": 1 / step_seconds,
        "run_steps_per_s": runs / step_seconds,
        "step_ms": 1000 * step_seconds,
        "repeats_ms": [1000 * s for s in seconds],
        "warmup_s": first_steps - 3 * step_seconds,  # compilation, mostly
        "eval_s": eval_seconds,
        "eval_warmup_s": eval_warmup - eval_seconds,  # compilation, mostly
        # at the language's default cadence (the paper's), and at the main spec's
        "eval_every": EvalConfig().every,
        "eval_share": eval_share(EvalConfig().every),
        "eval_share_main_spec": eval_share(MAIN_SPEC_EVERY),
        "peak_mb": peak,
    }


def describe(device) -> str:
    """The device as figures should name it: the GPU's model, or the CPU's threads."""
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads, torch {torch.__version__})"


def run_worker(name: str, args, side_by_side: int = 1) -> dict:
    """{compile mode: figures}; with `side_by_side` N > 1, N workers at once on 1/N of the
    threads each, their run-steps/s added up (the rest: the first worker's)."""
    command = [
        sys.executable,
        __file__,
        "--worker",
        name,
        "--device",
        args.device,
        "--repeats",
        str(args.repeats),
        "--steps",
        str(args.steps),
    ]
    if side_by_side > 1:
        from clampdsl.executors.processes import threads_each

        command += ["--threads", str(threads_each(side_by_side))]
    results = {}
    for choice in ["off", "on"] if args.compile == "both" else [args.compile]:
        workers = [
            subprocess.Popen(
                [*command, "--compile", choice],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            for _ in range(side_by_side)
        ]
        outputs = [worker.communicate() + (worker.returncode,) for worker in workers]
        measured = []
        for stdout, stderr, returncode in outputs:
            if returncode != 0:
                raise SystemExit(f"{name} ({choice}) failed:\n{stderr}")
            measured.append(json.loads(stdout.strip().splitlines()[-1]))
        results[choice] = measured[0] | {
            "runs": sum(r["runs"] for r in measured),
            "run_steps_per_s": sum(r["run_steps_per_s"] for r in measured),
        }
    return results


def on_gpu(device: str) -> bool:
    from clampdsl.train.session import resolve_device

    return resolve_device(device).type == "cuda"


def median_round(measured: list[dict]) -> dict:
    """The round with the median step time, with every round's step time added."""
    ordered = sorted(measured, key=lambda r: r["step_ms"])
    return ordered[(len(ordered) - 1) // 2] | {"rounds_step_ms": [r["step_ms"] for r in measured]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", choices=["off", "on", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100, help="steps per timed repeat")
    parser.add_argument(
        "--only",
        nargs="*",
        choices=list(CONFIGS),
        help="these configurations (default: all; on a CPU all but " + ", ".join(GPU_ONLY) + ")",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every configuration this many times, in turn, and keep each one's "
        "median round (spreads a noisy machine's slow phases over all configurations)",
    )
    parser.add_argument(
        "--side-by-side",
        type=int,
        default=1,
        metavar="N",
        help="also measure each configuration as N processes at once, each on 1/N of the "
        "threads (as `clampdsl run --jobs N`)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        compile_choice = "off" if args.compile == "off" else "on"
        print(
            json.dumps(measure(args.worker, args.device, compile_choice, args.repeats, args.steps))
        )
        return

    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 150)
    names = args.only or [n for n in CONFIGS if n not in GPU_ONLY or on_gpu(args.device)]
    measured_ways = [(name, name, 1) for name in names]
    if args.side_by_side > 1:
        together = f" ×{args.side_by_side} side by side"
        measured_ways += [(name + together, name, args.side_by_side) for name in names]
    rounds: dict[str, list[dict]] = {label: [] for label, _, _ in measured_ways}
    for index in range(args.rounds):
        for label, name, side_by_side in measured_ways:
            of = f" (round {index + 1} of {args.rounds})" if args.rounds > 1 else ""
            console.print(f"[dim]measuring {label}{of}…[/]")
            rounds[label].append(run_worker(name, args, side_by_side))
    results = {
        name: {mode: median_round([r[mode] for r in measured]) for mode in measured[0]}
        for name, measured in rounds.items()
    }
    base = results.get("unclamped", {})
    table = Table(title="clampdsl training speed (median of repeats)", title_justify="left")
    for column in (
        "configuration",
        "mode",
        "runs",
        "steps/s",
        "run-steps/s",
        "vs unclamped",
        "compile s (step + eval)",
        "eval s",
        "eval share",
        f"… every {MAIN_SPEC_EVERY}",
        "peak MB",
    ):
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for name, by_mode in results.items():
        for mode, r in by_mode.items():
            reference = base.get(mode)
            overhead = (
                f"{r['step_ms'] / reference['step_ms']:.2f}×"
                if reference and r["runs"] == 1
                else ""
            )
            table.add_row(
                name,
                "compiled" if r["compiled"] else "eager",
                str(r["runs"]),
                f"{r['steps_per_s']:.0f}",
                f"{r['run_steps_per_s']:.0f}",
                overhead,
                f"{r['warmup_s']:.1f} + {r['eval_warmup_s']:.1f}" if r["compiled"] else "",
                f"{r['eval_s']:.3f}",
                f"{100 * r['eval_share']:.0f}%",
                f"{100 * r['eval_share_main_spec']:.0f}%",
                f"{r['peak_mb']:.0f}",
            )
    console.print(table)
    first = next(iter(next(iter(results.values())).values()))
    console.print(
        f"[dim]device {first['device']}; eval share: one eval of the eval sets (measures "
        f"included) per {first['eval_every']} steps, the default cadence (the paper's), and per "
        f"{MAIN_SPEC_EVERY} steps, as specs/three_subcircuits.clamp"
        + (
            f"; ×{args.side_by_side} side by side: that many processes at once, each on "
            "1/N of the threads, their run-steps/s added (steps/s, eval and memory: one of them)"
            if args.side_by_side > 1
            else ""
        )
        + "[/]"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
