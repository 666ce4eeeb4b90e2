"""Settings lines (`model …`, `task …`, `train …`, `eval …`) → typed configs.

Each section is a table of keys; a key names its config field, its type and its range, so
one loop checks every setting and can say what the section accepts.
"""

from __future__ import annotations

import attrs

from clampdsl.compile import architectures, feature_files
from clampdsl.compile.configs import (
    POSITION_SCHEMES,
    EvalConfig,
    FeatureConfig,
    ModelConfig,
    TaskConfig,
    TrainConfig,
)
from clampdsl.compile.errors import Collector
from clampdsl.compile.keys import SEED, SIZE, Key
from clampdsl.lang import ast
from clampdsl.tasks import kinds as task_kinds

SECTIONS: dict[str, dict[str, Key]] = {
    "model": {
        "layers": Key("int", low=1, high=64),
        "heads": Key("int", low=1, high=256),
        "d_model": Key("int", low=2, high=8192),
        "pos": Key("choice", choices=POSITION_SCHEMES),
        "norm": Key("choice", choices=("pre",)),
        "mlp": Key("int", low=0, high=64),  # hidden width / d_model; 0: attention only
        "smear": Key("choice", choices=("off", "on")),
        "arch": Key("choice", choices=tuple(architectures.BY_NAME)),
        "degree": Key("int", low=1, high=8),  # arch=chen: subsets of at most this many
    },
    # every task kind's settings; apply_setting accepts those of the kind selected
    "task": {
        key: value for kind in task_kinds.by_name().values() for key, value in kind.keys.items()
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
    # Lengths of features in float32, whose squares the scores sum: 1e30 would be inf.
    "scale": Key("float", low=0.0, high=1e3),
    "noise": Key("float", low=0.0, high=1e3, field="exemplar_noise"),
    "rank": Key("int", low=1, high=8192),
    "norm": Key("float", low=1e-6, high=1e4),  # 0 would make every feature 0
}
# The synthetic options that one kind of features reads, and the other would ignore.
FAMILY_OF = {"scale": "gaussian", "rank": "relu-lowrank", "norm": "relu-lowrank"}
ATTENTION_ONLY = "attention-only"  # `model attention-only`: mlp=0
FLAGS = {"model": {ATTENTION_ONLY}, "task": set(task_kinds.by_name()), "train": set()}
EVAL_SETS = tuple(
    dict.fromkeys(s for kind in task_kinds.by_name().values() for s in kind.eval_sets)
)


def check_model(model: ModelConfig, span, errors: Collector) -> None:
    """What the model's numbers must satisfy together: its architecture's checks."""
    architectures.of(model).check(model, span, errors)


def check_task(task: TaskConfig, span, errors: Collector) -> None:
    task_kinds.of(task).check(task, span, errors)


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
        elif section == "task":
            settings = _select_task(settings, flag.value)
    config = getattr(settings, section)
    keys, options = SECTIONS[section], line.options
    if section == "task":
        keys, options = task_kinds.of(config).keys, _own_options(config, options, errors)
    updates = _options(keys, options, section, errors)
    if section == "model" and any(flag.value == ATTENTION_ONLY for flag in line.flags):
        updates = _attention_only(updates, line, errors)
    return attrs.evolve(settings, **{section: _updated(config, updates)})


def _attention_only(updates: dict, line: ast.Setting, errors: Collector) -> dict:
    """`model attention-only`: no MLP blocks (mlp=0), which the same line cannot undo."""
    if updates.get("mlp"):
        option = next(o for o in line.options if o.key.value == "mlp")
        errors.error(
            f"an attention-only model has no MLP blocks, yet this line sets mlp={updates['mlp']}",
            option.span,
            hint="drop `attention-only`, or mlp",
        )
    return updates | {"mlp": 0}


def _select_task(settings: Settings, name: str) -> Settings:
    """`task NAME`: the kind's config, and its eval sets where the ones set are not its."""
    kind = task_kinds.by_name()[name]
    evals = settings.eval
    if not set(evals.sets) <= set(kind.eval_sets):
        evals = attrs.evolve(evals, sets=kind.eval_sets)
    return attrs.evolve(settings, task=kind.selected(settings.task), eval=evals)


def _own_options(task: TaskConfig, options, errors: Collector) -> list:
    """The options but those of another task kind than the one selected, each an error."""
    kind, own = task_kinds.of(task), []
    for option in options:
        name = option.key.value
        if name in kind.keys or name not in SECTIONS["task"]:
            own.append(option)
        else:
            owners = [k.name for k in task_kinds.by_name().values() if name in k.keys]
            errors.error(
                f"{name} is a setting of task {' and '.join(owners)}, not of task {kind.name}",
                option.key.span,
                hint=f"task {kind.name} takes {', '.join(kind.keys)}",
            )
    return own


def _updated(config, updates: dict):
    """`config` with `updates`, whose dotted fields (`tokens.vocab`) set a nested config."""
    nested: dict[str, dict] = {}
    for field in [f for f in updates if "." in f]:
        outer, inner = field.split(".", 1)
        nested.setdefault(outer, {})[inner] = updates.pop(field)
    for outer, inner in nested.items():
        updates[outer] = attrs.evolve(getattr(config, outer), **inner)
    return attrs.evolve(config, **updates)


def apply_eval(settings: Settings, line: ast.EvalStmt, errors: Collector) -> Settings:
    sets, known = [], task_kinds.of(settings.task).eval_sets
    for name in line.sets:
        if name.value not in known:
            errors.unknown("eval set", name.value, name.span, known)
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
    if line.near_every is not None:
        updates["near_every"] = _near_every(line.near_every, every, settings.train.batch, errors)
    if sets:
        updates["sets"] = tuple(sets)
    return attrs.evolve(settings, eval=attrs.evolve(settings.eval, **updates))


def _near_every(point: ast.StepPoint, every: int | None, batch: int, errors) -> int | None:
    """`, every N steps near phase`: N steps, at least one and under the regular interval."""
    near = steps_of(point, batch, errors)
    if near is not None and not 1 <= near < (every or near + 1):
        errors.error(
            f"the interval near the phase change must be at least one step and under the"
            f" regular one ({every} steps)",
            point.span,
        )
    return near


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
