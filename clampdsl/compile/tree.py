"""The spec's tree: the folder whose files a spec may read (includes, feature files).

A spec reads no file of the user's but those beside it: the folder of the file that names
the path, or the nearest folder above it holding a file named `.clamp-root` (ROOT_MARKER),
so that `specs/paper/fig3.clamp` can use `../lib/induction.clamp` where `specs/` is marked.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from clampdsl.lang.diagnostics import quoted

ROOT_MARKER = ".clamp-root"  # a folder holding it is the tree its specs may read from
SPEC_SUFFIX = ".clamp"


def is_absolute(written: str) -> bool:
    """Whether a path a spec writes is absolute, or names a drive, on any system."""
    return (
        PurePosixPath(written).is_absolute()
        or PureWindowsPath(written).is_absolute()
        or bool(PureWindowsPath(written).drive)
    )


def not_a_spec(written: str, resolved: Path) -> str | None:
    """Why the file a `use` or `from spec` path reaches cannot be a spec, or None. Only a
    .clamp file that is not hidden is read: a syntax error echoes the line it is in, which
    must not show a line of another file of the tree (`.env`, a key), named or linked to."""
    read = resolved.name  # the file read, where links lead
    what = quoted(written)
    if Path(written).name != read:  # a link, or `..`: say where it leads
        what += f" leads to {quoted(read)}, which"
    if read.startswith("."):
        return f"{what} is a hidden file, not a spec"
    if not read.endswith(SPEC_SUFFIX):
        return f"{what} is not a spec: a spec's name ends in {SPEC_SUFFIX}"
    return None


def tree_words(root: Path) -> str:
    """The tree a spec may read files from (spec_root), in words for an error."""
    if (root / ROOT_MARKER).is_file():
        return f"the spec's tree, {root} (marked by its {ROOT_MARKER})"
    return (
        f"the top file's folder, {root} (a file named {ROOT_MARKER} in a folder "
        "above it lets its specs use files from all of that folder)"
    )


def spec_root(top: Path) -> Path:
    """The folder the files `top` names must lie in: the nearest one, from `top`'s folder
    up, that holds ROOT_MARKER; `top`'s folder where none does."""
    folder = top.parent.resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / ROOT_MARKER).is_file():
            return candidate
    return folder
