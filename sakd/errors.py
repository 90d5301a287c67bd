"""The base of sakd's user-facing errors (defined in ``sakd.hardware.errors``, the lowest layer,
so that every layer derives from the same class). The CLI prints these without a traceback."""

from sakd.hardware.errors import MissingFileError, SakdError, Terminated

__all__ = ["MissingFileError", "SakdError", "Terminated"]
