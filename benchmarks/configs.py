"""The benchmark's configurations (benchmarks/run.py measures them): each a list of
experiment bodies, one run each, batched as one group, on the paper's main model and task
unless HEADERS gives another spec header; and the donor run the grafts' configurations
take."""

from __future__ import annotations

from pathlib import Path

HEADER = """clampdsl 1
model attention-only layers=2 heads=8 d_model=64
task fewshot classes=50 labels=5 context=2 features=synthetic(dim=512, correlation=0.8)
train steps={steps} batch=32 lr=1e-5
eval every {every} steps on train, relabel, new-classes
measure induction-strength of L2.H*
measure prev-token-strength of L1.H*
"""
# Olsson et al.'s repeated random tokens (specs/olsson_repeated.clamp's model and task)
TOKENS_HEADER = """clampdsl 1
model attention-only layers=2 heads=4 d_model=64
task repeated-tokens vocab=64 length=64 repeat_min=16 repeat_max=32
train steps={steps} batch=32 lr=1e-3
eval every {every} steps on train size=200
measure prefix-matching of L2.H*
measure prev-token-strength of L1.H*
"""
# Edelman et al.'s in-context Markov chains (specs/markov_bigram.clamp's model and task)
MARKOV_HEADER = """clampdsl 1
model attention-only layers=2 heads=2 d_model=32
task markov vocab=3 length=100
train steps={steps} batch=64 lr=1e-3
eval every {every} steps on train size=256
measure kl-uniform
measure kl-unigram
measure kl-bigram
measure nearest
measure icl-score
measure prev-token-strength of L1.H*
"""
# Chen et al.'s two-layer model on order-3 chains (specs/chen_ngram.clamp's model and task)
CHEN_HEADER = """clampdsl 1
model arch=chen layers=2 heads=3 pos=relative degree=2
task markov vocab=3 length=100 order=3 alpha=0.1 loss=last
train steps={steps} batch=32 lr=3e-2
eval every {every} steps on train size=256
measure kl-trigram
measure nearest
measure feature-share of L2.H0
measure rpe-peak of L1.H*
"""
OTHERS = "L2.H* except H3"
DONOR = "donor"  # the saved run grafts take, written beside the spec (`with_donor`)
THREE_SUBCIRCUITS = [
    f"ablate {OTHERS}",
    f"clamp L1.H2 to prev-token\n    ablate {OTHERS}",
    f"clamp L1.out to shifted-embedding\n    ablate {OTHERS}",
    f"clamp L2.H3 to induction\n    ablate {OTHERS}",
    "clamp logits to scores of L2.H3",
    "clamp L1.out to shifted-embedding\n    clamp logits to scores of L2.H3",
]
# name → the body of each experiment of the group (None: an experiment with no clamp)
CONFIGS: dict[str, list[str | None]] = {
    "unclamped": [None],
    "ablate": ["ablate L2.H0"],
    "prev-token": ["clamp L1.H2 to prev-token"],
    "induction": ["clamp L2.H3 to induction"],
    "induction+7ablations": [f"clamp L2.H3 to induction\n    ablate {OTHERS}"],
    "zero": ["clamp embed to zero"],
    "copy-scores": ["clamp logits to scores of L2.H3"],
    "shifted-embedding": ["clamp L1.out to shifted-embedding"],
    "match": ["clamp L2.H3 to match temperature 0.1"],
    "uniform": ["clamp L1.H2 to uniform"],
    "forbid": ["forbid L1.H* attending prev-token"],
    "restrict": ["restrict L2.H3 to labels"],
    "scale": ["scale L2.H3 temperature 2"],
    "scale after ablate (2 passes)": ["ablate L1.H0\n    scale L2.H3 temperature 2"],
    "freeze": ["freeze L1.H* from step 1000"],
    "graft in": [f'graft L1 from "{DONOR}"'],
    "layer1+copy (3 passes)": [THREE_SUBCIRCUITS[5]],
    "group of 6 (three subcircuits)": THREE_SUBCIRCUITS,
    "group of 32": [None] * 32,
    "group of 64": [None] * 64,
    "repeated tokens": [None],
    "repeated tokens, group of 2 (olsson_repeated)": [None, "clamp L1.H0 to prev-token"],
    "repeated tokens, pos=relative": [None],
    "repeated tokens, mlp=4": [None],
    "markov chains": [None],
    "markov chains, group of 3 (markov_bigram)": [
        None,
        "clamp L1.H0 to prev-token",
        "task prior=doubly-stochastic",
    ],
    "chen model, group of 4 (chen_ngram)": [
        None,
        "clamp L1.H0 to relative-position offset -1",
        "clamp L1.H* to relative-position offset 0 until step 150",
        "clamp L1.H* to relative-position offset 0",
    ],
}
HEADERS = {name: TOKENS_HEADER for name in CONFIGS if name.startswith("repeated tokens")}
# The same task on variants of the model (model/positions.py, model/mlp.py)
HEADERS |= {
    name: TOKENS_HEADER.replace("model attention-only", f"model {name.split(', ')[1]}")
    for name in ("repeated tokens, pos=relative", "repeated tokens, mlp=4")
}
HEADERS |= {name: MARKOV_HEADER for name in CONFIGS if name.startswith("markov chains")}
HEADERS["chen model, group of 4 (chen_ngram)"] = CHEN_HEADER
# The GPU targets' group (≥ 200,000 run-steps/s on one H100): measured by default on a GPU,
# on a CPU only when asked for with --only.
GPU_ONLY = ("group of 64",)
MAIN_SPEC_EVERY = 100  # the eval cadence of specs/three_subcircuits.clamp


def spec_for(bodies: list[str | None], steps: int, header: str = HEADER) -> str:
    text = header.format(steps=steps, every=MAIN_SPEC_EVERY)
    for index, body in enumerate(bodies):
        text += f"experiment e{index}" + (f":\n    {body}\n" if body else "\n")
    return text


def with_donor(spec: str) -> Path:
    """A temporary folder holding a finished run of `spec` (at its initial weights) in
    DONOR, for the grafts' configurations."""
    import atexit
    import shutil
    import tempfile

    from clampdsl.compile import compile_source
    from clampdsl.report.store import RunStore
    from clampdsl.train.checkpoint import Checkpointer
    from clampdsl.train.session import GroupSession

    folder = Path(tempfile.mkdtemp(prefix="clampdsl-bench-"))
    atexit.register(shutil.rmtree, folder, True)
    plan = compile_source(spec, str(folder / "donor.clamp"))
    store = RunStore(folder, plan, spec)
    store.directory = folder / DONOR
    store.prepare()
    store.write_text("summary.json", "{}")
    session = GroupSession(plan, 0)
    checkpointer = Checkpointer(store.checkpoints, plan.content_hash())
    checkpointer.keep(0, plan.runs[0].train.steps, session.state_dict())
    return folder
