"""Completion: the words that may come at the cursor, each list taken from the table the
compiler checks against (the kinds, settings.SECTIONS, toplevel.METRICS, …), so that what is
offered is what compiles.

The context is read from the words before the cursor on its line: the statement they begin
(a verb at line start, `clamp SEL to `, `model `, `eval … on `, `measure `, …) and, for a
selector, how much of it is typed (`L2.` → heads and layer sites, `L2.H3.` → head sites).
Layers, heads and `let` names are the spec's own, read leniently (lsp/document.py).
"""

from __future__ import annotations

import inspect
import re
import sys

import attrs

from clampdsl import kinds
from clampdsl.analysis import predictions
from clampdsl.compile import interventions, progress, selectors, settings, toplevel
from clampdsl.compile.configs import ModelConfig, TaskConfig
from clampdsl.kinds import Kind
from clampdsl.lang import ast
from clampdsl.lang.grammar import STATEMENTS
from clampdsl.lsp.document import Reading, read
from clampdsl.tasks import kinds as task_kinds

WORD = re.compile(r"[^\s,=]*$")  # the word being typed: back to a space, a comma or a '='
HEAD_SITE = re.compile(r"L([0-9]+|\*)\.H[^.\s]*\.")  # `L2.H3.`: a head's site comes next
LAYER_DOT = re.compile(r"L([0-9]+|\*)\.")  # `L2.`: heads or a layer's site come next


@attrs.frozen
class Item:
    label: str
    kind: str  # "statement" | "target" | "word" | "setting" | "value" | "selector" | "name"
    detail: str = ""
    documentation: str = ""
    insert: str | None = None  # what is written, where it differs from the label


@attrs.frozen
class Completions:
    column: int  # 0-based: where on the line the text the items replace begins
    items: tuple[Item, ...]


def complete(text: str, file: str, line: int, column: int) -> Completions:
    """What may be written at 0-based `line`, `column` of the document."""
    lines = text.split("\n")
    prefix = lines[line][:column] if line < len(lines) else ""
    word = WORD.search(prefix)
    before = prefix[: word.start()]
    words = before.replace(",", " ").split()
    context = _Context(text, file, line + 1, bool(before[:1].isspace()))
    offset, items = _items(words, word.group(0), before, context)
    return Completions(word.start() + offset, tuple(items))


class _Context:
    """The document around the cursor, read only when a list needs it (a parse or more)."""

    def __init__(self, text: str, file: str, line: int, indented: bool):
        self.text, self.file, self.line, self.indented = text, file, line, indented
        self._reading: Reading | None = None

    @property
    def reading(self) -> Reading:
        if self._reading is None:  # the line being typed left out: it seldom parses
            self._reading = read(self.text, self.file, leave_out=self.line)
        return self._reading

    @property
    def model(self) -> ModelConfig:
        reading = self.reading
        return reading.model(reading.experiment_at(self.line, self.indented))

    @property
    def task(self) -> TaskConfig:
        reading = self.reading
        return reading.settings(reading.experiment_at(self.line, self.indented)).task


def _items(words: list[str], word: str, before: str, context: _Context) -> tuple[int, list[Item]]:
    """(where in the word the items start, the items) for the words before the cursor."""
    if not words:
        return 0, _statements(context.indented)
    head = words[0]
    verb = head == "clamp" or head in kinds.verbs()
    if verb and len(words) > 2 and (window := _in_window(words)) is not None:
        return 0, window
    if head == "clamp":
        return _after_clamp(words, word, context)
    if head in kinds.verbs():
        return _after_verb(kinds.verbs()[head], words, word, context)
    if head in settings.SECTIONS:
        return 0, _setting_items(head, words, before)
    if head == "measure":
        if len(words) == 1:
            # the heads' and weights' measures, and the predictions' the task offers
            metrics = [*toplevel.METRICS, *progress.PROGRESS, *predictions.names(context.task)]
            return 0, [Item(m, "value", "measure") for m in metrics]
        return _selector(word, context) if words[-1] == "of" else (0, [])
    if head == "report":
        return 0, [Item(r, "value", "report") for r in toplevel.REPORTS if r not in words]
    if head == "phase" and len(words) == 1:
        if "." in word:  # `phase train.`: a metric
            return word.index(".") + 1, [Item(m, "value") for m in toplevel.PHASE_METRICS]
        return 0, [Item(s, "value", "eval set") for s in settings.EVAL_SETS]
    if head == "let" and before.rstrip().endswith("="):
        return _selector(word, context)
    return 0, []


