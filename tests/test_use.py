"""`use "file.clamp"`: includes read in at their line, relative to the including file,
inside the spec's tree (the top file's folder, or the folder above it marked
`.clamp-root`); later statements override earlier ones; cycles, missing files, deep nesting
and errors in included files are located and show the chain."""

import os

import pytest
from conftest import ROOT

from clampdsl.compile import compile_file, compile_source
from clampdsl.compile.includes import MAX_DEPTH
from clampdsl.compile.tree import ROOT_MARKER
from clampdsl.lang.diagnostics import SpecError

LIB = """clampdsl 1
model attention-only layers=2 heads=8 d_model=64
task  fewshot classes=50 labels=5 context=2
train steps=4000 lr=1e-4
phase train.loss < 0.4 * ln2

let IH     = L2.H3
let S      = 0.9
"""
BODY = """
experiment match:
    clamp IH to induction strength S
"""


def write(folder, name: str, text: str):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def hash_of(path) -> str:
    return compile_file(path).content_hash()


def errors_of(path) -> list:
    with pytest.raises(SpecError) as raised:
        compile_file(path)
    return raised.value.diagnostics


def test_an_include_compiles_to_the_plan_of_its_text_written_in(tmp_path):
    write(tmp_path, "lib/base.clamp", LIB)
    top = write(tmp_path, "top.clamp", 'clampdsl 1\nuse "lib/base.clamp"\n' + BODY)
    inline = write(tmp_path, "inline.clamp", LIB + BODY)
    assert hash_of(top) == hash_of(inline)
    plan = compile_file(top)
    assert plan.runs[0].interventions[0].text == "clamp IH to induction strength S"


def test_paths_are_relative_to_the_including_file(tmp_path):
    write(tmp_path, "lib/numbers.clamp", "clampdsl 1\nlet S = 0.9\n")
    write(tmp_path, "lib/base.clamp", LIB.replace("let S      = 0.9\n", 'use "numbers.clamp"\n'))
    top = write(tmp_path, "top.clamp", 'clampdsl 1\nuse "lib/base.clamp"\n' + BODY)
    assert hash_of(top) == hash_of(write(tmp_path, "inline.clamp", LIB + BODY))


def test_later_statements_override_earlier_ones(tmp_path):
    write(tmp_path, "base.clamp", LIB + "\nexperiment baseline\n")
    top = write(
        tmp_path,
        "top.clamp",
        'clampdsl 1\nuse "base.clamp"\n'
        "train steps=3000\nlet S = 0.8\nphase train.loss < 0.3 * ln2\n"
        'experiment baseline "mine":\n    ablate L2.H0\n' + BODY,
    )
    plan = compile_file(top)
    assert [r.name for r in plan.runs] == ["baseline", "match"]
    assert plan.runs[0].description == "mine"
    assert plan.runs[1].train.steps == 3000
    assert plan.runs[1].interventions[0].params["strength"] == pytest.approx(0.8)
    assert plan.phase.threshold == pytest.approx(0.3 * 0.6931471805599453)


def test_a_name_defined_twice_in_one_file_is_still_an_error(tmp_path):
    write(tmp_path, "base.clamp", LIB)
    top = write(
        tmp_path, "top.clamp", 'clampdsl 1\nuse "base.clamp"\nlet S = 1\nlet S = 2\n' + BODY
    )
    (diagnostic,) = errors_of(top)
    assert "S is already defined (line 3)" in diagnostic.message
    assert (diagnostic.span.file, diagnostic.span.line) == (str(top), 4)


def test_a_file_used_twice_is_read_in_once(tmp_path):
    write(tmp_path, "base.clamp", LIB)
    write(tmp_path, "a.clamp", 'clampdsl 1\nuse "base.clamp"\n')
    top = write(tmp_path, "top.clamp", 'clampdsl 1\nuse "base.clamp"\nuse "a.clamp"\n' + BODY)
    assert hash_of(top) == hash_of(write(tmp_path, "inline.clamp", LIB + BODY))


def test_an_error_in_an_included_file_names_it_and_the_chain(tmp_path):
    write(tmp_path, "lib/inner.clamp", "clampdsl 1\nlet S = 0.9\nmodel layers=0\n")
    write(tmp_path, "lib/outer.clamp", 'clampdsl 1\n\nuse "inner.clamp"\n')
    top = write(tmp_path, "top.clamp", 'clampdsl 1\nuse "lib/outer.clamp"\nlet IH = L2.H3\n' + BODY)
    with pytest.raises(SpecError) as raised:
        compile_file(top)
    (diagnostic,) = raised.value.diagnostics
    inner = str(tmp_path / "lib" / "inner.clamp")
    assert (diagnostic.span.file, diagnostic.span.line, diagnostic.span.column) == (inner, 3, 14)
    assert "layers=0 is out of range" in diagnostic.message
    assert f"included from {tmp_path / 'lib' / 'outer.clamp'}:3 ← {top}:2" in diagnostic.hint
    assert f"{inner}:3:14: error" in str(raised.value)
    assert "model layers=0" in str(raised.value)  # the included file's line is shown


