"""Measures of what the model predicts, read off its logits: no heads, no attention.

* `kl-S`: KL(S ‖ model) from the in-context strategy S (the task's `baselines`,
  tasks/in_context.py) to the model's next-token distribution, averaged over each
  sequence's scored positions and then over the sequences. The direction of Edelman et
  al.'s test_error.py (`F.kl_div(log_softmax(logits), strategy)`).
* `nearest`: the strategy of the lowest such KL, Edelman's phase of the model (recorded as
  the strategy's index among the task's, simplest first; `phase when nearest is bigram`).
* `icl-score`: Olsson et al.'s in-context learning score, the loss at a late position
  minus the loss at an early one (`late`, `early`: counted in tokens read, 1 to the
  length; by default the length and a tenth of it), averaged over the sequences: below 0
  where the context helps.

The module holds both halves, as a clamp kind does: the compiler's (which measures exist,
what each reads of the task, their positions) and the runtime's (their values, through the
tensors' own methods), so it imports no torch. The strategies' own losses, the reports'
reference lines, are computed here too (`baseline_losses`).
"""

from __future__ import annotations

from clampdsl.compile.plan import Measure
from clampdsl.lang import ast
from clampdsl.tasks import kinds as task_kinds

KL = "kl-"
NEAREST = "nearest"
ICL_SCORE = "icl-score"
POSITIONS = ("early", "late")
UNSCORED = -1  # a target the loss skips (model/tokens.py)


# ---- the compiler's half ------------------------------------------------------------------


def known(metric: str) -> bool:
    return metric in (NEAREST, ICL_SCORE) or metric.startswith(KL)


def names(task) -> list[str]:
    """The measures a task offers (for an unknown measure's hint)."""
    kind = task_kinds.of(task)
    offered = [KL + s for s in kind.baselines(task)] + ([NEAREST] if kind.baselines(task) else [])
    return offered + ([ICL_SCORE] if "next-tokens" in kind.roles else [])


def lower(stmt, tasks, errors) -> Measure | None:
    """`measure kl-bigram`, `measure nearest`, `measure icl-score early=10 late=100` → the
    Measure, checked against every task the spec's runs train on (tasks[0], the first
    run's, sets the default positions); None after an error."""
    metric, span = stmt.metric.value, stmt.metric.span
    if stmt.selector is not None:
        errors.error(
            f"{metric} is a measure of the model's predictions: it takes no heads",
            stmt.selector.span,
            hint=f"measure {metric}",
        )
        return None
    if metric == ICL_SCORE:
        params = _positions(stmt, tasks, errors)
    else:
        _no_options(stmt, errors)
        params = _strategy(metric, span, tasks, errors)
    return None if params is None else Measure(metric, None, (), stmt.span, params=params)


def _strategy(metric: str, span, tasks, errors) -> tuple | None:
    """kl-S: S's index among each task's strategies (the same in all: they are named
    simplest first); nearest: none. An error where a task lacks them."""
    wanted = metric.removeprefix(KL) if metric != NEAREST else None
    ok = True
    for task in tasks:
        kind = task_kinds.of(task)
        strategies = kind.baselines(task)
        if len(strategies) < 2 or (wanted is not None and wanted not in strategies):
            what = f"the {wanted} strategy" if wanted else "in-context strategies"
            has = f"its strategies: {', '.join(strategies)}" if strategies else "it has none"
            errors.error(
                f"{metric} compares the predictions with {what}, which task {kind.name} "
                f"({kind.brief(task)}) does not have",
                span,
                hint=has,
            )
            ok = False
    if not ok:
        return None
    if wanted is None:
        return ()
    return (("strategy", task_kinds.of(tasks[0]).baselines(tasks[0]).index(wanted)),)


