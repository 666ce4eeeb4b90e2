"""`task fewshot`: the reference's few-shot classification (sampler: tasks/fewshot.py)."""

from __future__ import annotations

import math

import attrs

from clampdsl.compile.keys import SEED, SIZE, Key
from clampdsl.tasks.base import TaskKind

MAX_CONTEXT = 30  # items before the query: 2K+1 tokens, within the model's 64 positions


class FewShot(TaskKind):
    name = "fewshot"
    roles = frozenset({"previous", "labels", "induction-targets"})
    eval_sets = ("train", "relabel", "new-classes")
    keys = {
        "classes": Key("int", low=2, high=SIZE),
        "new_classes": Key("int", low=2, high=SIZE),
        "labels": Key("int", low=2, high=SIZE),
        "context": Key("int", low=2, high=MAX_CONTEXT),
        "pair_split": Key("float", low=0.0, high=1.0),
        "seed": SEED,
        "features": Key("features"),
    }
    data = "clampdsl.tasks.fewshot:FewShotTask"

    def selected(self, task):
        return attrs.evolve(task, kind=self.name, tokens=None, markov=None)

    def model_shape(self, task):
        return (task.features.dim, task.labels, task.context)

    def brief(self, task):
        return f"{task.classes} classes"

    def summary(self, task):
        features = task.features
        return f"{task.classes} classes, {task.labels} labels, features {features.describe()}"

    def inputs(self, task):
        return f"features: {task.features.describe()}"

    def check(self, task, span, errors):
        """Each sequence takes `context` distinct classes and labels, and the label sets
        split into training and held-out."""
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


TASK = FewShot()
