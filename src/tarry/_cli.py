"""The ``tarry`` command: one function per command, one error handler.

User mistakes print one line and exit non-zero; tracebacks are for bugs.
"""

from __future__ import annotations

import asyncio
import sys

import click

from tarry import __version__
from tarry._app import DEFAULT_DATABASE_URL, Tarry
from tarry._errors import TarryError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "TARRY"})
@click.version_option(__version__, prog_name="tarry")
def cli() -> None:
    """Tarry: durable workflows whose heart is waiting."""


@cli.command()
@click.option("--database-url", envvar="TARRY_DATABASE_URL", default=DEFAULT_DATABASE_URL, show_default=True,
              show_envvar=True, help="The store: sqlite:///path.db or postgresql://...")  # fmt: skip
def migrate(database_url: str) -> None:
    """Create or upgrade the database schema."""

    async def run() -> None:
        app = Tarry("tarry", database_url=database_url)
        await app.start(worker=False)
        await app.close()

    asyncio.run(run())
    click.echo(f"migrated {database_url}")


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (TarryError, ValueError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
