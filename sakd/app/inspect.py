"""``sakd inspect``: the summary of any network file, and the one exit-status rule for every
format: 0 — the file is valid and maps onto the IR (sakd can simulate it); 1 — the file is
readable in its format but does not map onto the IR (the reason is printed); 2 — an error (a
missing, damaged or invalid file)."""

from __future__ import annotations

from pathlib import Path

from sakd.formats import Inspection, inspect_file

EXIT_OK, EXIT_NOT_REPRESENTABLE = 0, 1


def inspect_job(path: Path) -> tuple[Inspection, int]:
    """The inspection and the exit status (module docstring)."""
    summary = inspect_file(path)
    return summary, EXIT_OK if summary.representable else EXIT_NOT_REPRESENTABLE