def _statements(indented: bool) -> list[Item]:
    """At line start: an experiment's statements (clamp, the kinds' own verbs, the
    settings lines that override the spec's), or the top-level ones."""
    if not indented:
        return [Item(s, "statement") for s in STATEMENTS]
    examples: dict[str, str] = {}
    for kind in kinds.all_kinds():
        if kind.statement is not None and not examples.get(kind.statement):
            examples[kind.statement] = kind.example
    examples["clamp"] = "clamp SEL to TARGET"
    items = [Item(verb, "statement", example) for verb, example in examples.items()]
    return items + [Item(s, "statement", "a setting for this experiment") for s in settings.FLAGS]


def _after_clamp(words, word, context) -> tuple[int, list[Item]]:
    if len(words) == 1 or words[-1] in ("of", "except"):
        return _heads(context) if words[-1] == "except" else _selector(word, context)
    if "to" not in words[2:]:
        return 0, [Item("to", "word", "clamp SEL to TARGET")]
    to = words.index("to", 2)
    if to == len(words) - 1:
        return 0, [_target(kind) for kind in kinds.targets().values()]
    kind = kinds.targets().get(words[to + 1])
    return (0, _arguments(kind, words[to + 2 :])) if kind else (0, [])


def _after_verb(kind: Kind, words, word, context) -> tuple[int, list[Item]]:
    if len(words) == 1:
        return _selector(word, context)
    if words[-1] == "except":
        return _heads(context)
    written = words[4:] if len(words) > 3 and words[2] == "except" else words[2:]
    return 0, _arguments(kind, written)


# The words of a window (grammars/clamp.lark `window`), after a statement's arguments.
WINDOW_WORDS = (
    Item("from step", "word", "from step N [to step M]: acts from step N", insert="from step "),
    Item("until step", "word", "until step N: acts before step N only", insert="until step "),
    Item("during", "word", "during train | eval | both (the default)", insert="during "),
)


def _in_window(words: list[str]) -> list[Item] | None:
    """Inside a window being written: what may come next there; None where no window has
    begun. (`from` begins one unless a path follows, `graft … from "RUN"`, which this
    offers nothing for.)"""
    last, start = words[-1], _window_start(words[:-1])
    if last == "during":
        return [Item(d, "value", "when the clamp acts") for d in interventions.DURING]
    if last in ("from", "until") or (last == "to" and start is not None):
        return [Item("step", "word", "a training step", insert="step ")]
    start = _window_start(words)
    if start is None:
        return None
    written = set(words[start:])
    if "during" in written:  # the window's last part
        return []
    return [item for item in WINDOW_WORDS if item.label.split()[0] not in written]


def _window_start(words: list[str]) -> int | None:
    for i, word in enumerate(words):
        if word in ("until", "during") or (word == "from" and words[i + 1 : i + 2] == ["step"]):
            return i
    return None


def _target(kind: Kind) -> Item:
    example = kind.example or f"clamp SEL to {kind.target}"
    insert = f"{kind.target} of " if kind.takes_source else None  # `scores of L2.H3`
    return Item(kind.target, "target", example, _documentation(kind), insert)


def _documentation(kind: Kind) -> str:
    """The first paragraph of the kind's module docstring: what it does, in the module's
    own words."""
    doc = inspect.getdoc(sys.modules[type(kind).__module__]) or ""
    return doc.split("\n\n")[0]


