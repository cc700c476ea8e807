"""The `binconv` command line: assembles the commands defined in `binconv.commands`."""

from __future__ import annotations

import typer

from .commands.export import export
from .commands.pairs import pairs

app = typer.Typer(
    name="binconv",
    help=(
        "Convert legacy face-verification .bin files (lfw, cfp_fp, agedb_30, ...) into "
        "WebDataset pair shards, and evaluate face-embedding models on them."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command(name="pairs")(pairs)
app.command(name="export")(export)


def main() -> None:
    """Run the `binconv` console script."""
    app()


if __name__ == "__main__":
    main()