def _positions(stmt, tasks, errors) -> tuple | None:
    """icl-score's early and late positions: as written, else a tenth of the top-level
    task's length and the length; 1 <= early < late <= every task's length."""
    span = stmt.metric.span
    if not all(task_kinds.has_roles(t, ("next-tokens",), ICL_SCORE, span, errors) for t in tasks):
        return None
    length = task_kinds.of(tasks[0]).length(tasks[0])
    chosen = {"early": max(1, length // 10), "late": length}
    for option in stmt.options:
        name, value = option.key.value, option.value
        if name not in POSITIONS:
            errors.unknown(f"{ICL_SCORE} option", name, option.key.span, POSITIONS)
            return None
        if not isinstance(value, ast.Number) or value.value != int(value.value):
            errors.error(f"{name} takes a whole number of tokens", value.span)
            return None
        chosen[name] = int(value.value)
    shortest = min(task_kinds.of(t).length(t) for t in tasks)
    if not 1 <= chosen["early"] < chosen["late"] <= shortest:
        errors.error(
            f"{ICL_SCORE} reads the loss after early={chosen['early']} and late="
            f"{chosen['late']} tokens: they must satisfy 1 <= early < late <= the length "
            f"({shortest})",
            stmt.span,
        )
        return None
    return tuple(chosen.items())


def _no_options(stmt, errors) -> None:
    for option in stmt.options:
        errors.error(f"{stmt.metric.value} takes no options", option.span)


def categorical(metric: str) -> bool:
    """Whether its value names one of the task's strategies, not a number."""
    return metric == NEAREST


def categories(metric: str, task) -> tuple[str, ...]:
    """What a measure of categories can be (`phase when nearest is …`)."""
    return task_kinds.of(task).baselines(task)


def spoken(measure: Measure) -> str:
    """The measure as a spec writes it: `icl-score early=10 late=100`, `kl-bigram`."""
    options = [f"{k}={v:g}" for k, v in measure.params if k in POSITIONS]
    return " ".join([measure.metric, *options])


def key(eval_set: str, metric: str) -> str:
    """Its name in an eval record: `train.kl-bigram` (what a phase rule names)."""
    return f"{eval_set}.{metric}"


def baseline_key(eval_set: str, strategy: str) -> str:
    """A strategy's loss in an eval record: `train.bigram-loss`."""
    return f"{eval_set}.{strategy}-loss"


def shown(metric: str, value: float, strategies: tuple[str, ...]) -> str | None:
    """A value as a report prints it, where it is not a plain number: nearest's strategy."""
    if metric != NEAREST or not 0 <= value < len(strategies):
        return None
    return strategies[int(value)]


def divergences(measures) -> list[str]:
    """The metrics of `measures` that are KLs to a strategy (curves.png draws them)."""
    return [m.metric for m in measures if m.layer is None and m.metric.startswith(KL)]


# ---- the runtime's half -------------------------------------------------------------------


def chunk_value(measure: Measure, logits, chunk):
    """The measure's mean over a chunk's sequences, per run: [R] ([R, S] for nearest, the
    KL to each strategy, for `finish` to choose from once the chunks are added up).
    logits [R, B, T, V]; chunk: a StrategyBatch (tasks/token_batch.py)."""
    if measure.metric == ICL_SCORE:
        params = dict(measure.params)
        losses = _token_losses(logits, chunk)  # [R, B, T]
        late, early = losses[..., int(params["late"]) - 1], losses[..., int(params["early"]) - 1]
        return (late - early).mean(-1)
    divergence = _mean_divergences(logits, chunk)  # [R, S]
    if measure.metric == NEAREST:
        return divergence
    return divergence[:, int(dict(measure.params)["strategy"])]


def finish(measure: Measure, mean):
    """[R]: the measure from its mean over the eval set."""
    return mean.argmin(-1).float() if measure.metric == NEAREST else mean


def baseline_results(eval_sets: dict, strategies: tuple[str, ...], runs: int) -> dict:
    """Each strategy's loss on each eval set (StrategyBatches), per run [R], by record key:
    what every eval record of the runs holds beside the model's own loss."""
    results = {}
    for name, batch in eval_sets.items() if strategies else ():
        losses = baseline_losses(batch).expand(runs, -1)
        results |= {baseline_key(name, s): losses[:, i] for i, s in enumerate(strategies)}
    return results


def baseline_losses(batch):
    """[D, S]: each strategy's loss on a StrategyBatch, reduced as the model's loss is (each
    sequence's mean over its scored positions, then the mean): D = 1 for a batch the runs
    share, else R."""
    strategies = _with_run_dim(batch.strategies, 5)  # [D, B, T, S, V]
    targets = _with_run_dim(batch.targets, 3)
    index = targets.clamp(min=0)[..., None, None].expand(*strategies.shape[:-1], 1)
    losses = -strategies.gather(-1, index)[..., 0]  # [D, B, T, S]
    return _per_sequence(losses, targets).mean(1)


def _mean_divergences(logits, chunk):
    """[R, S]: KL(strategy ‖ model) at each scored position, each sequence's mean, then
    the mean over the sequences."""
    model = logits.log_softmax(-1)[..., None, :]  # [R, B, T, 1, V]
    strategies = _with_run_dim(chunk.strategies, 5)  # [D, B, T, S, V]
    divergence = (strategies.exp() * (strategies - model)).sum(-1)  # [R, B, T, S]
    return _per_sequence(divergence, _with_run_dim(chunk.targets, 3)).mean(1)


def _token_losses(logits, chunk):
    """[R, B, T]: the model's loss at every position on its next token (the one after the
    last position is its target: the task has the `next-tokens` role)."""
    tokens, targets = chunk.tokens, chunk.targets
    length = tokens.shape[-1]
    position = tokens.new_ones(length).cumsum(0)  # 1 … T
    following = tokens.roll(-1, -1).where(position < length, targets)
    index = following.expand(logits.shape[:-1])[..., None]
    return -logits.log_softmax(-1).gather(-1, index)[..., 0]


def _per_sequence(values, targets):
    """values [R, B, T, S], targets [D, B, T] → [R, B, S]: means over scored positions."""
    scored = (targets != UNSCORED).to(values.dtype)[..., None]
    return (values * scored).sum(2) / scored.sum(2).clamp(min=1)


def _with_run_dim(data, dims: int):
    """Data the runs share, without a run dimension, gets one of size 1."""
    return data[None] if data.dim() < dims else data