def test_a_syntax_error_in_an_included_file_names_it(tmp_path):
    write(tmp_path, "bad.clamp", "clampdsl 1\nlet = 3\n")
    top = write(tmp_path, "top.clamp", 'clampdsl 1\nuse "bad.clamp"\n' + BODY)
    (diagnostic,) = errors_of(top)
    assert (diagnostic.span.file, diagnostic.span.line) == (str(tmp_path / "bad.clamp"), 2)
    assert diagnostic.hint.endswith(f"included from {top}:2")


def test_a_missing_file_is_an_error_at_the_use_line(tmp_path):
    write(tmp_path, "a.clamp", 'clampdsl 1\nuse "gone.clamp"\n')
    top = write(tmp_path, "top.clamp", 'clampdsl 1\nuse "a.clamp"\n' + LIB[11:] + BODY)
    (diagnostic,) = errors_of(top)
    assert diagnostic.message.startswith("cannot read 'gone.clamp'")
    assert (diagnostic.span.file, diagnostic.span.line, diagnostic.span.column) == (
        str(tmp_path / "a.clamp"),
        2,
        5,
    )
    assert diagnostic.hint == f"included from {top}:2"


def test_a_cycle_of_includes_is_an_error_showing_the_chain(tmp_path):
    write(tmp_path, "a.clamp", 'clampdsl 1\nuse "b.clamp"\n')
    write(tmp_path, "b.clamp", 'clampdsl 1\nuse "a.clamp"\n')
    top = write(tmp_path, "top.clamp", 'clampdsl 1\nuse "a.clamp"\n' + LIB[11:] + BODY)
    (diagnostic,) = errors_of(top)
    assert "'a.clamp' includes itself (a cycle of includes)" in diagnostic.message
    assert diagnostic.span.file == str(tmp_path / "b.clamp")
    assert diagnostic.hint == f"included from {tmp_path / 'a.clamp'}:2 ← {top}:2"


def test_a_file_including_itself_is_a_cycle(tmp_path):
    top = write(tmp_path, "top.clamp", 'clampdsl 1\nuse "top.clamp"\n' + LIB[11:] + BODY)
    (diagnostic,) = errors_of(top)
    assert "includes itself" in diagnostic.message
    assert diagnostic.hint is None


def test_includes_nest_at_most_the_depth_limit(tmp_path):
    for depth in range(MAX_DEPTH + 1):
        write(tmp_path, f"d{depth}.clamp", f'clampdsl 1\nuse "d{depth + 1}.clamp"\n')
    write(tmp_path, f"d{MAX_DEPTH + 1}.clamp", "clampdsl 1\n")
    top = write(tmp_path, "top.clamp", 'clampdsl 1\nuse "d1.clamp"\n' + LIB[11:] + BODY)
    (diagnostic,) = errors_of(top)
    assert f"includes nest deeper than {MAX_DEPTH} files" in diagnostic.message
    assert diagnostic.span.file == str(tmp_path / f"d{MAX_DEPTH}.clamp")
    assert diagnostic.hint.count("←") == MAX_DEPTH - 1
    # one level less is fine
    write(tmp_path, f"d{MAX_DEPTH}.clamp", "clampdsl 1\n")
    compile_file(top)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../outside.clamp", "'../outside.clamp' leads out of the top file's folder"),
        ("lib/../../outside.clamp", "leads out of the top file's folder"),
        ("/etc/passwd", "relative to the file that writes it"),
        ("C:\\\\specs\\\\x.clamp", "relative to the file that writes it"),
    ],
)
def test_an_include_may_not_leave_the_top_files_folder(tmp_path, path, message):
    write(tmp_path, "outside.clamp", "clampdsl 1\n")
    top = write(tmp_path, "in/top.clamp", f'clampdsl 1\nuse "{path}"\n' + LIB[11:] + BODY)
    (diagnostic,) = errors_of(top)
    assert message in diagnostic.message
    assert (diagnostic.span.line, diagnostic.span.column) == (2, 5)


