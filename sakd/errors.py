"""The base of sakd's user-facing errors: bad input that the user can fix, with a message that
names the thing and says what to do. The CLI prints these without a traceback."""


class SakdError(ValueError):
    """An input sakd cannot use (config, data set, architecture, checkpoint, ...)."""
