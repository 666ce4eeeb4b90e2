"""The language server (`clampdsl lsp`, the `lsp` extra): validate's diagnostics, completion
and hover for `.clamp` files, over stdio.

`document`, `checks`, `completion` and `hover` read a document with the language half's own
passes and tables and import neither pygls nor torch; `server` wires them to pygls. Only
`serve` reaches for pygls, so a core install imports this package without it.
"""

from __future__ import annotations

NEEDS_EXTRA = "the language server needs the lsp extra: pip install 'clampdsl[lsp]'"
PYGLS = ("pygls", "lsprotocol", "cattrs")  # what the extra installs


def serve() -> bool:
    """Serves over stdin and stdout until the client says exit; False, serving nothing,
    where pygls is not installed."""
    try:
        from clampdsl.lsp.server import server
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] not in PYGLS:
            raise
        return False
    server().start_io()
    return True
