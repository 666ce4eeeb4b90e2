"""The Plan: JSON round trip, a content hash that ignores positions, the torch-free half."""

import json
import subprocess
import sys

import pytest
from conftest import ROOT

from clampdsl.compile import compile_file, compile_source
from clampdsl.compile.plan import Plan
from clampdsl.report.store import run_directory

MAIN = ROOT / "specs" / "three_subcircuits.clamp"


def test_json_round_trip_is_exact():
    plan = compile_file(MAIN)
    text = json.dumps(plan.to_json())
    again = Plan.from_json(json.loads(text))
    assert again == plan
    assert json.dumps(again.to_json()) == text


def test_hash_ignores_comments_and_layout_but_not_meaning():
    source = MAIN.read_text()
    here, there = str(MAIN.parent / "a.clamp"), str(MAIN.parent / "b.clamp")  # beside lib/
    plan = compile_source(source, here)
    moved = compile_source(
        "# a new first line\n" + source.replace("    ablate OTHERS", "    ablate OTHERS  # !"),
        there,
    )
    assert moved.content_hash() == plan.content_hash()
    assert moved.runs[0].span.line == plan.runs[0].span.line + 1
    edited = source.replace("clamp IH to induction", "clamp IH to induction strength 0.9")
    changed = compile_source(edited, here)
    assert changed.content_hash() != plan.content_hash()


def test_main_spec_is_the_six_fig5b_experiments():
    plan = compile_file(MAIN)
    assert [r.name for r in plan.runs] == [
        "noclamp",
        "prev_token",
        "layer1",
        "match",
        "copy",
        "layer1_copy",
    ]
    assert len(plan.groups) == 1  # one batched model for all six


@pytest.mark.parametrize(
    ("commands", "absent"),
    [
        (
            [["validate", str(MAIN)]],
            (
                "torch",
                "matplotlib",
                "clampdsl.api",
                "clampdsl.report",
                "clampdsl.train",
                "pydantic",
                "rich",
            ),
        ),
        ([["plan", str(MAIN)], ["fmt", str(MAIN)], ["--help"]], ("torch", "matplotlib")),
    ],
    ids=["validate", "plan-fmt-help"],
)
def test_language_half_never_imports_torch(commands, absent):
    code = (
        "import sys; import clampdsl; from clampdsl import cli\n"
        f"clampdsl.compile_file({str(MAIN)!r})\n"
        f"for args in {commands!r}:\n"
        "    cli.app(args, standalone_mode=False)\n"
        f"print('imported:', [m for m in {absent!r} if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "imported: []"


@pytest.mark.parametrize(
    "file", ["...clamp", "..clamp", "../up/x.clamp", "/abs/x.clamp", "a b$(rm).clamp", ".clamp"]
)
def test_a_run_directory_lies_two_levels_inside_the_output_root_whatever_the_spec_name(
    tmp_path, file
):
    plan = compile_source("clampdsl 1\nexperiment e\n", file)
    directory = run_directory(tmp_path, plan)
    assert directory.resolve().parent.parent == tmp_path.resolve()
    assert directory.parent.name not in ("", ".", "..")
