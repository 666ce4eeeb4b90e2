"""docs/tutorial.md, followed as a reader would: its ```clamp blocks saved under the name on
their first line, every command of its ```sh blocks run in order (exiting as a trailing
`# exits N` says, else 0), its ```python block executed, and each ```text block after a
command compared with what that command printed ("…" stands for lines left out, or for the
rest of a line).

The fast tests follow the page in a copy of specs/: the commands that only compile, with
their output, and then every command with the training of each spec it runs cut short (the
run directories' names then differ from the page's, and are read off the disk). The slow
test follows the page as written and checks every output.
"""

import contextlib
import io
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, fenced, run_example

TUTORIAL = ROOT / "docs" / "tutorial.md"
BLOCK = re.compile(r"```(sh|text|clamp|python)\n(.*?)```", re.S)
COMPILING = ("validate", "plan", "fmt")  # clampdsl commands that neither train nor read a run
EXIT = re.compile(r"#\s*exits (\d+)\s*$")
SAVED_AS = re.compile(r"#\s*(specs/\S+\.clamp)")
RUN_DIR = re.compile(r"runs/([\w-]+)/[0-9a-f]{12}")
TRIMMED = "…"
# Settings a spec run by the fast test gets at its end (later settings override): a few
# steps on short evals, the model's shape unchanged (the specs name heads by number).
SHORT = "train steps=30 batch=8\neval every 10 steps on train size=64\n"


def test_the_readme_links_the_tutorial():
    assert "(docs/tutorial.md)" in (ROOT / "README.md").read_text()


def test_its_install_commands_are_the_readmes():
    (readme_commands, *_) = fenced(ROOT / "README.md", "sh")
    installs = [c for c in _commands() if "pip install" in c]
    assert installs and all(command in readme_commands for command in installs)


def test_what_the_compiling_commands_print(tmp_path):
    walk = Walk(tmp_path, compiling_only=True)
    walk.follow()
    saved = {name for name in walk.saved}
    assert saved and saved <= walk.compiled, "every spec the page shows is checked"


def test_every_command_runs_with_training_cut_short(tmp_path):
    Walk(tmp_path, short=True).follow()


@pytest.mark.slow
def test_the_page_as_written(tmp_path):
    Walk(tmp_path).follow()


def _commands() -> list[str]:
    return [line for body in fenced(TUTORIAL, "sh") for line in body.splitlines() if line]


class Walk:
    """The tutorial followed in `folder`, which starts as a copy of specs/. `short`: each
    spec is trained cut short (SHORT); `compiling_only`: only the COMPILING commands run."""

    def __init__(self, folder: Path, short: bool = False, compiling_only: bool = False):
        self.folder, self.short, self.compiling_only = folder, short, compiling_only
        shutil.copytree(ROOT / "specs", folder / "specs")
        self.saved: list[str] = []  # the page's specs, as saved
        self.compiled: set[str] = set()  # the specs a COMPILING command read
        self.shortened: set[str] = set()

    def follow(self) -> None:
        printed = None  # what the last command printed, where the page's output must match
        for language, body in BLOCK.findall(TUTORIAL.read_text()):
            if language == "clamp":
                self.save(body)
            elif language == "sh":
                for command in filter(None, body.splitlines()):
                    printed = self.command(command)
            elif language == "python":
                printed = self.python(body)
            elif printed is not None:
                assert_shows(body, printed)

    def save(self, spec: str) -> None:
        name = SAVED_AS.match(spec).group(1)
        (self.folder / name).write_text(spec)
        self.saved.append(name)

    def command(self, line: str) -> str | None:
        """Runs one command of the page; what it printed, where the page's output is to
        be compared with it."""
        if "pip install" in line:
            return None  # the README's (test_its_install_commands_are_the_readmes)
        words = shlex.split(line, comments=True)
        compiling = words[0] == "clampdsl" and words[1] in COMPILING
        if self.compiling_only and not compiling:
            return None
        if self.short:
            words = [self.on_disk(word) for word in words]
            if words[:2] == ["clampdsl", "run"]:
                self.cut_short(words[2])
        if compiling:
            self.compiled.update(w for w in words if w.endswith(".clamp"))
        argv = [sys.executable, "-m", "clampdsl", *words[1:]] if words[0] == "clampdsl" else words
        done = subprocess.run(argv, cwd=self.folder, capture_output=True, text=True)
        expected = int(EXIT.search(line).group(1)) if EXIT.search(line) else 0
        assert done.returncode == expected, f"{line}\n{done.stdout}\n{done.stderr}"
        exact = not self.short or (compiling and not self.shortened.intersection(words))
        return done.stdout + done.stderr if exact else None

    def python(self, code: str) -> str | None:
        if self.compiling_only:
            return None
        captured = io.StringIO()
        with contextlib.chdir(self.folder), contextlib.redirect_stdout(captured):
            run_example(code, "tutorial.md")
        return None if self.short else captured.getvalue()

    def cut_short(self, spec: str) -> None:
        if spec not in self.shortened:
            with open(self.folder / spec, "a") as file:
                file.write(SHORT)
            self.shortened.add(spec)

    def on_disk(self, word: str) -> str:
        """A run directory the page names, as this walk's run made it."""

        def made(match: re.Match) -> str:
            (directory,) = (self.folder / "runs" / match.group(1)).iterdir()
            return str(directory.relative_to(self.folder))

        return RUN_DIR.sub(made, word)


def assert_shows(pasted: str, printed: str) -> None:
    """Each stretch of the pasted lines between "…" lines is consecutive lines of what was
    printed, in order (trailing spaces aside; a line ending in "…" is a line's start)."""
    lines = [line.rstrip() for line in printed.splitlines()]
    at = 0
    for stretch in re.split(rf"^{TRIMMED}\n", pasted, flags=re.M):
        wanted = stretch.splitlines()
        if not wanted:
            continue
        found = next(
            (i for i in range(at, len(lines)) if _matches(wanted, lines[i : i + len(wanted)])),
            None,
        )
        assert found is not None, f"not printed:\n{stretch}\nprinted:\n{printed}"
        at = found + len(wanted)


def _matches(wanted: list[str], lines: list[str]) -> bool:
    if len(lines) < len(wanted):
        return False
    return all(
        line.startswith(want[: -len(TRIMMED)]) if want.endswith(TRIMMED) else line == want
        for want, line in zip(wanted, lines, strict=True)
    )
