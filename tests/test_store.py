"""The run directory trusts no file: damaged, truncated or foreign checkpoints are refused
before use (or replaced by the previous good one), a damaged summary or metrics file is
rebuilt from the checkpoints, JSON is strict, and one process writes a directory at a time."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import RESUMABLE, TIMINGS

from clampdsl import api
from clampdsl.compile import compile_source
from clampdsl.durable import RecoveryWarning
from clampdsl.report.store import RunLocked, RunStore
from clampdsl.report.summary import RunSummary, summarize
from clampdsl.train.checkpoint import CheckpointError

SPEC = RESUMABLE


class Killed(Exception):
    pass


def stop_at(step):
    def on_group(index, runs, total, start):
        def on_progress(at, losses):
            if at == step:
                raise Killed

        return on_progress

    return on_group


def summary_of(directory) -> dict:
    summary = json.loads((directory / "summary.json").read_text())
    return {k: v for k, v in summary.items() if k not in TIMINGS}


@pytest.fixture(scope="module")
def unbroken(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unbroken")
    (folder / "spec.clamp").write_text(SPEC)
    result = api.run(folder / "spec.clamp", folder / "out", device="cpu", compile="off")
    assert json.loads((result.directory / "summary.json").read_text())["resumed"] is False
    assert "resumed" not in (result.directory / "report.md").read_text()
    return (result.directory / "metrics.jsonl").read_text(), summary_of(result.directory)


@pytest.fixture
def stopped(tmp_path):
    """A run stopped at step 35: its checkpoints are at 30 (group0.pt) and 15 (the previous)."""
    spec = tmp_path / "spec.clamp"
    spec.write_text(SPEC)
    with pytest.raises(Killed):
        api.run(spec, tmp_path / "out", device="cpu", compile="off", on_group=stop_at(35))
    (directory,) = (tmp_path / "out" / "spec").iterdir()
    return spec, directory


def resume(spec):
    return api.run(spec, spec.parent / "out", device="cpu", compile="off")


def test_a_flipped_bit_falls_back_to_the_previous_checkpoint(stopped, unbroken):
    spec, directory = stopped
    checkpoint = directory / "checkpoints" / "group0.pt"
    data = bytearray(checkpoint.read_bytes())
    data[len(data) // 2] ^= 0x10
    checkpoint.write_bytes(bytes(data))
    with pytest.warns(RecoveryWarning, match=r"group0.pt: damaged .* at step 15"):
        result = resume(spec)
    assert (directory / "metrics.jsonl").read_text() == unbroken[0]
    assert summary_of(result.directory) == unbroken[1]
    assert (directory / "checkpoints" / "group0.pt.damaged").is_file()  # kept for a look
    # its seconds are this try's, and it says so
    assert json.loads((directory / "summary.json").read_text())["resumed"] is True
    assert "counted from where it resumed" in (directory / "report.md").read_text()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: data[: len(data) // 3], "damaged"),
        (lambda data: b"", "not a clampdsl checkpoint"),
        (lambda data: b"PK\x03\x04" + data[4:], "not a clampdsl checkpoint"),
        (lambda data: data.replace(b'"version": 1', b'"version": 9'), "written by another"),
    ],
    ids=["truncated", "emptied", "header garbled", "another version"],
)
def test_a_damaged_checkpoint_without_a_good_one_is_refused_by_name(stopped, damage, message):
    spec, directory = stopped
    folder = directory / "checkpoints"
    (folder / "group0.prev.pt").unlink()
    (folder / "group0.pt").write_bytes(damage((folder / "group0.pt").read_bytes()))
    with pytest.raises(CheckpointError, match=f"group0.pt: {message}.*--fresh"):
        resume(spec)
    fresh = api.run(spec, spec.parent / "out", device="cpu", compile="off", fresh=True)
    assert fresh.summaries[0].name == "base"


def test_another_plans_checkpoint_is_refused(stopped, tmp_path):
    spec, directory = stopped
    other = tmp_path / "other.clamp"
    other.write_text(SPEC.replace("lr=1e-3", "lr=2e-3"))
    with pytest.raises(Killed):
        api.run(other, tmp_path / "out", device="cpu", compile="off", on_group=stop_at(35))
    (foreign,) = (tmp_path / "out" / "other").iterdir()
    for name in ("group0.pt", "group0.prev.pt"):
        theirs = (foreign / "checkpoints" / name).read_bytes()
        (directory / "checkpoints" / name).write_bytes(theirs)
    with pytest.raises(CheckpointError, match="group0.pt: belongs to another plan"):
        resume(spec)


def test_the_cli_reports_a_damaged_checkpoint_in_one_line(stopped):
    spec, directory = stopped
    (directory / "checkpoints" / "group0.prev.pt").unlink()
    (directory / "checkpoints" / "group0.pt").write_bytes(b"garbage")
    command = [
        sys.executable,
        "-m",
        "clampdsl",
        "run",
        spec.name,
        "--out",
        "out",
        "--compile",
        "off",
    ]
    done = subprocess.run(command, cwd=spec.parent, capture_output=True, text=True)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "group0.pt: not a clampdsl checkpoint" in done.stderr


@pytest.mark.parametrize(
    "name, damage",
    [
        ("summary.json", lambda text: text[:20]),
        ("summary.json", lambda text: text.replace('"base"', '"bass"')),
        ("metrics.jsonl", lambda text: text[: len(text) // 2]),
        ("metrics.jsonl", lambda text: text + text.splitlines(keepends=True)[0]),
    ],
    ids=["summary cut", "summary edited", "metrics cut mid-line", "metrics row doubled"],
)
def test_a_finished_run_with_damaged_results_is_rebuilt(tmp_path, unbroken, name, damage):
    spec = tmp_path / "spec.clamp"
    spec.write_text(SPEC)
    directory = api.run(spec, tmp_path / "out", device="cpu", compile="off").directory
    (directory / name).write_text(damage((directory / name).read_text()))
    assert api.load(spec, tmp_path / "out") is None  # not taken for a finished run
    with pytest.warns(RecoveryWarning, match="rebuilt from the checkpoints"):
        rebuilt = resume(spec)
    assert not rebuilt.reused
    assert (directory / "metrics.jsonl").read_text() == unbroken[0]
    assert summary_of(directory) == unbroken[1]
    assert api.load(spec, tmp_path / "out").reused


def test_metrics_and_summaries_are_strict_json(tmp_path):
    plan = compile_source(SPEC, str(tmp_path / "spec.clamp"))
    store = RunStore(tmp_path / "out", plan, SPEC)
    store.prepare()
    records = [
        {"run": "base", "step": 0, "sequences": 0, "train.loss": 2.0, "train.acc": 0.2},
        {"run": "base", "step": 10, "sequences": 80, "train.loss": math.inf, "train.acc": 0.1},
        {"run": "base", "step": 20, "sequences": 160, "train.loss": math.nan, "train.acc": 0.1},
    ]
    store.write_records(records[:1])
    store.append_records(records[1:])
    (summary,) = summarize(plan, store.read_records())
    assert summary.diverged_at == 10
    store.write_summary({"runs": [summary.to_json()]})

    def refuse(constant):
        raise AssertionError(f"bare {constant} in JSON")

    for line in store.metrics_path.read_text().splitlines():
        json.loads(line, parse_constant=refuse)
    json.loads(store.summary_path.read_text(), parse_constant=refuse)
    read_back = [r["train.loss"] for r in store.read_records()]
    assert read_back[0] == 2.0 and all(math.isnan(loss) for loss in read_back[1:])  # null
    again = RunSummary.from_json(store.finished()["runs"][0])
    assert again.diverged_at == 10 and math.isnan(again.final["train.loss"])


def test_a_second_writer_is_refused_and_a_killed_holder_releases(tmp_path):
    spec = tmp_path / "spec.clamp"
    spec.write_text(SPEC)
    store = RunStore(tmp_path / "out", compile_source(SPEC, str(spec)), SPEC)
    holder = (
        "import sys, time\n"
        "from clampdsl.compile import compile_source\n"
        "from clampdsl.report.store import RunStore\n"
        "plan = compile_source(sys.argv[1], sys.argv[2])\n"
        "store = RunStore(sys.argv[3], plan, '')\n"
        "with store.lock():\n    print('held', flush=True)\n    time.sleep(600)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", holder, SPEC, str(spec), str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline() == "held\n"
        with pytest.raises(RunLocked, match=rf"another clampdsl run \(pid {child.pid} on"):
            api.run(spec, tmp_path / "out", device="cpu", compile="off")
        command = [sys.executable, "-m", "clampdsl", "run", spec.name, "--out", "out"]
        refused = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
        assert refused.returncode == 1 and "is being written by another" in refused.stderr
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    time.sleep(0.1)
    with store.lock():  # the kernel released the dead holder's lock: not stale, just free
        pass
    assert api.run(spec, tmp_path / "out", device="cpu", compile="off").summaries
