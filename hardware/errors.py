"""The root of every error sakd reports to a user: bad input the user can fix (a config, a data
set, a checkpoint, a network file, an option), with a message that names the thing and says what
to do. The CLI prints one line ``error: ...`` and exits with status 2; any other exception is a
bug in sakd and shows its traceback.

It lives in ``sakd.hardware`` (the lowest layer, numpy only) so that the IR, the simulator and
the Lava bridge can derive their errors from it; ``sakd.errors`` re-exports it.
"""

from __future__ import annotations


class SakdError(ValueError):
    """An input sakd cannot use; the message names it and says what to do."""


class MissingFileError(SakdError, FileNotFoundError):
    """A file or folder the user named does not exist (a ``FileNotFoundError`` too)."""


class Terminated(BaseException):
    """SIGTERM arrived (from ``timeout``, a batch scheduler, ``kill``): raised in the main thread
    so that every ``finally`` runs — child process groups ended, temporary files removed — before
    sakd exits with status 143."""
