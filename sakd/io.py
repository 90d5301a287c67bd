"""File output helpers for the torch side: atomic writes (re-exported) and the JSON-lines log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sakd.hardware.atomic import atomic_path, atomic_write_json, atomic_write_text

__all__ = ["append_jsonl", "atomic_path", "atomic_write_json", "atomic_write_text", "read_jsonl"]


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON record as a line, flushed to disk (a crash loses at most this line)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
