"""What a plan will take to train, from its numbers alone (no torch): the resource guard's
estimate (compile/guard.py refuses what exceeds the budgets).

For each batched group: the parameters of one run, the peak resident memory of training
the group (eager, on a CPU, where evals run in chunks of sequences) and its work in
floating-point operations. `clampdsl plan` shows each group's estimate.

The peak is what stays allocated all along (weights and Adam's two moments; the tasks'
feature tables and label sets, the eval sets and the current chunk of training batches)
plus what comes and goes: a training step's peak (the activations its backward keeps,
with gradients; or the gradients with Adam's temporaries, if larger) and an eval's (the
weights prepared for it and one chunk's activations), the larger of the two and half of
the smaller (resident memory keeps part of what each freed), or before either, building
the task data, if larger. Attention is computed as broadcast products, not matrix
products: a layer materialises runs × batch × d_model × tokens² floats, so long contexts
cost quadratically. The coefficients were fitted to measurements (below): the measured
peak resident memory of 34 specs of 100 MiB to 1.6 GiB over their estimate is 0.75-1.29,
median 1.0 (tests/test_resources.py measures three). A compiled step takes less; a GPU's
evals take whole sets per forward, so more.
"""

from __future__ import annotations

import math

import attrs

from clampdsl import kinds
from clampdsl.compile.plan import Plan, Run
from clampdsl.compile.progress import attention_measures

FLOAT, INDEX = 4, 8  # bytes of a float32 and of an int64

# Mirrors of the trainer's constants (tasks/stream.py, tasks/fewshot.py,
# train/evaluate.py; tests/test_resources.py checks that they agree).
CHUNK_STEPS = 100
EXEMPLARS_PER_CLASS = 5
POSITIONS = 64  # a few-shot model's learned position tables (model/transformer.py)

# Floats an eager training step holds at its peak, per sequence and run, for N tokens,
# width C and H heads: each layer but the last keeps TRAIN_TOKEN · N·C + TRAIN_KEPT_PAIR ·
# C·N² + TRAIN_SCORE · H·N² for its backward, one layer's broadcast products add
# TRAIN_PAIR · C·N² while it runs, and the last layer (its query row alone), the embedding
# and the readout TRAIN_LAST_TOKEN · N·C + TRAIN_LAST_SCORE · H·N; with the step's
# features (TRAIN_FEATURES per input float) and part of the gradients (TRAIN_GRADIENTS per
# parameter) at that moment. An eval's forward (no gradient) holds, per sequence and run of
# a chunk, EVAL_PAIR · C·N² (with more than one layer) + EVAL_TOKEN · N·C + EVAL_SCORE ·
# H·N² + EVAL_ITEM · C per item, and EVAL_RECORD · H·N² per layer for measures; the weights
# prepared for it take EVAL_PREPARED times their size. Fitted by least squares to the peak
# live tensor bytes (torch's profiler) of a step and of an eval of 45 specs of 1-6 layers,
# widths 32-1024, 2-30 context items, batches 16-1024 and 1-6 runs: within -4%/+7% of a
# step's, -12%/+52% (median 0%) of an eval's.
TRAIN_TOKEN, TRAIN_KEPT_PAIR, TRAIN_SCORE, TRAIN_PAIR = 13.5, 0.25, 2.9, 1.5
TRAIN_LAST_TOKEN, TRAIN_LAST_SCORE, TRAIN_FEATURES, TRAIN_GRADIENTS = 15.8, 3.9, 1.9, 0.53
TRAIN_EMBED_TOKEN = 4.0  # of TRAIN_LAST_TOKEN: the embedding's, which every run computes
EVAL_PAIR, EVAL_TOKEN, EVAL_SCORE, EVAL_ITEM, EVAL_RECORD = 1.15, 1.43, 1.31, 5.2, 1.0
EVAL_PREPARED = 1.07
# What MLP blocks add per float of their hidden layer: a step keeps its input and output
# to GELU for the backward (and the gradient of one); an eval, one layer's at a time. Not
# fitted: counted from the block's tensors.
MLP_TRAIN, MLP_EVAL = 3.0, 2.0
# What clamps add, per float of each site they write: little in a step (a constant clamp
# cuts the gradient, so its layer keeps less), and in an eval, per float of what the
# unclamped first pass records for its runs.
CLAMP_COPIES, EVAL_FIRST_PASS = 0.5, 2.0
# Resident memory over live tensors (the heap's free blocks, BLAS's buffers), and the
# share of the smaller of a step's and an eval's peaks still resident at the larger's:
# fitted to the peak resident memory of the same specs and clamp-heavy ones (the paper's
# at batch 1024).
ALLOCATOR_OVERHEAD, STACKED = 1.3, 0.5


