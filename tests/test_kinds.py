"""The clamp kinds live each in one module: found by listing the package, importable
without torch, and named nowhere else in a comparison."""

import ast
import subprocess
import sys

from conftest import ROOT

from clampdsl import kinds


def test_every_kind_is_found_with_a_unique_name_and_target():
    found = kinds.all_kinds()
    names = [kind.name for kind in found]
    assert len(names) == len(set(names))
    assert {"ablate", "zero", "prev-token", "induction", "shifted-embedding", "copy-scores"} <= set(
        names
    )
    words = [k.target for k in found if k.target] + [k.statement for k in found]
    assert len([k.target for k in found if k.target]) == len(kinds.targets())
    assert "clamp" in words


def test_kind_modules_import_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any `import torch` now fails
        "from clampdsl import kinds\n"
        "assert len(kinds.all_kinds()) >= 6\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _compared_strings(tree: ast.AST):
    """String constants that take part in a comparison (`==`, `!=`, `in`)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for operand in [node.left, *node.comparators]:
                for inner in ast.walk(operand):
                    if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
                        yield inner.value, node.lineno


def test_no_code_outside_a_kind_compares_kind_names():
    names = {kind.name for kind in kinds.all_kinds()}
    offenders = []
    for path in (ROOT / "clampdsl").rglob("*.py"):
        if path.parent.name == "kinds":
            continue
        for value, line in _compared_strings(ast.parse(path.read_text())):
            if value in names:
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {value!r}")
    assert not offenders, offenders
