"""Reading a spec file: the one way every reader (the CLI, the API, `compile_file`) gets a
spec's text, so that what any of them reads is bounded whatever the path names.

A spec is a regular file of at most MAX_BYTES, in UTF-8. A directory, a FIFO, a device
(`/dev/zero`) or a socket is refused before anything is read (a FIFO is opened without
blocking), a larger file after reading MAX_BYTES + 1 bytes at most: each as a SpecFileError,
an OSError naming the file, as the CLI prints any unreadable spec. Text that is not UTF-8
is a SpecError pointing at the first byte that is not.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from clampdsl.lang.diagnostics import Diagnostic, Span, SpecError

MAX_BYTES = 1 << 20  # 1 MiB: the specs shipped are a few KB
KINDS = {  # what a path that is not a regular file names
    stat.S_ISDIR: (errno.EISDIR, "a directory"),
    stat.S_ISFIFO: (errno.EINVAL, "a FIFO"),
    stat.S_ISCHR: (errno.EINVAL, "a character device"),
    stat.S_ISBLK: (errno.EINVAL, "a block device"),
    stat.S_ISSOCK: (errno.EINVAL, "a socket"),
}


class SpecFileError(OSError):
    """A path that names no spec the language reads; `strerror` says why, as OSError's do."""


def read_spec(path: str | Path) -> str:
    """The text of the spec file at `path`; SpecFileError (an OSError) if it is not a regular
    file of at most MAX_BYTES, SpecError if it is not UTF-8 text."""
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    descriptor = os.open(path, flags)  # never blocks, on a FIFO either: no writer is awaited
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            number, kind = next(
                (found for test, found in KINDS.items() if test(mode)),
                (errno.EINVAL, "not a file"),
            )
            raise SpecFileError(number, f"not a regular file ({kind})", str(path))
        with os.fdopen(descriptor, "rb", closefd=False) as file:
            data = file.read(MAX_BYTES + 1)  # a file that grows, or lies about its size
    finally:
        os.close(descriptor)
    if len(data) > MAX_BYTES:
        raise SpecFileError(
            errno.EFBIG,
            f"larger than {MAX_BYTES / 2**20:g} MiB, the most a spec file may hold",
            str(path),
        )
    return decode_spec(data, str(path))


def decode_spec(data: bytes, file: str = "<bytes>") -> str:
    """UTF-8 bytes → text; a SpecError at the first byte that is not UTF-8 otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        start = data.rfind(b"\n", 0, error.start) + 1
        line = data.count(b"\n", 0, error.start) + 1
        column = len(data[start : error.start].decode("utf-8", errors="replace")) + 1
        span = Span(file, line, column, line, column + 1)
        diagnostic = Diagnostic(
            f"this file is not UTF-8 text: byte 0x{data[error.start]:02x} cannot be read here",
            span,
            hint="save the spec as UTF-8",
        )
        text = data.decode("utf-8", errors="replace")
        raise SpecError([diagnostic], {file: text}) from None
