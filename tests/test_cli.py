"""The command line, as a user meets it: exit codes, positioned errors, a whole run."""

import json
import re
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, clampdsl

from clampdsl import api


def test_validate_accepts_the_shipped_specs():
    result = clampdsl("validate", *sorted((ROOT / "specs").rglob("*.clamp")))
    assert result.returncode == 0, result.stderr
    assert "three_subcircuits.clamp: ok (6 experiments, 1 batched group)" in result.stdout
    assert "fig4b.clamp: ok (9 experiments, 1 batched group)" in result.stdout


def test_validate_reports_every_error_with_position_and_exits_2(tmp_path):
    bad = tmp_path / "bad.clamp"
    bad.write_text(
        "clampdsl 1\nexperiment e:\n    clamp L3.H2 to prev-token\n    clamp L1.H2 to prev-tokn\n"
    )
    good = ROOT / "specs" / "three_subcircuits.clamp"
    result = clampdsl("validate", good, bad)
    assert result.returncode == 2
    assert f"{bad}:3:11: error: layer L3 does not exist" in result.stderr
    assert "    3 |     clamp L3.H2 to prev-token\n      |           ^^" in result.stderr
    assert f"{bad}:4:20: error: unknown clamp target 'prev-tokn'" in result.stderr
    assert "did you mean prev-token?" in result.stderr
    assert "2 errors" in result.stderr
    assert "Traceback" not in result.stderr


def test_syntax_errors_and_missing_files_exit_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.clamp"
    bad.write_text("clampdsl 1\nexperiment e:\n    clamp L1.H2 prev-token\n")
    for args in (
        ("validate", bad),
        ("plan", bad),
        ("run", bad, "--out", tmp_path),
        ("validate", tmp_path / "missing.clamp"),
    ):
        result = clampdsl(*args)
        assert result.returncode == 2, args
        assert "error:" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "bad").exists()  # a wrong spec never reaches the trainer


def test_plan_prints_the_specs_words_tensor_indices_and_graphs_and_json():
    spec = ROOT / "specs" / "three_subcircuits.clamp"
    text = clampdsl("plan", spec)
    assert text.returncode == 0
    rows = [line.split("  tensor ") for line in text.stdout.splitlines() if "  tensor " in line]
    shown = {words.strip(): tensor.split(" · ")[0] for words, tensor in rows}
    assert shown["clamp L1.H2 to prev-token strength 1"] == "layer 0, heads [2]"
    assert shown["ablate L2.H* except H3"] == "layer 1, heads [0, 1, 2, 4, 5, 6, 7]"
    assert shown["clamp logits to scores of L2.H3"] == "source layer 1, head 3"
    assert "  compiles 3 graphs: the train step, 2 eval graphs\n" in text.stdout
    assert "first + final pass, L1 bypassed, logits from the first pass\n" in text.stdout
    assert "measures: induction-strength of L2.H*, prev-token-strength of L1.H*" in text.stdout
    machine = clampdsl("plan", spec, "--json")
    plan = json.loads(machine.stdout)
    assert [r["name"] for r in plan["runs"]][:2] == ["noclamp", "prev_token"]


def test_plan_lines_stay_whole_through_a_pipe(tmp_path):
    description = "a description far longer than any terminal is wide " * 4
    spec = tmp_path / "long.clamp"
    spec.write_text(
        f'clampdsl 1\nexperiment e "{description.strip()}":\n'
        "    clamp L1.H2 to prev-token strength 0.9 at labels from step 100 until step 3000 "
        "during train\n"
    )
    result = clampdsl("plan", spec)  # stdout is a pipe, not a terminal
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    run = [line for line in lines if line.startswith(f"  e {description.strip()!r}  gives ")]
    assert run and run[0].endswith(", seed 5, 50 classes · final pass")
    statement = (
        "    clamp L1.H2 to prev-token strength 0.9 at labels from step 100 (3,200 sequences) "
        "until step 3,000 (96,000 sequences) during train  tensor layer 0, heads [2] · line 3"
    )
    assert statement in lines


