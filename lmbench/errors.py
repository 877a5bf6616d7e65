"""The one exception type that the CLI turns into a single stderr line and exit status 2."""


class LmbenchError(Exception):
    """Bad input or an unusable file: the message says what, where, and what is allowed."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, caught where the work knows what was saved: the CLI prints this message as its one line."""
