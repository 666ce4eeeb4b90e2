"""Settings lines (`model …`, `task …`, `train …`, `eval …`) → typed configs.

Each section is a table of keys; a key names its config field, its type and its range, so
one loop checks every setting and can say what the section accepts.
"""

from __future__ import annotations

import math

import attrs

from clampdsl.compile import feature_files
from clampdsl.compile.errors import Collector
from clampdsl.compile.plan import (
    EvalConfig,
    FeatureConfig,
    ModelConfig,
    TaskConfig,
    TrainConfig,
)
from clampdsl.lang import ast


@attrs.frozen
class Key:
    kind: str  # "int" | "float" | "choice" | "features"
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    field: str | None = None  # config attribute, when it differs from the key


POSITIVE_INT = Key("int", low=1)
MAX_CONTEXT = 30  # items before the query: 2K+1 tokens, within the model's 64 positions
# Bounds far beyond any experiment of this kind, so that a number a spec gets wrong by
# orders of magnitude is refused here rather than when the trainer allocates it.
SEED = Key("int", low=0, high=2**32 - 1)
SIZE = 100_000
SECTIONS: dict[str, dict[str, Key]] = {
    "model": {
        "layers": Key("int", low=1, high=64),
        "heads": Key("int", low=1, high=256),
        "d_model": Key("int", low=2, high=8192),
        "pos": Key("choice", choices=("rope",)),
        "norm": Key("choice", choices=("pre",)),
    },
    "task": {
        "classes": Key("int", low=2, high=SIZE),
        "new_classes": Key("int", low=2, high=SIZE),
        "labels": Key("int", low=2, high=SIZE),
        "context": Key("int", low=2, high=MAX_CONTEXT),
        "pair_split": Key("float", low=0.0, high=1.0),
        "seed": SEED,
        "features": Key("features"),
    },
    "train": {
        "steps": Key("int", low=1, high=100_000_000),
        "batch": Key("int", low=1, high=65_536),
        "optimizer": Key("choice", choices=("adam",)),
        "lr": Key("float", low=0.0, high=1.0),
        "seed": SEED,
        "data_seed": SEED,
        "eval_seed": SEED,
        "keep_every": Key("int", low=0, high=100_000_000),
        "checkpoint_every": Key("int", low=1, high=100_000_000),
    },
    "eval": {
        "size": Key("int", low=2, high=SIZE),
    },
}
FEATURE_KEYS: dict[str, Key] = {
    "kind": Key("choice", choices=("gaussian", "relu-lowrank"), field="family"),
    "dim": Key("int", low=1, high=8192),
    "correlation": Key("float", low=0.0, high=0.999),
    "scale": Key("float", low=0.0),
    "noise": Key("float", low=0.0, field="exemplar_noise"),
    "rank": Key("int", low=1, high=8192),
    "norm": Key("float", low=1e-6),  # a length: 0 would make every feature 0
}
# The synthetic options that one kind of features reads, and the other would ignore.
FAMILY_OF = {"scale": "gaussian", "rank": "relu-lowrank", "norm": "relu-lowrank"}
FLAGS = {"model": {"attention-only"}, "task": {"fewshot"}, "train": set()}
EVAL_SETS = ("train", "relabel", "new-classes")


def check_model(model: ModelConfig, span, errors: Collector) -> None:
    """What the model's numbers must satisfy together: heads split the width evenly, into
    head sizes RoPE can rotate (pairs of dimensions)."""
    if model.d_model % model.heads:
        errors.error(
            f"heads={model.heads} does not divide d_model={model.d_model}: each head takes "
            "d_model / heads dimensions",
            span,
        )
    elif model.head_dim % 2:
        errors.error(
            f"the head size d_model / heads = {model.head_dim} is odd: RoPE rotates pairs "
            "of dimensions",
            span,
            hint=f"use d_model={model.d_model + model.heads}, or another number of heads",
        )


def check_task(task: TaskConfig, span, errors: Collector) -> None:
    """What the task's numbers must satisfy together: each sequence takes `context`
    distinct classes and labels, and the label sets split into training and held-out."""
    k = task.context
    for count, what in ((task.classes, "classes"), (task.new_classes, "new_classes")):
        if count < k:
            errors.error(
                f"task {what}={count} is fewer than context={k}: a sequence shows "
                f"{k} distinct classes",
                span,
            )
    stored = task.features.stored
    if stored is not None and task.classes + task.new_classes > stored.classes:
        errors.error(
            f"task classes={task.classes} and new_classes={task.new_classes} take "
            f"{task.classes + task.new_classes} classes; the features file holds "
            f"{stored.classes}",
            span,
            hint="training takes the file's first classes, new-classes its last (the "
            "reference's class split)",
        )
    if math.comb(task.labels, k) < 2:
        errors.error(
            f"task labels={task.labels} gives fewer than 2 sets of context={k} labels: "
            "nothing to hold out for the relabel set",
            span,
            hint=f"use labels={k + 1} or more",
        )


@attrs.frozen
class Settings:
    model: ModelConfig = ModelConfig()
    task: TaskConfig = TaskConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()


