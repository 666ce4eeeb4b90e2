"""`clampdsl lsp` as an editor meets it: a real server process, spoken to by pygls's own
client over stdio: validate's diagnostics as the text changes, completion and hover."""

import asyncio
import contextlib
import sys
import textwrap

import pytest
from conftest import clampdsl

pytest.importorskip("pygls")

from lsprotocol import types  # noqa: E402
from pygls.lsp.client import LanguageClient  # noqa: E402

from clampdsl import kinds  # noqa: E402

TIMEOUT = 10  # seconds for any one answer: a server that says nothing fails the test
SPEC = textwrap.dedent(
    """\
    clampdsl 1
    model layers=2 heads=8 d_model=64
    train steps=400

    let OTHERS = L2.H* except H3

    experiment match:
        clamp L3.H2 to prev-token
        ablate OTHERS
    """
)
WRONG = (7, 10)  # 0-based line and column of `L3`


class Client(LanguageClient):
    """A client that keeps what the server publishes, and how its process ended."""

    def __init__(self):
        super().__init__("clampdsl-tests", "1")
        self.published: asyncio.Queue = asyncio.Queue()
        self.returncode: int | None = None

        @self.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def _published(params: types.PublishDiagnosticsParams) -> None:
            self.published.put_nowait(params)

    async def server_exit(self, server) -> None:
        self.returncode = server.returncode

    async def diagnostics(self, uri: str) -> list[types.Diagnostic]:
        """The next diagnostics the server publishes for `uri`."""
        while True:
            params = await asyncio.wait_for(self.published.get(), TIMEOUT)
            if params.uri == uri:
                return params.diagnostics


SERVER = ("-m", "clampdsl", "lsp")
# The same command in a process where `import torch` fails.
WITHOUT_TORCH = (
    "-c",
    "import sys; sys.modules['torch'] = None; sys.argv[1:] = ['lsp']\n"
    "from clampdsl.cli import main; main()",
)


@contextlib.asynccontextmanager
async def session(cwd, command=SERVER):
    """A started, initialised server (in `cwd`), shut down and exited at the end."""
    client = Client()
    await client.start_io(sys.executable, *command, cwd=str(cwd))
    initialize = types.InitializeParams(capabilities=types.ClientCapabilities())
    result = await asyncio.wait_for(client.initialize_async(initialize), TIMEOUT)
    assert result.server_info.name == "clampdsl"
    client.initialized(types.InitializedParams())
    try:
        yield client
    finally:
        await asyncio.wait_for(client.shutdown_async(None), TIMEOUT)
        client.exit(None)
        await asyncio.wait_for(client.stop(), TIMEOUT)
    assert client.returncode == 0


def opened(client: Client, path, text: str) -> str:
    uri = path.resolve().as_uri()
    item = types.TextDocumentItem(uri=uri, language_id="clamp", version=1, text=text)
    client.text_document_did_open(types.DidOpenTextDocumentParams(item))
    return uri


def at(uri: str, line: int, column: int) -> dict:
    """A request's document and position."""
    return {
        "text_document": types.TextDocumentIdentifier(uri),
        "position": types.Position(line, column),
    }


def test_diagnostics_are_validates_and_a_fix_clears_them(tmp_path):
    spec = tmp_path / "x.clamp"
    spec.write_text(SPEC)
    expected = clampdsl("validate", spec).stderr.splitlines()[0]
    wrong = types.Range(types.Position(*WRONG), types.Position(WRONG[0], WRONG[1] + 2))

    async def scenario():
        async with session(tmp_path) as client:
            uri = opened(client, spec, SPEC)
            (diagnostic,) = await client.diagnostics(uri)
            assert diagnostic.range == wrong
            assert diagnostic.severity == types.DiagnosticSeverity.Error
            message, hint = diagnostic.message.split("\nhint: ")
            assert expected == f"{spec}:{WRONG[0] + 1}:{WRONG[1] + 1}: error: {message}"
            assert hint == "did you mean L2?"
            fix = types.TextDocumentContentChangePartial(wrong, "L2")  # as an editor sends it
            document = types.VersionedTextDocumentIdentifier(uri=uri, version=2)
            client.text_document_did_change(types.DidChangeTextDocumentParams(document, [fix]))
            assert list(await client.diagnostics(uri)) == []

    asyncio.run(scenario())


