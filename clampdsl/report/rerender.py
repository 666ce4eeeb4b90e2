"""A run directory read back and reported again: `clampdsl report RUN_DIR`, and its metrics
exported for other tools, `clampdsl export RUN_DIR --format csv | tensorboard`.

Works on a finished run, on one that was stopped, and on one still training: it reads
plan.json (JSON, no pickles) and the metrics as far as they are written, a line the
trainer is writing now left out.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import attrs

from clampdsl.compile.plan import Plan
from clampdsl.durable import RunError, write_atomically
from clampdsl.report.store import RECORD_LABELS
from clampdsl.report.summary import RunSummary, summarize

SPARKS = "▁▂▃▄▅▆▇█"
SPARK_WIDTH = 40  # characters: evals are resampled to it


@attrs.frozen
class ReadRun:
    directory: Path
    plan: Plan
    records: tuple[dict, ...]
    summaries: tuple[RunSummary, ...]

    @property
    def finished(self) -> bool:
        return (self.directory / "summary.json").is_file()


def read_run(directory: str | Path) -> ReadRun:
    """The plan and the records of a run directory as they stand; RunError naming what is
    missing where it is not one."""
    directory = Path(directory)
    try:
        plan = Plan.from_json(json.loads((directory / "plan.json").read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise RunError(f"{directory}: no plan.json here; is it a run directory?") from None
    except (ValueError, KeyError, TypeError) as error:
        message = f"{directory / 'plan.json'}: not a plan this clampdsl reads ({error})"
        raise RunError(message) from None
    records = tuple(_records(directory / "metrics.jsonl"))
    return ReadRun(directory, plan, records, tuple(summarize(plan, list(records))))


def _records(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # the line the trainer is appending, or one a crash tore
            continue
        records.append(
            {k: math.nan if v is None and k not in RECORD_LABELS else v for k, v in record.items()}
        )
    return records


def sparkline(values: list[float], low: float, high: float, width: int = SPARK_WIDTH) -> str:
    """The curve in block characters from `low` to `high` (one scale for every run of a
    table, so that their heights compare), resampled to at most `width` characters."""
    if len(values) > width:
        values = [values[round(i * (len(values) - 1) / (width - 1))] for i in range(width)]
    values = [min(high, max(low, v)) if math.isfinite(v) else v for v in values]
    scale = (len(SPARKS) - 1) / (high - low) if high > low else 0.0
    return "".join(SPARKS[round((v - low) * scale)] if math.isfinite(v) else " " for v in values)


def curve_of(run: ReadRun, name: str, key: str) -> list[float]:
    rows = sorted((r for r in run.records if r["run"] == name), key=lambda r: r["step"])
    return [r.get(key, math.nan) for r in rows]


def rewrite(run: ReadRun) -> list[Path]:
    """The figures from the records so far (curves.png, gating.png); report.md too where
    the run has finished (its summary holds the wall times the report states). The files
    written."""
    from clampdsl.report.markdown import report_markdown
    from clampdsl.report.plots import plot_all

    written = plot_all(run.plan, list(run.records), list(run.summaries), run.directory)
    if run.finished:
        finished = json.loads((run.directory / "summary.json").read_text(encoding="utf-8"))
        text = report_markdown(
            run.plan,
            list(run.summaries),
            finished,
            finished["device"],
            [figure.name for figure in written],
        )
        write_atomically(run.directory / "report.md", text.encode("utf-8"))
        written.append(run.directory / "report.md")
    return written


def _csv(run: ReadRun) -> bytes:
    """One row per eval of a run: run, step, sequences, then every measurement."""
    keys = sorted({k for r in run.records for k in r} - set(RECORD_LABELS))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([*RECORD_LABELS, *keys])
    for record in run.records:
        writer.writerow([*(record[k] for k in RECORD_LABELS), *(record.get(k, "") for k in keys)])
    return text.getvalue().encode("utf-8")


def write_tensorboard(run: ReadRun, folder: Path) -> list[Path]:
    """An event file per run under `folder/<run name>/`, every measurement a scalar by
    step; TensorBoard (and W&B, Aim) open the folder. Needs the tensorboard extra."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise RunError(
            "TensorBoard export needs the tensorboard extra: pip install 'clampdsl[tensorboard]'"
        ) from None
    written = []
    for config in run.plan.runs:
        target = folder / _safe_folder(config.name)
        with SummaryWriter(log_dir=str(target)) as writer:
            for record in (r for r in run.records if r["run"] == config.name):
                for key, value in record.items():
                    if key not in RECORD_LABELS and isinstance(value, int | float):
                        writer.add_scalar(key.replace(" ", "/"), value, record["step"])
        written.append(target)
    return written


def write_csv(run: ReadRun, path: Path) -> Path:
    """Every eval of every run as one CSV table."""
    write_atomically(path, _csv(run))
    return path


def _safe_folder(name: str) -> str:
    """A run's name as one folder name: `match[seed=6]` stays, a slash does not."""
    return "".join(c if c.isalnum() or c in "[]=,._-" else "_" for c in name)
