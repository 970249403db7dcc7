"""The one error type the data layer raises for bad user input."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset source that cannot be read: missing path, unknown layout, bad image or file.

    The message is one line that names the offending path (and, inside a zip or folder,
    the member) and says what was expected.
    """
