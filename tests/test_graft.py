"""`graft L1 from "RUN_DIR"` (in) and `graft L2.. from "RUN_DIR"` (out): a saved run's
weights, frozen, with its clamps (in) or without (out); the donor found, checked and
recorded at compile time, inside the spec's directory only."""

import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from reference_model import SETTINGS, reference_logits

from clampdsl import api
from clampdsl.compile import compile_file
from clampdsl.lang.diagnostics import SpecError
from clampdsl.train.checkpoint import CheckpointError, donor_weights, encode
from clampdsl.train.session import GroupSession

DONOR = SETTINGS + (
    "train steps=6 batch=4 lr=1e-2 keep_every=3\neval every 3 steps on train size=20\n"
    "experiment pt:\n    clamp L1.H* to prev-token\n    ablate L2.H1\n"
    "experiment plain\n"
)
TRAIN = "train steps=6 batch=4 lr=1e-2\neval every 3 steps on train size=20\n"
LENT_IN = ("embed_w", "embed_b", "label_embed", "ln_g0", "ln_b0", "qkv0", "proj0")
LENT_OUT = ("ln_g1", "ln_b1", "qkv1", "proj1", "final_ln_g", "final_ln_b", "unembed_w", "unembed_b")


@pytest.fixture(scope="module")
def donor(tmp_path_factory):
    """(the folder specs are written in, the donor's run directory relative to it)."""
    folder = tmp_path_factory.mktemp("grafts")
    spec = folder / "donor.clamp"
    spec.write_text(DONOR)
    result = api.run(spec, folder / "runs", compile="off")
    return folder, result.directory.relative_to(folder).as_posix()


def _spec(folder, body, name="graft.clamp", settings=SETTINGS + TRAIN):
    path = folder / name
    path.write_text(settings + body)
    return path


def _graft_in(donor, line='graft L1 from "{d}" run pt at step 3', circuit=""):
    folder, directory = donor
    body = f"experiment grafted:\n    {line.format(d=directory)}\nexperiment base\n"
    return _spec(folder, circuit + body)


def _weights(session, run):
    index = [r.name for r in session.runs].index(run)
    return {n: w[index].detach().clone() for n, w in session.step_function.weights.items()}


def test_the_plan_records_the_donor_and_brings_its_clamps_on_what_it_lends(donor):
    folder, directory = donor
    plan = compile_file(_graft_in(donor))
    donor_plan = json.loads((folder / directory / "plan.json").read_text())
    graft, *brought = plan.run("grafted").interventions
    assert (graft.donor.path, graft.donor.run, graft.donor.step) == (directory, "pt", 3)
    assert graft.donor.plan_hash == compile_file(folder / "donor.clamp").content_hash()
    assert donor_plan["version"] == plan.version
    # the donor's prev-token clamp on L1 comes along; its L2 ablation does not
    assert [(b.kind, b.layer, b.donor) for b in brought] == [("prev-token", 0, graft.donor)]
    # what the donor's clamps fix counts as the run's own
    circuit = "subcircuit P = L1.H*.pattern to prev-token\n"
    declared = compile_file(_graft_in(donor, circuit=circuit))
    assert [(g.subcircuit, g.whole) for g in declared.run("grafted").gives] == [("P", True)]
    # another step of the donor is another plan
    other = compile_file(_graft_in(donor, 'graft L1 from "{d}" run pt at step 6'))
    assert other.content_hash() != plan.content_hash()


def test_graft_in_starts_from_the_donors_weights_and_never_updates_them(donor):
    folder, directory = donor
    session = GroupSession(compile_file(_graft_in(donor)), 0)
    item = session.plan.run("grafted").interventions[0]
    lent = donor_weights(folder / directory, item.donor)
    before, base = _weights(session, "grafted"), _weights(session, "base")
    for name in LENT_IN:
        assert torch.equal(before[name], lent[name]), name
        assert not torch.equal(base[name], lent[name]), name
    for step in range(3):
        session.train_step(step)
    after = _weights(session, "grafted")
    index = [r.name for r in session.runs].index("grafted")
    for name, value in after.items():
        held = name in LENT_IN
        assert torch.equal(value, before[name]) == held, name
        if held:  # and their moments never moved
            assert session.step_function.exp_avg[f"weights.{name}"][index].abs().max() == 0


