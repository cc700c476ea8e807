"""The `binconv` command line: assembles the commands defined in `binconv.commands`."""

from __future__ import annotations

import typer

from .commands.convert import convert_command
from .commands.copy import copy_command
from .commands.demo import demo_command
from .commands.evaluate import evaluate_command
from .commands.inspect import inspect_command
from .commands.storage_flags import storage_callback
from .commands.verify import verify_command

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

app.command("convert")(convert_command)
app.command("inspect")(inspect_command)
app.command("verify")(verify_command)
app.command("demo")(demo_command)
app.command("evaluate")(evaluate_command)
app.command("copy")(copy_command)
app.callback()(storage_callback)


def main() -> None:
    """Run the `binconv` console script."""
    app()


if __name__ == "__main__":
    main()
