"""`features=file("PATH", key="resnet18/224/feat")`: class × exemplar × dim features from a
file, found and checked at compile time; the runtime reads them (tasks/features.py).

PATH is relative to the file that writes it and must stay inside that file's tree
(compile/tree.py, the rule of includes). Only what the plan needs is read here: the array's
shape and element type, and the SHA-256 of the file's bytes, so that other bytes make
another plan and another run directory. An .npy header is read in plain Python; an .h5
dataset's shape through h5py (the `h5` extra), imported only for a spec that names an .h5
file. An .npy file of Python objects, which only a pickle could load, is refused, as are
one whose size is not its header's array and an .h5 dataset whose bytes lie in other files.
"""

from __future__ import annotations

import hashlib
import math
import re
from ast import literal_eval
from pathlib import Path

from clampdsl.compile.configs import FeatureConfig, FeatureFile
from clampdsl.compile.errors import Collector
from clampdsl.compile.tree import is_absolute, spec_root, tree_words
from clampdsl.lang import ast
from clampdsl.lang.diagnostics import quoted

NPY_SUFFIXES = (".npy",)
H5_SUFFIXES = (".h5", ".hdf5")
NPY_MAGIC = b"\x93NUMPY"
MAX_NPY_HEADER = 65_536  # numpy writes headers of a few hundred bytes
FLOATS = re.compile(r"[<>=|]?f[248]")  # the element types of an .npy file read as floats
MAX_DIM = 8192  # as synthetic features' dim (settings.FEATURE_KEYS)
EXAMPLE = 'e.g. features=file("omniglot_features.h5", key="resnet18/224/feat")'


class Unreadable(Exception):
    """A features file that is not one the task can read; the message says why."""


def lower(call: ast.Call, errors: Collector) -> FeatureConfig | None:
    """The features of a `file(...)` value; None after an error."""
    key = _key(call, errors)
    if call.argument is None:
        errors.error("file(...) takes the path of the features file first", call.span, EXAMPLE)
        return None
    path = _located(call.argument, errors)
    if path is None or key is None:
        return None
    written = quoted(call.argument.value)
    try:
        shape = _shape(path, key)
        _check_shape(shape)
        sha256 = _sha256(path)
    except Unreadable as reason:
        errors.error(f"{written}: {reason}", call.argument.span)
        return None
    except OSError as error:
        errors.error(f"cannot read {written}: {error.strerror or error}", call.argument.span)
        return None
    classes, exemplars, dim = shape
    return FeatureConfig(
        kind="file", dim=dim, stored=FeatureFile(str(path), key, sha256, classes, exemplars)
    )


def _key(call: ast.Call, errors: Collector) -> str | None:
    """The `key` option (the dataset of an .h5 file; "" where none is given); None after an
    error."""
    key = ""
    for option in call.options:
        if option.key.value != "key":
            errors.unknown("file(...) option", option.key.value, option.key.span, ("key",))
            return None
        if not isinstance(option.value, ast.String):
            errors.error('key takes a string: key="resnet18/224/feat"', option.value.span)
            return None
        key = option.value.value
    return key


def _located(argument: ast.String, errors: Collector) -> Path | None:
    """The file a path names, resolved; None (after an error) where it is absolute, leads
    out of the spec's tree, or names no file."""
    written, span = argument.value, argument.span
    if is_absolute(written):
        errors.error("a features path is relative to the spec file that writes it", span)
        return None
    spec = Path(span.file)
    root = spec_root(spec)
    try:
        path = (spec.parent / written).resolve()  # links followed: they cannot lead out
        exists = path.is_file()
    except (OSError, RuntimeError, ValueError) as error:  # a loop of links, a NUL
        errors.error(f"cannot read {quoted(written)}: {error}", span)
        return None
    if not path.is_relative_to(root):
        errors.error(f"{quoted(written)} leads out of {tree_words(root)}", span)
        return None
    if not exists:
        errors.error(f"no features file {quoted(written)}", span, f"looked for {path}")
        return None
    return path


