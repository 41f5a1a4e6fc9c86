"""The progress object a rotation reports to: does nothing unless a caller overrides it."""

from __future__ import annotations


class Progress:
    """Told how a rotation goes. Does nothing; the command's terminal progress bar overrides it."""

    def phase(self, name: str, detail: str = "") -> None:
        pass

    def start_table(self, label: str, total: int, done: int) -> None:
        pass

    def advance(self, label: str, rows: int) -> None:
        pass

    def end_table(self, label: str) -> None:
        pass
