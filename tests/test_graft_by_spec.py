"""`graft L1 from spec "FILE.clamp" [experiment NAME] [seed N] [at step N]`: a donor that a
spec defines, found by its plan hash in the run store, trained first by the runner where
it has not finished and reused where it has; its path confined to the spec's tree."""

import pytest
import torch
from conftest import clampdsl
from reference_model import SETTINGS

from clampdsl import api
from clampdsl.compile import compile_file
from clampdsl.compile.run_folders import run_folder
from clampdsl.lang.diagnostics import SpecError
from clampdsl.report.store import RunStore
from clampdsl.train.checkpoint import CheckpointError, donor_weights
from clampdsl.train.session import GroupSession

TRAIN = "train steps=6 batch=4 lr=1e-2\neval every 3 steps on train size=20\n"
DONOR = (
    SETTINGS + TRAIN.replace("lr=1e-2", "lr=1e-2 keep_every=3") + "seeds 5, 6\n"
    "experiment pt:\n    clamp L1.H* to prev-token\nexperiment plain\n"
)
GRAFTED = 'experiment grafted:\n    graft L1 from spec "donor.clamp" {choice}\nexperiment base\n'
LENT = ("embed_w", "embed_b", "label_embed", "ln_g0", "ln_b0", "qkv0", "proj0")


def _write(folder, name, text):
    path = folder / name
    path.write_text(text)
    return path


def _grafting(folder, choice="experiment plain seed 6", name="graft.clamp"):
    return _write(folder, name, SETTINGS + TRAIN + GRAFTED.format(choice=choice))


@pytest.fixture
def folder(tmp_path):
    _write(tmp_path, "donor.clamp", DONOR)
    return tmp_path


def test_the_plan_names_the_donor_by_its_plan_hash_and_step(folder):
    plan = compile_file(_grafting(folder))
    donor_plan = compile_file(folder / "donor.clamp")
    graft = plan.run("grafted").interventions[0]
    donor = graft.donor
    assert donor.in_store and donor.file == str(folder / "donor.clamp")
    assert donor.plan_hash == donor_plan.content_hash()
    assert donor.path == run_folder(donor_plan.file, donor_plan.content_hash()).as_posix()
    assert (donor.run, donor.step) == ("plain[seed=6]", 6)  # its last step, without `at step`
    early = compile_file(_grafting(folder, "experiment pt seed 5 at step 3"))
    brought = early.run("grafted").interventions
    assert [(i.kind, i.donor.run, i.donor.step) for i in brought] == [
        ("graft", "pt[seed=5]", 3),
        ("prev-token", "pt[seed=5]", 3),  # the donor's clamp on what it lends comes along
    ]


def test_the_plan_hash_depends_on_the_donor_and_not_on_where_it_is_written(folder):
    plan = compile_file(_grafting(folder))
    others = (
        "experiment plain seed 5",
        "experiment pt seed 6",
        "experiment plain seed 6 at step 3",
    )
    for choice in others:
        assert compile_file(_grafting(folder, choice)).content_hash() != plan.content_hash()
    _write(folder, "donor.clamp", DONOR.replace("lr=1e-2", "lr=2e-2"))  # another donor plan
    assert compile_file(_grafting(folder)).content_hash() != plan.content_hash()
    _write(folder, "donor.clamp", "# the same donor, a comment added\n" + DONOR)
    assert compile_file(_grafting(folder)).content_hash() == plan.content_hash()
    (folder / "sub").mkdir()
    _write(folder / "sub", "donor.clamp", DONOR)  # the same donor plan, in another file
    elsewhere = _grafting(folder, name="elsewhere.clamp")
    elsewhere.write_text(elsewhere.read_text().replace('"donor.clamp"', '"sub/./donor.clamp"'))
    moved = compile_file(elsewhere)
    assert moved.run("grafted").interventions[0].donor.file == str(folder / "sub" / "donor.clamp")
    assert moved.content_hash() == plan.content_hash()


def test_the_donor_trains_first_once_and_lends_its_weights(folder):
    out = folder / "runs"
    result = api.run(_grafting(folder), out, compile="off")
    donor = result.plan.run("grafted").interventions[0].donor
    donor_run = out / donor.path
    assert (donor_run / "summary.json").is_file()
    trained = (donor_run / "metrics.jsonl").stat().st_mtime_ns
    # the grafted run started from the donor's weights at its step
    session = GroupSession(result.plan, 0, store=out)
    index = [r.name for r in session.runs].index("grafted")
    lent = donor_weights(donor_run, donor)
    for name in LENT:
        assert torch.equal(session.model.weights[name][index], lent[name]), name
    # another spec taking the same donor, and the same spec again: the donor is reused
    other = api.run(_grafting(folder, name="other.clamp"), out, compile="off")
    assert not other.reused and api.run(_grafting(folder), out, compile="off").reused
    assert (donor_run / "metrics.jsonl").stat().st_mtime_ns == trained


def test_a_spec_whose_donor_cannot_train_fails_and_trains_nothing(folder):
    out = folder / "runs"
    donor = RunStore(out, compile_file(folder / "donor.clamp"), DONOR)
    refused = pytest.raises(api.DonorFailed, match="donor.clamp did not finish: .* another")
    with donor.lock(), refused:  # another clampdsl run writing the donor's run
        api.run(_grafting(folder), out, compile="off")
    assert not (out / "graft").exists()


