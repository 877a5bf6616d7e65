"""The one exception type that the CLI turns into a single stderr line and exit status 2, and the one way
a default that cannot work says how it adapted (a warning line on stderr, once)."""

import sys

_WARNED: set[str] = set()


def warn(message: str) -> None:
    """Write one line `lmbench: warning: MESSAGE` on stderr."""
    sys.stderr.write(f"lmbench: warning: {message}\n")
    sys.stderr.flush()


def warn_once(key: str, message: str) -> bool:
    """`warn(message)` the first time `key` is warned about in this process; False (and silence) afterwards."""
    if key in _WARNED:
        return False
    _WARNED.add(key)
    warn(message)
    return True


class LmbenchError(Exception):
    """Bad input or an unusable file: the message says what, where, and what is allowed."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, caught where the work knows what was saved: the CLI prints this message as its one line."""