def test_a_symbolic_link_leading_out_is_refused(tmp_path):
    write(tmp_path, "outside.clamp", "clampdsl 1\n")
    (tmp_path / "in").mkdir()
    os.symlink(tmp_path / "outside.clamp", tmp_path / "in" / "link.clamp")
    top = write(tmp_path, "in/top.clamp", 'clampdsl 1\nuse "link.clamp"\n' + LIB[11:] + BODY)
    (diagnostic,) = errors_of(top)
    assert "'link.clamp' leads out of the top file's folder" in diagnostic.message
    assert ROOT_MARKER in diagnostic.message  # how to widen the tree, in the error
    # a link that stays inside is followed
    write(tmp_path, "in/lib.clamp", "clampdsl 1\n")
    os.symlink(tmp_path / "in" / "lib.clamp", tmp_path / "in" / "inside.clamp")
    top.write_text('clampdsl 1\nuse "inside.clamp"\n' + LIB[11:] + BODY)
    compile_file(top)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("secrets.env", "'secrets.env' is not a spec: a spec's name ends in .clamp"),
        (".env", "'.env' is a hidden file, not a spec"),
        (".hidden.clamp", "is a hidden file"),
        ("looks.clamp", "'looks.clamp' leads to '.env', which is a hidden file"),  # a link
        ("lib/..", "'lib/..' leads to"),  # a folder
        ("notes.txt", "is not a spec"),
    ],
)
def test_an_include_reads_only_a_spec_and_shows_nothing_of_another_file(tmp_path, path, message):
    secret = "API_KEY=hunter2\n"
    for name in ("secrets.env", ".env", ".hidden.clamp", "notes.txt"):
        write(tmp_path, name, secret)
    os.symlink(tmp_path / ".env", tmp_path / "looks.clamp")
    (tmp_path / "lib").mkdir()
    top = write(tmp_path, "top.clamp", f'clampdsl 1\nuse "{path}"\n' + LIB[11:] + BODY)
    with pytest.raises(SpecError) as raised:
        compile_file(top)
    (diagnostic,) = raised.value.diagnostics
    assert message in diagnostic.message
    assert (diagnostic.span.line, diagnostic.span.column) == (2, 5)
    assert "hunter2" not in str(raised.value)


def test_a_marked_folder_above_is_the_tree_its_specs_include_from(tmp_path):
    write(tmp_path, "specs/lib/setup.clamp", LIB)
    top = write(tmp_path, "specs/paper/fig.clamp", 'clampdsl 1\nuse "../lib/setup.clamp"\n' + BODY)
    (diagnostic,) = errors_of(top)  # unmarked, the tree is the top file's folder
    assert "leads out of the top file's folder" in diagnostic.message
    write(tmp_path, f"specs/{ROOT_MARKER}", "")
    assert hash_of(top) == hash_of(write(tmp_path, "specs/paper/inline.clamp", LIB + BODY))
    # the marked folder bounds the tree: nothing above it, by `..` or by a link
    write(tmp_path, "outside.clamp", "clampdsl 1\n")
    top.write_text('clampdsl 1\nuse "../../outside.clamp"\n' + LIB[11:] + BODY)
    (diagnostic,) = errors_of(top)
    assert f"leads out of the spec's tree, {tmp_path / 'specs'}" in diagnostic.message
    os.symlink(tmp_path / "outside.clamp", tmp_path / "specs" / "lib" / "link.clamp")
    top.write_text('clampdsl 1\nuse "../lib/link.clamp"\n' + LIB[11:] + BODY)
    (diagnostic,) = errors_of(top)
    assert "'../lib/link.clamp' leads out of the spec's tree" in diagnostic.message


def test_an_included_file_must_be_version_one(tmp_path):
    write(tmp_path, "v2.clamp", "clampdsl 2\n")
    top = write(tmp_path, "top.clamp", 'clampdsl 1\nuse "v2.clamp"\n' + LIB[11:] + BODY)
    (diagnostic,) = errors_of(top)
    assert "only version 1 exists" in diagnostic.message
    assert diagnostic.span.file == str(tmp_path / "v2.clamp")


EXAMPLE = """clampdsl 1

use "lib/induction.clamp"

train steps=3000                             # overrides the library's steps=4500

experiment baseline "all heads live"

experiment match "A+B given":
    clamp IH to induction
    ablate OTHERS
"""


def test_the_shipped_library_read_in_equals_its_text_written_in():
    """The docs' example, as a spec beside specs/lib (not shipped: the shipped specs are
    also compiled from elsewhere, where the library is not)."""
    library = (ROOT / "specs" / "lib" / "induction.clamp").read_text()
    inline = library + EXAMPLE.split('use "lib/induction.clamp"\n', 1)[1]
    where = str(ROOT / "specs" / "example.clamp")
    plan = compile_source(EXAMPLE, where)
    assert plan.content_hash() == compile_source(inline, where).content_hash()
    assert [r.name for r in plan.runs] == ["baseline", "match"]
    assert plan.runs[1].train.steps == 3000
