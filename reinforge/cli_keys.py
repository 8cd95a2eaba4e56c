"""``reinforge keys create|list|revoke``: the commands' options; ``cli.py`` registers them (with its
one-line user errors) and ``serve/command.py`` does the work."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DbOpt = Annotated[str | None, typer.Option(help="Database URL (default: SQLite under --data-dir).")]
DataDirOpt = Annotated[Path, typer.Option(help="The server's data directory (as given to serve).")]


def keys_create(
    name: Annotated[str, typer.Option(help="A label for the key.")],
    expires_in: Annotated[
        str | None, typer.Option(help="Lifetime, e.g. 30d, 12h, 45m or 90s (default: no expiry).")
    ] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Admin scope: sees every key's jobs.")] = False,
    db: DbOpt = None,
    data_dir: DataDirOpt = Path("reinforge-data"),
) -> None:
    """Create an API key; prints it as the last word."""
    from reinforge.serve.command import keys_create_command

    keys_create_command(name=name, db=db, data_dir=data_dir, expires_in=expires_in, admin=admin)


def keys_list(db: DbOpt = None, data_dir: DataDirOpt = Path("reinforge-data")) -> None:
    """List the keys (ids, names, scopes, expiry, state); the keys themselves are never stored."""
    from reinforge.serve.command import keys_list_command

    keys_list_command(db=db, data_dir=data_dir)


def keys_revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (`keys list`).")],
    db: DbOpt = None,
    data_dir: DataDirOpt = Path("reinforge-data"),
) -> None:
    """Revoke a key: requests with it get 401 at once."""
    from reinforge.serve.command import keys_revoke_command

    keys_revoke_command(key_id=key_id, db=db, data_dir=data_dir)