def _shape(path: Path, key: str) -> tuple[int, ...]:
    if path.suffix in NPY_SUFFIXES:
        if key:
            raise Unreadable("an .npy file holds one array: `key` names a dataset of an .h5 file")
        return _npy_shape(path)
    if path.suffix in H5_SUFFIXES:
        if not key:
            raise Unreadable('name its dataset: key="resnet18/224/feat"')
        return _h5_shape(path, key)
    raise Unreadable(f"features are read from {', '.join(NPY_SUFFIXES + H5_SUFFIXES)} files")


def _npy_shape(path: Path) -> tuple[int, ...]:
    """The shape in an .npy file's header (the format: magic, version, header length, a
    Python dict literal), for an array of floats."""
    with path.open("rb") as file:
        if file.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise Unreadable("not an .npy file (it lacks the format's first bytes)")
        major = file.read(2)[:1]
        length = int.from_bytes(file.read(2 if major == b"\x01" else 4), "little")
        if length > MAX_NPY_HEADER:
            raise Unreadable("its .npy header is too long to be one numpy wrote")
        try:
            header = literal_eval(file.read(length).decode("latin-1"))
            descr, shape = header["descr"], tuple(header["shape"])
        except (ValueError, SyntaxError, TypeError, KeyError, MemoryError, RecursionError):
            raise Unreadable("its .npy header is not readable") from None
        data_start = file.tell()
    if not isinstance(descr, str) or "O" in descr:
        raise Unreadable("it holds Python objects, which only a pickle could load: refused")
    if not FLOATS.fullmatch(descr):
        raise Unreadable(f"its elements are {descr!r}, not floating-point numbers")
    if not all(type(n) is int and n >= 0 for n in shape):
        raise Unreadable(f"its .npy header's shape {shape} is not one of whole numbers")
    # The header is the file's word only: the bytes after it must be the array it names,
    # no fewer (a truncated file) and no more (what the runtime would read for nothing).
    expected = data_start + math.prod(shape) * int(descr[-1])
    if path.stat().st_size != expected:
        raise Unreadable(
            f"its header names {math.prod(shape):,} numbers of {descr[-1]} bytes, "
            f"but it holds {path.stat().st_size - data_start:,} bytes of data"
        )
    return shape


def _h5_shape(path: Path, key: str) -> tuple[int, ...]:
    try:
        import h5py
    except ImportError:
        raise Unreadable("reading .h5 features needs h5py: pip install 'clampdsl[h5]'") from None
    try:
        with h5py.File(path, "r") as file:
            dataset = h5_dataset(file, key)
            if dataset.dtype.kind != "f":
                raise Unreadable(f"its dataset {quoted(key)} holds {dataset.dtype}, not floats")
            return tuple(dataset.shape)
    except OSError as error:
        raise Unreadable(f"not an HDF5 file h5py can read ({error})") from None


def h5_dataset(file, key: str):
    """The dataset under `key` of an open h5py file, refused where its bytes could come from
    elsewhere: HDF5 lets a link lead into another file, a dataset keep its data in raw files
    of its own, or a virtual dataset map other files' datasets, any of them outside the
    spec's tree and outside the SHA-256 that names the plan. Soft links are refused too: the
    path they name could pass through such a link. The runtime opens its copy of the bytes
    through this as well (tasks/features.py)."""
    import h5py

    parts = [part for part in key.split("/") if part]
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        link = file.get(prefix, getlink=True)
        if link is None:
            raise Unreadable(f"it holds no dataset {quoted(key)}")
        if isinstance(link, h5py.ExternalLink | h5py.SoftLink):
            raise Unreadable(f"{quoted(prefix)} is a link: name the dataset itself")
    dataset = file.get(key)
    if not isinstance(dataset, h5py.Dataset):
        raise Unreadable(f"it holds no dataset {quoted(key)}")
    if dataset.external or dataset.is_virtual:
        raise Unreadable(f"its dataset {quoted(key)} keeps its data in other files: refused")
    return dataset


def _check_shape(shape: tuple[int, ...]) -> None:
    if len(shape) != 3 or min(shape) < 1:
        raise Unreadable(
            f"it holds an array of shape {shape}: features are class × exemplar × dim, "
            "each at least 1"
        )
    if shape[2] > MAX_DIM:
        raise Unreadable(f"its features have {shape[2]:,} dimensions, more than {MAX_DIM:,}")


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
