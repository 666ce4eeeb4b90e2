"""The report's tables of progress measures (compile/progress.py): single-head accuracy
(Singh et al. Fig. 4a / Table 2) and composition scores at the last eval. Each head's or
pair's value would be a column of its own in the table of final measures, so these keys
are left out of it (`in_own_table`)."""

from __future__ import annotations

import math

from clampdsl.compile.progress import ALONE, DROPPED, parse_pair
from clampdsl.report import tables  # its TableData; tables lists these tables among its own
from clampdsl.report.summary import RunSummary


def in_own_table(key: str) -> bool:
    """Whether a measure's key is shown in one of this module's tables."""
    return key.split(" ", 1)[0] in (ALONE, DROPPED) or parse_pair(key) is not None


def single_head_table(summaries: list[RunSummary]) -> tables.TableData | None:
    """Per run and head measured: its accuracy alone (the other heads of its layer
    value-ablated) / with it alone ablated, on the first eval set, at the last eval."""
    heads = sorted(
        {key.split(" ", 1)[1] for s in summaries for key in s.measures if key.startswith(ALONE)},
        key=_head_order,
    )
    if not heads:
        return None

    def cell(s: RunSummary, head: str) -> str:
        alone, dropped = (s.measures.get(f"{key} {head}", math.nan) for key in (ALONE, DROPPED))
        return f"{_number(alone)} / {_number(dropped)}"

    rows = tuple((s.name, *(cell(s, head) for head in heads)) for s in summaries)
    notes = (
        "Accuracy with only that head of its layer live (the others value-ablated, as "
        "`ablate` does) / with that head alone ablated; each run's own clamps stay active.",
    )
    title = "Single-head accuracy (alone / dropped)"
    return tables.TableData(title, ("experiment", *heads), rows, notes)


def composition_tables(summaries: list[RunSummary]) -> list[tables.TableData]:
    """Per composition kind, a row per run and reading head, a column per writing head."""
    found: dict[str, dict[tuple[str, str], dict[str, float]]] = {}
    for s in summaries:
        for key, value in s.measures.items():
            pair = parse_pair(key)
            if pair is not None:
                metric, reader, writer = pair
                found.setdefault(metric, {}).setdefault((s.name, reader), {})[writer] = value
    made = []
    for metric, rows in found.items():
        writers = sorted({w for values in rows.values() for w in values}, key=_head_order)
        body = tuple(
            (run, reader, *(_number(values.get(w, math.nan)) for w in writers))
            for (run, reader), values in rows.items()
        )
        columns = ("experiment", "head", *writers)
        title = f"{metric} at the last eval"
        made.append(tables.TableData(title, columns, body, _notes(metric)))
    return made


def _notes(metric: str) -> tuple[str, ...]:
    return (
        f"‖W_O W_{metric[0].upper()}‖_F / (‖W_O‖_F ‖W_{metric[0].upper()}‖_F) of each "
        "writing head's output and the reading head's input, LayerNorm ignored; two random "
        "matrices give about 1/√d_model.",
    )


def _head_order(head: str) -> tuple[int, int]:
    layer, number = head.removeprefix("L").split(".H")
    return int(layer), int(number)


def _number(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "–"
