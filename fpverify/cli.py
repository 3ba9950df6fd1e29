"""The one `fpverify` command. Each part contributes its subcommands through `register(app, bench)`.

Parts import their heavy dependencies inside the commands, so an edge-only install still starts.
"""

from __future__ import annotations

import importlib
import importlib.util

import typer

app = typer.Typer(no_args_is_help=True, help="fpverify: fingerprint identity verification for insurance card holders.")
bench = typer.Typer(no_args_is_help=True, help="Benchmarks: each writes DIR/results.json and a report.")
app.add_typer(bench, name="bench")

# Modules that expose register(app, bench). A part not installed (no module) is left out.
PARTS = (
    "fpverify.matcher_cli",
    "fpverify.synth_cli",
    "fpverify.edge.cli",
    "fpverify.server.cli",
    "fpverify.demo.cli",
    "fpverify.bench.sitefeed",  # spans edge and server (issue 18)
)


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _register_parts() -> None:
    for name in PARTS:
        if _installed(name):
            importlib.import_module(name).register(app, bench)


_register_parts()


def main() -> None:
    try:
        app()
    except OSError as exc:
        # What reaches here is the machine's, not a bug: a folder that cannot be made, a full disk, no
        # permission, a refused connection. Name it in one line (commands catch what they can first).
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"error: {where}{exc.strerror or exc}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