@attrs.frozen
class GroupEstimate:
    """What training one batched group takes. `parts`: bytes at the peak by what holds
    them ("weights and Adam", "task data", then "training activations" or "gradients and
    Adam's temporaries", "evals" and "shuffling classes"; or "building the task data")."""

    index: int  # 0-based
    runs: int
    parameters: int  # of one run
    tokens: int  # per sequence
    batch: int
    steps: int
    parts: dict[str, int]
    flops: float
    transients: dict[str, int]  # bytes of each of what comes and goes (the largest is a part)

    @property
    def weights(self) -> int:
        """Bytes of the group's weights (every run's)."""
        return self.parameters * self.runs * FLOAT

    @property
    def peak(self) -> int:
        return sum(self.parts.values())

    @property
    def largest(self) -> str:
        return max(self.parts, key=self.parts.get)

    def describe(self) -> str:
        """`≈ 1.2 MiB weights, 40 MiB peak, 2.7e12 FLOPs`, as `clampdsl plan` shows it."""
        weights, peak = size(self.weights), size(self.peak)
        return f"≈ {weights} weights, {peak} peak, {scientific(self.flops)} FLOPs"


def estimate(plan: Plan) -> list[GroupEstimate]:
    """Each group's estimate, in plan order."""
    measures = bool(attention_measures(plan.measures))
    return [
        _group(index, [plan.run(name) for name in group.runs], group.schedule, measures)
        for index, group in enumerate(plan.groups)
    ]


def parameters(run: Run) -> int:
    """Parameters of one run's model (model/transformer.py's weights, and its variant's:
    model/positions.py, mlp.py, smear.py)."""
    config, c, labels = run.model, run.model.d_model, run.task.labels
    model = run.task.features.dim * c + c + labels * c + 2 * c + c * labels + labels
    m = config.mlp * c
    layer = 2 * c + 3 * c * c + c * c + (3 * c + 2 * c * m + m if m else 0)
    layer += config.heads * ((config.smear == "on") + POSITIONS * (config.pos == "relative"))
    return model + POSITIONS * c * (config.pos == "absolute") + config.layers * layer


# Sequences × runs per eval forward on a CPU. Fewer pay the per-call overhead more often;
# many more make activations of tens of MB that stream through memory instead of staying in
# the caches. Yet a chunk needs some width: the no-gradient forward's GEMMs are per run and
# position, one column per sequence. On a 2-core CPU a set of 1000 sequences evaluates
# fastest whole for one run, and in chunks of a few hundred for groups (docs/performance.md).
RUN_SEQUENCES_PER_FORWARD = 3200
MIN_SEQUENCES_PER_FORWARD = 200


