"""User-facing errors: one readable line that names the file, line or key, and the fix.

The CLI prints ``ReinforgeError`` as a single line (no traceback unless ``--debug``) and exits 2.
"""

from __future__ import annotations


class ReinforgeError(Exception):
    """An error caused by the user's input (config, data, paths), not by a bug in reinforge."""


class ConfigError(ReinforgeError):
    """A config file or override is invalid: unknown key, wrong type, bad value."""


class DataError(ReinforgeError):
    """A dataset file is missing or malformed; the message starts with ``file:line:``."""


class StorageError(ReinforgeError):
    """The disk refused a write (full, over quota, read-only); what was saved before stays intact."""
