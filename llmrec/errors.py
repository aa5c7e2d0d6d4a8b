"""The one error type for bad user input: it names the file, the line or record, and the field."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad input data or configuration, reported so the user can find and fix it."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        where: str | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.where = where
        self.field = field
        self.reason = message
        parts = [p for p in (self.path, where, f"field '{field}'" if field else None) if p]
        super().__init__(f"{': '.join(parts)}: {message}" if parts else message)