def chunk_size(sequences: int, runs: int) -> int:
    """Sequences per eval forward on a CPU (train/evaluate.py's): the set in the fewest equal
    chunks of at most RUN_SEQUENCES_PER_FORWARD / runs sequences (but no fewer than
    MIN_SEQUENCES_PER_FORWARD), or a few more chunks where that divides the set evenly (a
    shorter last chunk is a second shape: a second compiled graph)."""
    most = max(MIN_SEQUENCES_PER_FORWARD, RUN_SEQUENCES_PER_FORWARD // runs)
    fewest = -(-sequences // most)
    for chunks in range(fewest, 2 * fewest + 1):
        if sequences % chunks == 0:
            return sequences // chunks
    return -(-sequences // fewest)


COMPILE_CHOICES = ("auto", "on", "off")  # `--compile` (train/session.py: compile_mode)
# `--compile auto` compiles on a CPU from this many steps (train/session.py): compiling the
# step takes tens of seconds on a 2-core CPU, and the steps it saves repay that after
# 2,200-3,700 of them (docs/performance.md, "When compiling pays").
COMPILE_AUTO_MIN_STEPS = 3000


def eval_graphs(plan: Plan, index: int, device_type: str = "cpu") -> int:
    """The graphs a group's compiled evals build (train/session.py, train/evaluate.py): its
    eval function with the measures, for the first eval set, and without, for the others
    (one function for every set where nothing is measured or one set is evaluated), each
    once per chunk shape: one, or two where a CPU's last chunk is shorter (a GPU evaluates a
    set whole)."""
    runs = plan.groups[index].runs
    evals = plan.run(runs[0]).eval
    functions = 2 if attention_measures(plan.measures) and len(evals.sets) > 1 else 1
    chunk = evals.size if device_type == "cuda" else chunk_size(evals.size, len(runs))
    return functions * (1 if evals.size % chunk == 0 else 2)


def _group(index: int, runs: list[Run], schedule, measures: bool) -> GroupEstimate:
    first = runs[0]
    model, task, train, evals = first.model, first.task, first.train, first.eval
    r, k, b = len(runs), task.context, train.batch
    n, c, heads, layers = 2 * k + 1, model.d_model, model.heads, model.layers
    p = parameters(first)
    tasks = {run.task for run in runs}
    data_sources = len({(run.task, run.train.data_seed) for run in runs})
    eval_sources = len({(run.task, run.train.eval_seed) for run in runs})
    copies = lambda sources: 1 if sources == 1 else r + sources  # noqa: E731 - for_runs
    row = (2 * (k + 1) + 1) * INDEX  # a sequence's items, labels and match
    rows = sum(t.classes + t.new_classes for t in tasks)  # feature vectors, all tasks
    steady = {
        "weights and Adam": 3 * p * r * FLOAT,
        "task data": sum(_task_bytes(t) for t in tasks)
        + copies(data_sources) * CHUNK_STEPS * b * row
        + copies(eval_sources) * len(evals.sets) * evals.size * row * 2
        # runs of several sources: each batch and eval set has their tables concatenated
        + (len(tasks) > 1) * (1 + len(evals.sets)) * rows * task.features.dim * FLOAT,
    }
    # A training step: the activations its backward keeps, then (or, in Adam, instead)
    # the gradients.
    per_sequence = _train_floats(n, c, heads, layers, schedule, r)
    per_sequence += _clamp_floats(runs, n, c, heads) + MLP_TRAIN * n * model.mlp * c * layers
    features = (1 if data_sources == 1 else r) * b * (k + 1) * task.features.dim
    held = r * b * per_sequence + TRAIN_FEATURES * features + TRAIN_GRADIENTS * p * r
    activations = held * FLOAT
    adam = 3 * p * r * FLOAT
    # An eval: the embedded feature table and each layer's projection with RoPE folded
    # in, one copy per position (model/rotary.py), built with two more of a layer's;
    # then one chunk of sequences through the model a layer at a time (plus the
    # attention patterns measures read).
    rotated = r * n * 3 * c * c * FLOAT
    prepared = r * rows * c * FLOAT + EVAL_PREPARED * layers * rotated
    chunk = r * chunk_size(evals.size, r)
    recorded = _first_pass_records(schedule, r, n, c, heads, layers)
    eval_floats = _eval_floats(k, c, heads, layers, measures) + MLP_EVAL * n * model.mlp * c
    eval_chunk = chunk * (eval_floats + recorded) * FLOAT
    eval_peak = prepared + max(2 * rotated, eval_chunk)
    # Resident memory keeps part of what a step and an eval free (the heap holds on to it,
    # and their tensors are of other sizes): the smaller of their peaks adds STACKED of
    # itself to the larger. Building the task data comes first, before any of them.
    transient = {
        "training activations": activations,
        "gradients and Adam's temporaries": adam,
        "evals": eval_peak,
        "shuffling classes": max(_shuffle_bytes(t, b, evals.size) for t in tasks),
        "building the task data": max(_building_bytes(t) for t in tasks),
    }
    transient = {name: int(ALLOCATOR_OVERHEAD * v) for name, v in transient.items()}
    step = max(("training activations", "gradients and Adam's temporaries"), key=transient.get)
    training = {name: transient[name] for name in (step, "evals", "shuffling classes")}
    smaller = min((step, "evals"), key=transient.get)
    training[smaller] = int(STACKED * training[smaller])
    building = {"building the task data": transient["building the task data"]}
    parts = {name: int(ALLOCATOR_OVERHEAD * v) for name, v in steady.items()}
    parts |= training if sum(training.values()) >= sum(building.values()) else building
    parts = {name: value for name, value in parts.items() if value}
    flops = _flops(runs, n, p)
    return GroupEstimate(index, r, p, n, b, train.steps, parts, flops, transient)


def _train_floats(n: int, c: int, heads: int, layers: int, schedule=None, runs: int = 1) -> float:
    """Floats a training step holds at its peak per sequence and run (see TRAIN_*), with the
    group's pass schedule: layer 1 for some runs only or none, the last layer for some
    runs only, the unclamped first pass for some (compile/schedule.py)."""
    inner = TRAIN_TOKEN * n * c + TRAIN_KEPT_PAIR * c * n * n + TRAIN_SCORE * heads * n * n
    last = (TRAIN_LAST_TOKEN - TRAIN_EMBED_TOKEN) * n * c + TRAIN_LAST_SCORE * heads * n
    shares = [1.0] * (layers - 1)  # of the runs, that compute each layer but the last
    last_share, first_share = 1.0, 0.0
    if schedule is not None and layers > 1:
        if schedule.final_from_layer > 0:
            shares[0] = 0.0
        elif 0 < schedule.layer_one_runs < runs:
            shares[0] = schedule.layer_one_runs / runs
        last_share = min(schedule.last_layer_runs, runs) / runs
        if (first := schedule.first_pass) is not None:
            first_share = (first.stop - first.start) / runs
            for layer in range(first.from_layer, first.layers - 1):
                shares[layer] += first_share
    # one layer's broadcast products, while its backward runs
    once = TRAIN_PAIR * c * n * n * max(shares, default=0.0)
    return (
        sum(shares) * inner + once + (last_share + first_share) * last + TRAIN_EMBED_TOKEN * n * c
    )


def _eval_floats(k: int, c: int, heads: int, layers: int, measures: bool) -> float:
    """Floats an eval's forward holds at its peak per sequence and run (see EVAL_*)."""
    n = 2 * k + 1
    pairs = EVAL_PAIR * c * n * n if layers > 1 else 0.0
    recorded = EVAL_RECORD * layers * heads * n * n if measures else 0.0
    items = EVAL_ITEM * (k + 1) * c
    return pairs + EVAL_TOKEN * c * n + EVAL_SCORE * heads * n * n + items + recorded


def _clamp_floats(runs: list[Run], n: int, c: int, heads: int) -> float:
    """Floats per sequence and run that the group's clamps add to a training step: a copy
    of each site they write (CLAMP_COPIES), over every run of the group."""
    model = runs[0].model
    sites = {
        (write.layer, write.site)
        for run in runs
        for item in run.interventions
        for write in kinds.of(item).writes(item, model)
    }
    total = 0.0
    for layer, site in sites:
        rows = 1 if layer == model.layers - 1 else n  # the last layer's query row
        if site in ("scores", "pattern"):
            total += heads * n * rows
        elif site == "logits":
            total += runs[0].task.labels
        else:
            total += c * (rows if site in ("q", "z", "out") else n)
    return CLAMP_COPIES * total


def _first_pass_records(schedule, runs: int, n: int, c: int, heads: int, layers: int) -> float:
    """Floats per sequence and run that an eval's first pass holds: what it records for
    the clamps that read it (EVAL_FIRST_PASS per float), over its share of the runs."""
    first = schedule.first_pass
    if first is None:
        return 0.0
    total = 0.0
    for layer, site in first.records:
        rows = 1 if layer == layers - 1 and not first.every_row_last else n
        total += heads * n * rows if site in ("scores", "pattern") else c * n
    return EVAL_FIRST_PASS * total * (first.stop - first.start) / runs


def _task_bytes(task) -> int:
    """A task's feature tables ([classes, 5, dim] and its exemplar-0 table) and label
    sets (every set of `context` labels), as kept while training."""
    classes = task.classes + task.new_classes
    features = classes * (EXEMPLARS_PER_CLASS + 1) * task.features.dim * FLOAT
    return features + math.comb(task.labels, task.context) * task.context * INDEX


def _building_bytes(task) -> int:
    """What building a task takes for a moment beyond what it keeps: the tables' random
    draws (~11 floats per class and feature) and the label sets, a Python list of tuples
    turned into a tensor (fewshot.py)."""
    classes = task.classes + task.new_classes
    k = task.context
    tables = 11 * classes * task.features.dim * FLOAT
    return max(tables, math.comb(task.labels, k) * (48 + 16 * k + INDEX))


def _shuffle_bytes(task, batch: int, eval_size: int) -> int:
    """With more than 2 context items, drawing sequences shuffles every class for each
    (a float and an index per class): 100 steps of a batch at a time, or an eval set."""
    if task.context <= 2:
        return 0
    training = CHUNK_STEPS * batch * (task.classes - 1)
    evals = eval_size * (max(task.classes, task.new_classes) - 1)
    return max(training, evals) * (FLOAT + INDEX)


def _flops(runs: list[Run], n: int, p: int) -> float:
    """Floating-point operations: a forward is ~2 per weight and token used, plus the
    attention's products; a training step three forwards' worth; and every eval."""
    first = runs[0]
    model, task, train, evals = first.model, first.task, first.train, first.eval
    c, layers, k = model.d_model, model.layers, task.context
    per_token = layers * (4 * c * c + 2 * c * model.mlp * c)
    forward = 2 * (
        n * per_token
        + (k + 1) * task.features.dim * c
        + k * task.labels * c
        + c * task.labels
        + 2 * c * n * (n * (layers - 1) + 1)
    )
    count = train.steps // evals.every + 1 + (1 if train.steps % evals.every else 0)
    sequences = train.steps * train.batch * 3 + count * len(evals.sets) * evals.size
    return float(len(runs) * sequences * forward)


def size(number: float) -> str:
    """Bytes in binary units: `40 MiB`, `7.4 GiB`; past 10,000 PiB, `3.2e25 B`."""
    if number >= 1e4 * 2**50:
        return f"{scientific(number)} B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if number < 1024 or unit == "PiB":
            break
        number /= 1024
    whole = number >= 10 or unit == "B" or number == int(number)
    return f"{number:.0f} {unit}" if whole else f"{number:.1f} {unit}"


def scientific(number: float) -> str:
    """`2.7e12`."""
    mantissa, exponent = f"{number:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"
