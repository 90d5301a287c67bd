"""The consoles every renderer prints to: at most 80 columns wide (a narrower terminal keeps its
width), soft-wrapped so that a piped log never breaks a line in the middle."""

from __future__ import annotations

import shutil

from rich.console import Console

#: the widest layout the renderers produce
WIDTH = 80


def console(stderr: bool = False) -> Console:
    """A console for results (stdout) or progress and notes (``stderr``)."""
    width = min(WIDTH, shutil.get_terminal_size((WIDTH, 24)).columns)
    return Console(stderr=stderr, width=width, soft_wrap=True, highlight=False)


def plain(text: object) -> str:
    """``text`` with rich markup characters escaped (names like 'fc[relu]' are not markup)."""
    from rich.markup import escape

    return escape(str(text))