def test_warnings_and_errors_in_an_included_file(tmp_path):
    """A warning (a window that opens after training) stays a warning; an error inside an
    included file is shown on the `use` line, its path resolved from the document's folder
    (the server runs elsewhere)."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "base.clamp").write_text("clampdsl 1\nmodel layers=0 heads=8\n")
    fixed = SPEC.replace("L3.H2", "L1.H2")
    late = fixed.replace("prev-token", "prev-token from step 500")
    included = fixed.replace("model layers=2 heads=8 d_model=64", 'use "lib/base.clamp"')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    async def scenario():
        async with session(elsewhere) as client:
            (warning,) = await client.diagnostics(opened(client, tmp_path / "late.clamp", late))
            assert warning.severity == types.DiagnosticSeverity.Warning
            assert warning.range == types.Range(types.Position(7, 30), types.Position(7, 43))
            assert warning.message.startswith("this window opens at step 500")
            uri = opened(client, tmp_path / "top.clamp", included)
            (error,) = await client.diagnostics(uri)
            assert error.range == types.Range(types.Position(1, 0), types.Position(1, 20))
            assert error.message.startswith("lib/base.clamp:2:14: layers=0 is out of range")
            (related,) = error.related_information
            assert related.location.uri == (tmp_path / "lib" / "base.clamp").resolve().as_uri()
            assert related.location.range.start == types.Position(1, 0)

    asyncio.run(scenario())


def test_completion_offers_the_kinds_targets_and_the_models_heads(tmp_path):
    typing = SPEC.replace("clamp L3.H2 to prev-token", "clamp L1.H2 to ")
    typing = typing.replace("heads=8", "heads=4").replace("except H3", "except H1")

    async def scenario():
        async with session(tmp_path) as client:
            uri = opened(client, tmp_path / "x.clamp", typing)
            await client.diagnostics(uri)
            complete = client.text_document_completion_async
            targets = await complete(types.CompletionParams(**at(uri, 7, 19)))
            labels = {item.label for item in targets.items}
            assert "prev-token" in labels and labels == set(kinds.targets())
            assert {item.text_edit.range.start.character for item in targets.items} == {19}
            heads = await complete(types.CompletionParams(**at(uri, 4, 16)))  # after `L2.`
            assert [item.label for item in heads.items][:5] == ["H*", "H0", "H1", "H2", "H3"]
            assert "H4" not in {item.label for item in heads.items}  # heads=4

    asyncio.run(scenario())


def test_hover_says_what_a_selector_selects(tmp_path):
    async def scenario():
        async with session(tmp_path) as client:
            uri = opened(client, tmp_path / "x.clamp", SPEC)
            await client.diagnostics(uri)
            hover = client.text_document_hover_async
            on_let = await hover(types.HoverParams(**at(uri, 4, 20)))
            assert "L2 heads 0, 1, 2, 4, 5, 6, 7 (tensor layer 1)" in on_let.contents.value
            assert on_let.range == types.Range(types.Position(4, 13), types.Position(4, 28))
            used = await hover(types.HoverParams(**at(uri, 8, 12)))  # `ablate OTHERS`
            assert used.contents.value.endswith(
                "L2 heads 0, 1, 2, 4, 5, 6, 7 (tensor layer 1) · site v"
            )
            wrong = await hover(types.HoverParams(**at(uri, *WRONG)))
            assert "layer L3 does not exist" in wrong.contents.value
            assert await hover(types.HoverParams(**at(uri, 1, 2))) is None  # `model`

    asyncio.run(scenario())


def test_the_server_runs_without_torch(tmp_path):
    async def scenario():
        async with session(tmp_path, WITHOUT_TORCH) as client:
            uri = opened(client, tmp_path / "x.clamp", SPEC)
            (diagnostic,) = await client.diagnostics(uri)
            assert "layer L3 does not exist" in diagnostic.message
            hovered = await client.text_document_hover_async(types.HoverParams(**at(uri, 8, 12)))
            assert hovered.contents.value.endswith("· site v")

    asyncio.run(scenario())