def apply_setting(settings: Settings, line: ast.Setting, errors: Collector) -> Settings:
    section = line.section.value
    for flag in line.flags:
        if flag.value not in FLAGS[section]:
            errors.unknown(f"{section} kind", flag.value, flag.span, FLAGS[section] or {"(none)"})
    config = getattr(settings, section)
    updates = _options(SECTIONS[section], line.options, section, errors)
    return attrs.evolve(settings, **{section: attrs.evolve(config, **updates)})


def apply_eval(settings: Settings, line: ast.EvalStmt, errors: Collector) -> Settings:
    sets = []
    for name in line.sets:
        if name.value not in EVAL_SETS:
            errors.unknown("eval set", name.value, name.span, EVAL_SETS)
        elif name.value in sets:
            errors.error(f"eval set {name.value!r} is listed twice", name.span)
        else:
            sets.append(name.value)
    every = steps_of(line.every, settings.train.batch, errors)
    if every is not None and every < 1:
        errors.error("eval interval must be at least one step", line.every.span)
    updates = _options(SECTIONS["eval"], line.options, "eval", errors)
    if every:
        updates["every"] = every
    if sets:
        updates["sets"] = tuple(sets)
    return attrs.evolve(settings, eval=attrs.evolve(settings.eval, **updates))


def steps_of(point: ast.StepPoint, batch: int, errors: Collector) -> int | None:
    """`step 100` → 100; `1e5 sequences` → steps at this batch size (whole steps only).
    A name still there binds no number: that was reported (compile/numbers.py)."""
    if not isinstance(point.value, ast.Number):
        return None
    value = point.value.value
    if value != int(value) or value < 0:
        errors.error("a step count must be a whole, non-negative number", point.value.span)
        return None
    if point.unit == "steps":
        return int(value)
    steps, rest = divmod(int(value), batch)
    if rest:
        errors.error(
            f"{int(value)} sequences is not a whole number of steps at batch {batch}",
            point.value.span,
            hint=f"use {steps * batch} or {(steps + 1) * batch} sequences",
        )
        return None
    return steps


def _options(keys: dict[str, Key], options, section: str, errors: Collector) -> dict:
    updates = {}
    for option in options:
        key = keys.get(option.key.value)
        if key is None:
            errors.unknown(f"{section} setting", option.key.value, option.key.span, keys)
            continue
        value = _value(key, option, errors)
        if value is not None:
            updates[key.field or option.key.value] = value
    return updates


def _value(key: Key, option: ast.Option, errors: Collector):
    value, name = option.value, option.key.value
    if key.kind == "features":
        return _features(value, errors)
    if key.kind == "choice":
        if not isinstance(value, ast.Name) or value.value not in key.choices:
            shown = getattr(value, "value", "this")
            errors.error(
                f"{name} cannot be {shown!r}",
                value.span,
                hint=f"supported: {', '.join(key.choices)}",
            )
            return None
        return value.value
    if not isinstance(value, ast.Number):
        errors.error(f"{name} takes a number", value.span)
        return None
    number = value.value
    if key.kind == "int" and number != int(number):
        errors.error(f"{name} takes a whole number, not {value.text}", value.span)
        return None
    if (key.low is not None and number < key.low) or (key.high is not None and number > key.high):
        errors.error(
            f"{name}={value.text} is out of range",
            value.span,
            hint=f"{name} must lie in [{_fmt(key.low)}, {_fmt(key.high)}]",
        )
        return None
    return int(number) if key.kind == "int" else float(number)


def _features(value: ast.Value, errors: Collector) -> FeatureConfig | None:
    if isinstance(value, ast.Call) and value.name.value == "file":
        return feature_files.lower(value, errors)
    if isinstance(value, ast.Name) and value.value == "synthetic":
        return FeatureConfig()
    if not isinstance(value, ast.Call) or value.name.value != "synthetic":
        errors.error(
            'features must be synthetic(...) or file("PATH")',
            value.span,
            hint="e.g. features=synthetic(dim=128, correlation=0.9)",
        )
        return None
    if value.argument is not None:
        errors.error("synthetic(...) takes options only (dim=128, …)", value.argument.span)
    features = FeatureConfig(**_options(FEATURE_KEYS, value.options, "features", errors))
    _check_synthetic(features, value, errors)
    return features


def _check_synthetic(features: FeatureConfig, call: ast.Call, errors: Collector) -> None:
    """Options of the other kind of synthetic features are errors, not silently ignored;
    so is a rank beyond the dimensions (at the rank, or at the call where it is the
    default)."""
    for option in call.options:
        family = FAMILY_OF.get(option.key.value)
        if family is not None and family != features.family:
            errors.error(
                f"{option.key.value} is an option of kind={family} features",
                option.key.span,
                hint=f"this is kind={features.family}",
            )
    if features.family == "relu-lowrank" and features.rank > features.dim:
        written = [o.span for o in call.options if o.key.value == "rank"]
        errors.error(
            f"rank={features.rank} is more than dim={features.dim}",
            written[-1] if written else call.span,
        )


def _fmt(bound: float | None) -> str:
    return "∞" if bound is None else f"{bound:g}"