def test_run_end_to_end_writes_the_run_directory(tmp_path, tiny_spec):
    result = clampdsl("run", tiny_spec, "--out", tmp_path, "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "Phase change by experiment" in result.stdout
    assert "Final evaluation (loss / accuracy" in result.stdout
    for name in ("base", "copy", "l1", "pt"):
        assert name in result.stdout
    (directory,) = (tmp_path / "tiny").iterdir()
    expected = {
        "spec.clamp",
        "plan.json",
        "metrics.jsonl",
        "report.md",
        "summary.json",
        "curves.png",
        "checkpoints",
    }
    assert expected <= {p.name for p in directory.iterdir()}
    records = [json.loads(line) for line in (directory / "metrics.jsonl").open()]
    assert len(records) == 4 * 4  # 4 runs × evals at steps 0, 20, 40, 60
    assert {"train.loss", "relabel.acc", "new-classes.loss", "induction-strength L2.H1"} <= set(
        records[0]
    )
    report = (directory / "report.md").read_text()
    assert "| experiment | gives | learns |" in report
    assert "| experiment | train | relabel | new-classes |" in report
    assert "induction-strength L2.H0" in report  # every measured head
    summary = json.loads((directory / "summary.json").read_text())
    assert 0 < summary["eval_seconds"] < summary["seconds"]
    phases = summary["phases"]  # where the wall time went, as `--profile` prints it
    assert {"plan", "imports", "group 1: build", "group 1: first step"} <= set(phases)
    assert phases["group 1: evals"] == summary["eval_seconds"]
    assert f"({summary['eval_seconds']:.0f} s of it in evals)" in report
    assert (directory / "spec.clamp").read_text() == tiny_spec.read_text()
    again = clampdsl("run", tiny_spec, "--out", tmp_path, "--device", "cpu", "--profile")
    assert "reusing the finished run" in again.stdout
    assert "Where the time went" in again.stdout
    assert "imports" in again.stdout and "group 1" not in again.stdout  # nothing trained


def test_profile_shows_each_phase_of_a_run(tmp_path, tiny_spec):
    result = clampdsl("run", tiny_spec, "--out", tmp_path, "--compile", "off", "--profile")
    assert result.returncode == 0, result.stderr
    table = result.stdout[result.stdout.index("Where the time went") :]
    phases = ["start-up, checks", "plan", "imports", "group 1: build", "group 1: first step"]
    phases += ["group 1: train", "group 1: evals", "group 1: checkpoints", "report", "all"]
    rows = {line.split("│")[1].strip(): line for line in table.splitlines() if "│" in line}
    assert phases == [name for name in rows if name in phases]
    assert rows["all"].split("│")[3].strip() == "100%"


def test_ctrl_c_saves_a_checkpoint_exits_130_and_the_same_command_resumes(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "long.clamp"
    path.write_text(
        "clampdsl 1\nmodel layers=2 heads=2 d_model=16\n"
        "task classes=10 new_classes=10 features=synthetic(dim=16, correlation=0.5)\n"
        "train steps=2000 batch=8 lr=1e-3 checkpoint_every=100000\n"
        "eval every 250 steps on train size=64\nexperiment base\n"
    )
    command = [sys.executable, "-m", "clampdsl", "run", path, "--out", tmp_path, "--compile"]
    child = subprocess.Popen([*command, "off"], stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "long"
    deadline = time.monotonic() + 60
    while not any(m.stat().st_size for m in metrics.rglob("metrics.jsonl")):  # training began
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr
    assert "checkpoint saved, the same command resumes" in stderr
    assert "Traceback" not in stderr
    (checkpoint,) = metrics.rglob("group0.pt")
    step = json.loads(checkpoint.read_bytes().partition(b"\n")[0])["step"]  # its header
    assert 0 <= step < 2000  # saved where it stopped, not at a checkpoint of the cadence
    resumed = subprocess.run([*command, "off"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    rows = [json.loads(line) for line in next(metrics.rglob("metrics.jsonl")).open()]
    assert [r["step"] for r in rows] == list(range(0, 2001, 250))


def test_a_diverged_run_is_a_result_exit_0_with_a_warning_and_its_step(tmp_path):
    import numpy

    # features at float32's edge: every score overflows, the loss is NaN from the start
    numpy.save(tmp_path / "big.npy", numpy.full((20, 5, 16), 3e38, dtype=numpy.float32))
    (tmp_path / "spec.clamp").write_text(
        "clampdsl 1\nmodel layers=2 heads=2 d_model=16\ntask classes=10 new_classes=10 "
        'features=file("big.npy")\ntrain steps=4 batch=8\neval every 2 steps on train '
        "size=16\nexperiment a\n"
    )
    result = clampdsl("run", tmp_path / "spec.clamp", "--out", tmp_path, "--compile", "off")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "warning: a diverged (non-finite loss at step 0)\n"
    (summary,) = tmp_path.glob("spec/*/summary.json")
    assert json.loads(summary.read_text())["diverged"] == {"a": 0}


def test_usage_errors_exit_64_before_anything_is_written(tmp_path):
    good = ROOT / "specs" / "three_subcircuits.clamp"
    for args in (
        ["run", good, "--compile", "maybe"],
        ["run", good, "--device", "banana"],
        ["validate", "--bogus"],
    ):
        result = clampdsl(*args, "--out", tmp_path) if args[0] == "run" else clampdsl(*args)
        assert result.returncode == 64, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert not any(tmp_path.iterdir())
    assert clampdsl("validate", tmp_path / "missing.clamp").returncode == 2  # a spec error


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"compile": "maybe"}, "compile='maybe' is not one of auto, on, off"),
        ({"device": "banana"}, "'banana' is not a device"),
        pytest.param(
            {"device": "cuda"},
            "no CUDA device here",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is here"),
        ),
    ],
    ids=["compile", "device", "cuda"],
)
def test_the_apis_options_are_checked_as_the_clis_before_anything_is_written(
    tmp_path, options, message
):
    with pytest.raises(ValueError, match=re.escape(message)):
        api.run(ROOT / "specs" / "three_subcircuits.clamp", tmp_path, **options)
    assert not any(tmp_path.iterdir())


def test_version_and_every_commands_help_has_an_example():
    from clampdsl import __version__

    version = clampdsl("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"clampdsl {__version__}"
    for command in ([], ["validate"], ["plan"], ["fmt"], ["run"], ["lsp"], ["cache", "export"]):
        shown = clampdsl(*command, "--help")
        assert shown.returncode == 0 and "Example: clampdsl" in shown.stdout, command
        if command in (["validate"], ["fmt"], ["run"], ["cache", "export"]):  # several files
            assert f"clampdsl {' '.join(command)} [OPTIONS] {{FILE...}}" in shown.stdout


def test_ray_without_its_extra_exits_2_saying_what_to_install(tmp_path):
    hidden = "import sys; sys.modules['ray'] = None\n"
    args = ["run", str(ROOT / "specs" / "three_subcircuits.clamp"), "--backend", "ray"]
    code = hidden + f"sys.argv[1:] = {[*args, '--out', str(tmp_path)]!r}\n"
    result = subprocess.run(
        [sys.executable, "-c", code + "from clampdsl.cli import main; main()"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr == "the ray backend needs the ray extra: pip install 'clampdsl[ray]'\n"
    assert not any(tmp_path.iterdir())


def test_the_core_never_imports_ray():
    code = (
        "import sys, clampdsl.cli, clampdsl.api, clampdsl.executors.processes\n"
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_backend_options_that_do_not_fit_are_usage_errors(tmp_path):
    good = ROOT / "specs" / "three_subcircuits.clamp"
    for args, says in (
        (["--backend", "slurm"], "'slurm' is not one of local, ray"),
        (["--address", "10.0.0.1:6379"], "--address names a Ray cluster"),
        (["--backend", "ray", "--jobs", "2"], "--jobs is for --backend local"),
    ):
        result = clampdsl("run", good, *args, "--out", tmp_path)
        assert result.returncode == 64, (args, result.stderr)
        assert says in result.stderr
    assert not any(tmp_path.iterdir())


def test_lsp_without_its_extra_exits_2_saying_what_to_install():
    hidden = "import sys; sys.modules['pygls'] = None; sys.argv[1:] = ['lsp']\n"
    code = hidden + "from clampdsl.cli import main; main()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == "the language server needs the lsp extra: pip install 'clampdsl[lsp]'\n"
