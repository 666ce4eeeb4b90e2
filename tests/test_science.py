"""Slow scientific checks (run with `pytest -m slow`): the main spec shows the paper's
phenomenon on a CPU within its budget."""

import math

import pytest
from conftest import ROOT

from clampdsl import api

LN2 = math.log(2)


@pytest.mark.slow
def test_three_subcircuits_plateau_then_phase_change(tmp_path):
    result = api.run(ROOT / "specs" / "three_subcircuits.clamp", tmp_path, device="cpu")
    summary = {s.name: s for s in result.summaries}
    noclamp = [r for r in result.records if r["run"] == "noclamp"]
    # A plateau near ln 2 (random label from the context) lasting many evals ...
    plateau = [r for r in noclamp if abs(r["train.loss"] - LN2) < 0.1]
    assert len(plateau) >= 10
    # ... then an abrupt drop: the phase change is reached, and soon after leaving it.
    phase = summary["noclamp"].phase_step
    assert phase is not None
    assert phase - summary["noclamp"].plateau_exit_step <= 600
    # Fig. 5b's ordering: every clamp helps; two given subcircuits remove the plateau.
    for name in ("prev_token", "layer1", "match", "copy", "layer1_copy"):
        assert summary[name].phase_step is not None and summary[name].phase_step < phase, name
    for name in ("match", "layer1_copy"):
        assert summary[name].phase_step < phase / 4, name
    # The copy readout starts near ln 2: it answers with a context label from step 0.
    assert summary["copy"].start_loss < 1.0 and summary["layer1_copy"].start_loss < 1.0
    # Induction heads formed: the strongest measured head attends to the right label.
    final = [r for r in noclamp if r["step"] == noclamp[-1]["step"]][0]
    assert final["induction-strength L2.H3"] > 0.5