def test_graft_in_computes_the_donors_forward_with_its_clamps(donor):
    """The grafted run against the plain forward with the donor's weights and its
    prev-token clamp on L1 written by hand: logits, and the gradient of what trains."""
    session = GroupSession(compile_file(_graft_in(donor)), 0)
    model, clamps = session.model, session.clamps
    batch = session.stream.at(0)
    r = [run.name for run in session.runs].index("grafted")

    def prev_token(site, layer, head, i, value, b):
        if (site, layer) != ("pattern", 0):
            return value
        row = torch.zeros(i + 1)
        row[max(i - 1, 0)] = 1.0
        return row

    logits = model(batch.features, batch.labels, clamps)[r]
    c = model.config
    expected = reference_logits(
        model.weights, r, batch.features, batch.labels, c.layers, c.heads, edit=prev_token
    )
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    gradients = []
    for loss in (F.cross_entropy(logits, batch.labels[:, -1]), None):
        loss = F.cross_entropy(expected, batch.labels[:, -1]) if loss is None else loss
        model.zero_grad()
        loss.backward(retain_graph=True)
        gradients.append({n: p.grad[r].clone() for n, p in model.weights.items()})
    for name in LENT_OUT:
        torch.testing.assert_close(gradients[0][name], gradients[1][name], msg=name)


def test_graft_out_takes_the_donors_later_layers_without_its_clamps(donor):
    folder, directory = donor
    body = f'experiment out:\n    graft L2.. from "{directory}" run pt\n'
    plan = compile_file(_spec(folder, body))
    (graft,) = plan.run("out").interventions  # the donor's L2 ablation stays behind
    assert graft.donor.step == 6  # a finished donor's last weights
    session = GroupSession(plan, 0)
    lent = donor_weights(folder / directory, graft.donor)
    before = _weights(session, "out")
    assert all(torch.equal(before[name], lent[name]) for name in LENT_OUT)
    for step in range(3):
        session.train_step(step)
    after = _weights(session, "out")
    for name in (*LENT_IN, *LENT_OUT):
        assert torch.equal(after[name], before[name]) == (name in LENT_OUT), name


def test_a_grafted_run_batched_with_others_equals_it_alone(donor):
    folder, directory = donor
    line = f'    graft L1 from "{directory}" run pt at step 3\n'
    together = GroupSession(
        compile_file(_spec(folder, f"experiment g:\n{line}experiment other\n", "both.clamp")), 0
    )
    alone = GroupSession(compile_file(_spec(folder, f"experiment g:\n{line}", "alone.clamp")), 0)
    for step in range(3):
        losses = (together.train_step(step), alone.train_step(step))
        torch.testing.assert_close(losses[0][0], losses[1][0])


def test_the_compiled_step_grafts_as_the_eager_one(donor):
    plan = compile_file(_graft_in(donor))
    sessions = [GroupSession(plan, 0, compile=choice) for choice in ("off", "on")]
    for step in range(3):
        losses = [session.train_step(step) for session in sessions]
        torch.testing.assert_close(losses[1], losses[0], atol=1e-5, rtol=1e-5)
    assert sessions[1].compiled
    weights = [_weights(session, "grafted") for session in sessions]
    for name in weights[0]:
        torch.testing.assert_close(weights[1][name], weights[0][name], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('graft L1 from "../elsewhere"', "outside the spec's directory"),
        ('graft L1 from "/tmp"', "relative to the spec file"),
        ('graft L1 from "runs"', "no saved run at 'runs'"),
        ('graft L1 from "{d}"', "holds 2 runs: name one with `run NAME`"),
        ('graft L1 from "{d}" run pl', "unknown run of the donor 'pl'"),
        ('graft L1 from "{d}" run pt at step 4', "kept no weights at step 4"),
        ('graft L1 from "{d}" run pt from step 2', "takes no window"),
        ('graft L1.H0 from "{d}" run pt', "graft takes one layer"),
        ('graft L1.. from "{d}" run pt', "nothing of it would train"),
        ('graft L1 from "{d}" run pt solid', "graft is written"),
        ("graft L1 run pt", 'takes one `from "RUN_DIR"`'),
        ('ablate L1.H0 from "{d}"', "takes no saved run"),
    ],
)
def test_refused(donor, line, message):
    with pytest.raises(SpecError, match=message):
        compile_file(_graft_in(donor, line))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("    clamp L1.H0 to uniform\n", "acts on what the graft on line"),
        ("    freeze embed\n", "acts on what the graft on line"),
        ('    graft L2.. from "{d}" run plain\n', "no layer of this model trains"),
        ('    graft L1 from "{d}" run plain\n', "a second graft in"),
    ],
)
def test_clamps_on_what_a_graft_lends_are_refused(donor, extra, message):
    folder, directory = donor
    line = f'    graft L1 from "{directory}" run pt at step 3\n'
    body = f"experiment e:\n{line}{extra.format(d=directory)}"
    with pytest.raises(SpecError, match=message):
        compile_file(_spec(folder, body))