def _arguments(kind: Kind, written: list[str]) -> list[Item]:
    """What may follow a kind's target or selector: its words, parameters and row sets,
    `detached`, less those written already."""
    items = [Item(" ".join(kind.form), "word", kind.example)] if kind.form else []
    for name, param in kind.params.items():
        default = "required" if param.default is None else f"default {param.default:g}"
        detail = f"in [{param.low:g}, {param.high:g}], {default}"
        items.append(Item(name, "word", detail, insert=f"{name} "))
    items += [Item(f"at {rows}", "word", "only these rows") for rows in kind.rows]
    if kind.detachable:
        items.append(Item("detached", "word", "no gradient through what it reads"))
    items += WINDOW_WORDS
    return [item for item in items if item.label.split()[-1] not in written]


def _setting_items(section: str, words: list[str], before: str) -> list[Item]:
    if before.endswith("="):  # a value: the choices of a choice key
        key = settings.SECTIONS[section].get(words[-1].rstrip("="))
        return [Item(choice, "value") for choice in key.choices] if key else []
    if section == "eval":
        if "on" not in words:
            return []
        sets = [Item(s, "value", "eval set") for s in settings.EVAL_SETS if s not in words]
        return sets + _keys(section)
    flags = [Item(flag, "value", f"{section} kind") for flag in sorted(settings.FLAGS[section])]
    return flags + _keys(section, words)


def _keys(section: str, words: list[str] = ()) -> list[Item]:
    """The section's keys; on a task line that names its kind, that kind's only."""
    config, keys = getattr(settings.Settings(), section), settings.SECTIONS[section]
    named = [task_kinds.by_name()[w] for w in words if w in task_kinds.by_name()]
    if section == "task" and named:
        config, keys = named[0].selected(config), named[0].keys
    items = []
    for name, key in keys.items():
        default = _field(config, key.field or name)
        detail = key.kind if key.kind != "choice" else " | ".join(key.choices)
        if key.low is not None or key.high is not None:
            low, high = ("" if b is None else f"{b:g}" for b in (key.low, key.high))
            detail += f" in [{low}, {high or '∞'}]"
        if isinstance(default, int | float | str):
            detail += f", default {default}"
        items.append(Item(name, "setting", detail, insert=f"{name}="))
    return items


def _selector(word: str, context: _Context) -> tuple[int, list[Item]]:
    """Selectors, as far as `word` has written one: a head's sites after `L2.H3.`, heads
    and a layer's sites after `L2.`, else layers, model sites and the spec's lets."""
    if found := HEAD_SITE.match(word):
        return found.end(), [Item(s, "selector", "head site") for s in selectors.HEAD_SITES]
    if found := LAYER_DOT.match(word):
        sites = [Item(s, "selector", "layer site") for s in selectors.LAYER_SITES]
        return found.end(), _heads(context)[1] + sites
    model = context.model
    layers = [
        Item(f"L{n + 1}", "selector", f"layer {n + 1} of {model.layers} (tensor layer {n})")
        for n in range(model.layers)
    ]
    layers.append(Item("L*", "selector", "every layer"))
    sites = [Item(s, "selector", "model-wide site") for s in selectors.MODEL_SITES]
    reading = context.reading
    lets = [
        Item(name, "name", f"let {name} = {reading.written(let.value.span)}")
        for name, let in reading.lets.items()
        if not isinstance(let.value, ast.Number)
    ]
    return 0, layers + sites + lets


def _heads(context: _Context) -> tuple[int, list[Item]]:
    heads = context.model.heads
    items = [Item("H*", "selector", f"every head (H0-H{heads - 1})")]
    return 0, items + [Item(f"H{h}", "selector", f"head {h}") for h in range(heads)]


def _field(config, field: str):
    """A config's field by its dotted path (`tokens.vocab`), or None."""
    for part in field.split("."):
        config = getattr(config, part, None)
    return config
