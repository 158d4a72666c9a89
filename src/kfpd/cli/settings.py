"""Settings for the CLI's commands: the shared --config option and one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from kfpd.config import ConfigFileError, Settings

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help="YAML file of settings (keys as in `kfpd config show`; env KFPD_CONFIG)."
    ),
]


def settings_or_exit(config_file: Path | None, **given: Any) -> Settings:
    """Settings from flags/env/file, or exit 2 with the reason on one line."""
    try:
        return Settings.load(config_file, **given)
    except (ConfigFileError, ValidationError) as exc:
        typer.echo(f"kfpd: invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from None