def test_a_session_without_the_run_store_says_so(folder):
    with pytest.raises(CheckpointError, match="from a run store: none given"):
        GroupSession(compile_file(_grafting(folder)), 0)


def test_plan_shows_the_dependency_and_run_trains_the_donor_first(folder):
    spec = _grafting(folder)
    shown = clampdsl("plan", spec)
    assert shown.returncode == 0, shown.stderr
    donor = compile_file(folder / "donor.clamp")
    directory = run_folder(donor.file, donor.content_hash()).as_posix()
    assert f"needs {folder / 'donor.clamp'} (plan {donor.content_hash()[:12]})" in shown.stdout
    assert directory in shown.stdout
    # the donor given too, after the spec that grafts from it: trained once, first
    donor_file = folder / "donor.clamp"
    out = folder / "runs"
    ran = clampdsl("run", spec, donor_file, "--out", out, "--compile", "off", "--threads", "1")
    assert ran.returncode == 0, ran.stderr
    first, _, rest = ran.stdout.partition(f"{spec}:")
    assert f"donor specs first: {donor_file}" in first and "report:" in first
    assert "grafted" in rest and f"{donor_file}:" not in rest


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        ("experiment plane seed 6", "unknown experiment of the donor 'plane'"),
        ("experiment plain seed 7", "the donor spec has no run of experiment 'plain' at seed 7"),
        ("experiment plain", "the donor spec holds 2 runs: name one with `run NAME`"),
        ("run plain", "unknown run of the donor 'plain'"),
        ("run pt seed 5", "name the donor's run with `run NAME`, or with `experiment"),
        ("experiment pt experiment plain", "chosen twice"),
        ("experiment pt seed 5 at step 4", "the donor kept no weights at step 4"),
        ("experiment pt seed 5 solid", "graft is written"),
    ],
)
def test_a_choice_of_run_the_donor_spec_lacks_is_an_error_at_its_words(folder, choice, message):
    with pytest.raises(SpecError, match=message) as raised:
        compile_file(_grafting(folder, choice))
    assert raised.value.diagnostics[0].span.line == SETTINGS.count("\n") + 4


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("missing.clamp", "cannot read the donor spec: No such file"),
        ("/tmp/donor.clamp", "relative to the file that writes it"),
        ("../donor.clamp", "leads out of the top file's folder"),
        ("link.clamp", "leads out of the top file's folder"),
        ("donor.txt", "'donor.txt' is not a spec: a spec's name ends in .clamp"),
        (".donor.clamp", "is a hidden file, not a spec"),
        ("broken.clamp", r"the donor spec has errors: .*tree/broken.clamp:3:11: layer L3"),
        ("library.clamp", "has no experiments"),
        ("wide.clamp", "the donor's model differ from this experiment's"),
        ("cycle.clamp", "a cycle of donor specs: tree.clamp → cycle.clamp → tree.clamp"),
    ],
)
def test_donor_specs_that_cannot_lend_are_refused_at_the_path(tmp_path, path, message):
    tree = tmp_path / "tree"
    tree.mkdir()
    _write(tmp_path, "donor.clamp", DONOR)  # outside the tree
    (tree / "link.clamp").symlink_to(tmp_path / "donor.clamp")
    _write(tree, "donor.txt", DONOR)
    _write(tree, ".donor.clamp", DONOR)
    _write(tree, "broken.clamp", "clampdsl 1\nexperiment e:\n    clamp L3.H0 to prev-token\n")
    _write(tree, "library.clamp", SETTINGS)
    _write(tree, "wide.clamp", SETTINGS.replace("heads=2", "heads=4") + "experiment e\n")
    cycle = 'experiment e:\n    graft L1 from spec "tree.clamp"\n'
    _write(tree, "cycle.clamp", SETTINGS + TRAIN + cycle)
    text = SETTINGS + TRAIN + f'experiment e:\n    graft L1 from spec "{path}"\n'
    spec = _write(tree, "tree.clamp", text)
    with pytest.raises(SpecError, match=message) as raised:
        compile_file(spec)
    diagnostic = raised.value.diagnostics[0]
    line = SETTINGS.count("\n") + 4
    assert (diagnostic.span.file, diagnostic.span.line) == (str(spec), line)
    assert diagnostic.span.column == len('    graft L1 from spec "')


def test_a_marked_tree_lets_a_spec_name_a_donor_in_a_sibling_folder(tmp_path):
    (tmp_path / ".clamp-root").write_text("")
    for name in ("paper", "donors"):
        (tmp_path / name).mkdir()
    _write(tmp_path / "donors", "donor.clamp", DONOR)
    spec = _grafting(tmp_path / "paper", "experiment pt seed 6")
    spec.write_text(spec.read_text().replace('"donor.clamp"', '"../donors/donor.clamp"'))
    donor = compile_file(spec).run("grafted").interventions[0].donor
    assert donor.file == str(tmp_path / "donors" / "donor.clamp")
    assert donor.path.startswith("donor/")
