"""User-facing error types.

Every exception derived from :class:`EchoBenchError` is a problem with the user's input, data or
environment (a missing weight file, a bad path, an unknown name). The CLI prints its message in one
line and exits with code 2. Any other exception is a bug and exits with code 1.
"""

from __future__ import annotations


class EchoBenchError(Exception):
    """A user, data or environment error: the CLI exits with code 2 and prints the message."""

    exit_code = 2


class UsageError(EchoBenchError):
    """An option, name or combination of options that cannot work."""


class UnknownNameError(UsageError):
    """A registry lookup for a name that is not registered."""


class DataError(EchoBenchError):
    """Input data that cannot be read or does not satisfy the format (names file/row/column)."""


class MissingWeightsError(EchoBenchError):
    """A pretrained weight file that is needed is not present (the message says how to provide it)."""


class StoreError(EchoBenchError):
    """The results database cannot be reached or written."""
