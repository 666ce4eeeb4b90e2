"""clampdsl: a declarative language for clamping activations while small transformers train.

import clampdsl
plan = clampdsl.compile_file("specs/three_subcircuits.clamp")   # no torch needed
result = clampdsl.run("specs/three_subcircuits.clamp")          # trains, writes runs/
for s in result.summaries:
    print(s.name, s.gives, s.phase_step)
clampdsl.load("specs/three_subcircuits.clamp")                  # the same, read back
"""

from clampdsl.api import RunResult, load, run
from clampdsl.compile import compile_file, compile_source
from clampdsl.compile.plan import Plan
from clampdsl.lang.diagnostics import SpecError
from clampdsl.lang.parser import parse, parse_file

__version__ = "0.1.0"
__all__ = [
    "Plan",
    "RunResult",
    "SpecError",
    "compile_file",
    "compile_source",
    "load",
    "parse",
    "parse_file",
    "run",
]
