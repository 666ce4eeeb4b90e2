"""The pygls server: documents in, lsp/checks.py's diagnostics, lsp/completion.py's items and
lsp/hover.py's text out.

A document is checked as the editor holds it, saved or not, on open, change and save, under
the path its `file:` URI names, so that its `use` paths start from its folder; a document
that is no file (an untitled buffer) is checked under its URI, its `use` paths starting
from the server's working directory. Positions are converted between the parser's columns
(characters) and the client's units (UTF-16 unless the client chose another encoding).
"""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.workspace import TextDocument

from clampdsl import __version__
from clampdsl.lsp import checks, completion, hover

SEVERITIES = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning}
ITEM_KINDS = {
    "statement": types.CompletionItemKind.Keyword,
    "target": types.CompletionItemKind.EnumMember,
    "word": types.CompletionItemKind.Keyword,
    "setting": types.CompletionItemKind.Property,
    "value": types.CompletionItemKind.Value,
    "selector": types.CompletionItemKind.Field,
    "name": types.CompletionItemKind.Variable,
}
# Completion is asked for where a word, a selector's part or a value begins.
COMPLETION = types.CompletionOptions(trigger_characters=[".", " ", ",", "="])


def server() -> LanguageServer:
    """A server with the features registered, not yet started."""
    ls = LanguageServer("clampdsl", __version__)

    @ls.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: LanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        publish(ls, params.text_document.uri)

    @ls.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: LanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        publish(ls, params.text_document.uri)

    @ls.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: LanguageServer, params: types.DidSaveTextDocumentParams) -> None:
        publish(ls, params.text_document.uri)

    @ls.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: LanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        diagnostics = types.PublishDiagnosticsParams(params.text_document.uri, [])
        ls.text_document_publish_diagnostics(diagnostics)

    @ls.feature(types.TEXT_DOCUMENT_COMPLETION, COMPLETION)
    def complete(ls: LanguageServer, params: types.CompletionParams) -> types.CompletionList:
        document = ls.workspace.get_text_document(params.text_document.uri)
        return completions(document, params.position)

    @ls.feature(types.TEXT_DOCUMENT_HOVER)
    def on_hover(ls: LanguageServer, params: types.HoverParams) -> types.Hover | None:
        document = ls.workspace.get_text_document(params.text_document.uri)
        return hovered(document, params.position)

    return ls


def publish(ls: LanguageServer, uri: str) -> None:
    document = ls.workspace.get_text_document(uri)
    text = document.source
    found = checks.check(text, file_of(document))
    diagnostics = [_diagnostic(f, document, text.split("\n")) for f in found]
    params = types.PublishDiagnosticsParams(uri, diagnostics, document.version)
    ls.text_document_publish_diagnostics(params)


def file_of(document: TextDocument) -> str:
    return document.path or document.uri


def completions(document: TextDocument, position: types.Position) -> types.CompletionList:
    text = document.source
    lines = text.split("\n")
    here = document.position_codec.position_from_client_units(lines, position)
    found = completion.complete(text, file_of(document), here.line, here.character)
    start = _client(document, lines, here.line, found.column)
    replaced = types.Range(start, position)
    items = [
        types.CompletionItem(
            label=item.label,
            kind=ITEM_KINDS[item.kind],
            detail=item.detail or None,
            documentation=item.documentation or None,
            text_edit=types.TextEdit(replaced, item.insert or item.label),
        )
        for item in found.items
    ]
    return types.CompletionList(is_incomplete=False, items=items)


def hovered(document: TextDocument, position: types.Position) -> types.Hover | None:
    text = document.source
    lines = text.split("\n")
    here = document.position_codec.position_from_client_units(lines, position)
    shown = hover.hover(text, file_of(document), here.line, here.character)
    if shown is None:
        return None
    span = shown.span
    start = _client(document, lines, span.line - 1, span.column - 1)
    end = _client(document, lines, span.end_line - 1, span.end_column - 1)
    contents = types.MarkupContent(types.MarkupKind.Markdown, shown.text)
    return types.Hover(contents, types.Range(start, end))


def _diagnostic(found: checks.Found, document: TextDocument, lines: list[str]) -> types.Diagnostic:
    start = _client(document, lines, found.line, found.column)
    end = _client(document, lines, found.end_line, found.end_column)
    related = None
    if found.elsewhere is not None:  # the line of the included file it lies in
        place = found.elsewhere.line - 1
        whole_line = types.Range(types.Position(place, 0), types.Position(place + 1, 0))
        location = types.Location(Path(found.elsewhere.file).resolve().as_uri(), whole_line)
        related = [types.DiagnosticRelatedInformation(location, "here")]
    return types.Diagnostic(
        types.Range(start, end),
        found.message,
        severity=SEVERITIES[found.severity],
        source="clampdsl",
        related_information=related,
    )


def _client(document: TextDocument, lines: list[str], line: int, column: int) -> types.Position:
    """A 0-based line and character column as the client counts columns."""
    position = types.Position(line, column)
    return document.position_codec.position_to_client_units(lines, position)