def test_a_donor_of_another_shape_is_refused(donor):
    folder, directory = donor
    body = f'experiment e:\n    graft L1 from "{directory}" run pt at step 3\n'
    other = SETTINGS.replace("heads=2", "heads=4") + TRAIN
    with pytest.raises(SpecError, match="the donor's model differ"):
        compile_file(_spec(folder, body, settings=other))


def test_an_unfinished_donor_needs_a_step_and_a_link_cannot_lead_out(donor, tmp_path):
    folder, directory = donor
    copy = tmp_path / "unfinished"
    shutil.copytree(folder / directory, copy)
    (copy / "summary.json").unlink()
    spec = _spec(tmp_path, 'experiment e:\n    graft L1 from "unfinished" run pt\n')
    with pytest.raises(SpecError, match="has not finished"):
        compile_file(spec)
    (tmp_path / "link").symlink_to(folder / directory)
    spec = _spec(tmp_path, 'experiment e:\n    graft L1 from "link" run pt\n')
    with pytest.raises(SpecError, match="outside the spec's directory"):
        compile_file(spec)


@pytest.mark.parametrize(
    ("text", "message"), [("not json", "is not a plan"), ('{"version": 1}', "of version 1")]
)
def test_a_plan_file_that_is_not_a_plan_is_refused(tmp_path, text, message):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "plan.json").write_text(text)
    spec = _spec(tmp_path, 'experiment e:\n    graft L1 from "bad"\n')
    with pytest.raises(SpecError, match=message):
        compile_file(spec)


def test_a_graft_in_an_included_file_reads_the_donor_its_file_names(donor, tmp_path):
    """A donor's path starts at the file that writes it, in the compiler's checks and in
    the weights the trainer reads: the plan has it from the top spec's folder."""
    folder, directory = donor
    shutil.copytree(folder / directory, tmp_path / "lib" / directory)
    line = f'experiment e:\n    graft L1 from "{directory}" run pt at step 3\n'
    (tmp_path / "lib" / "grafted.clamp").write_text("clampdsl 1\n" + line)
    plan = compile_file(_spec(tmp_path, 'use "lib/grafted.clamp"\n'))
    graft = plan.run("e").interventions[0]
    assert graft.donor.path == f"lib/{directory}"
    session = GroupSession(plan, 0)
    lent = donor_weights(tmp_path / "lib" / directory, graft.donor)
    assert torch.equal(_weights(session, "e")["qkv0"], lent["qkv0"])


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"step": 3}, "holds other weights than the donor's at step 3"),
        ([1, 2, 3], "holds other weights than the donor's at step 3"),
        ({"step": 3, "runs": ["pt"], "model": {"x": 1}}, "holds other weights"),
        (
            {"step": 3, "runs": ["pt"], "model": {"weights.qkv0": torch.zeros(1, 3)}},
            "the donor's kept weights lack",
        ),
    ],
    ids=["no runs", "a list", "no tensors", "wrong shapes"],
)
def test_kept_weights_of_another_form_are_a_checkpoint_error(donor, tmp_path, state, message):
    """A donor's run directory may come from anyone, and its files' checksums are the
    writer's word: what they hold is checked before a weight is copied."""
    folder, directory = donor
    shutil.copytree(folder / directory, tmp_path / directory)
    body = f'experiment grafted:\n    graft L1 from "{directory}" run pt at step 3\n'
    plan = compile_file(_spec(tmp_path, body))
    item = plan.run("grafted").interventions[0]
    kept = tmp_path / directory / item.donor.snapshot()
    kept.write_bytes(encode(state, item.donor.plan_hash, 3))
    with pytest.raises(CheckpointError, match=message):
        GroupSession(plan, 0)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda plan: plan.update(groups=[]), "its groups do not hold its runs"),
        (lambda plan: plan["runs"][0]["train"].update(batch=0), "a run of no steps or batch"),
        (lambda plan: plan["runs"][0]["train"].update(keep_every=-1), "every no number"),
    ],
    ids=["no groups", "batch 0", "keep_every -1"],
)
def test_a_donor_plan_that_no_compile_gives_is_an_error_at_the_path(donor, tmp_path, edit, message):
    folder, directory = donor
    shutil.copytree(folder / directory, tmp_path / directory)
    plan_file = tmp_path / directory / "plan.json"
    plan = json.loads(plan_file.read_text())
    edit(plan)
    plan_file.write_text(json.dumps(plan))
    line = f'graft L1 from "{directory}" run pt at 12 sequences'
    body = f"experiment grafted:\n    {line}\n"
    with pytest.raises(SpecError, match=message):
        compile_file(_spec(tmp_path, body))
