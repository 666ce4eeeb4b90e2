"""clampdsl: a declarative language for clamping activations while small transformers train.

import clampdsl
plan = clampdsl.compile_file("specs/three_subcircuits.clamp")   # no torch needed
result = clampdsl.run("specs/three_subcircuits.clamp")          # trains, writes runs/
for s in result.summaries:
    print(s.name, s.gives, s.phase_step)
clampdsl.load("specs/three_subcircuits.clamp")                  # the same, read back
"""

import importlib

__version__ = "0.1.0"
# Each name of the API and the module it comes from, imported on first use: `clampdsl
# validate` imports this package, and must not pay for the training and report stacks
# behind `run`.
_EXPORTS = {
    "Plan": "clampdsl.compile.plan",
    "RunResult": "clampdsl.api",
    "SpecError": "clampdsl.lang.diagnostics",
    "compile_file": "clampdsl.compile",
    "compile_source": "clampdsl.compile",
    "load": "clampdsl.api",
    "parse": "clampdsl.lang.parser",
    "parse_file": "clampdsl.lang.parser",
    "run": "clampdsl.api",
    "run_specs": "clampdsl.api",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'clampdsl' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # once imported, an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
