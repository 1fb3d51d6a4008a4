"""Errors meant for the person running the code, as opposed to bugs.

A `UserError` is raised where a setting, a file, the data or the command line
is not usable, with a message that says what to do; `main.py` and the other
entry points print such a message on one line. Every other exception is a bug
(in this package, or in an extension of it) and keeps its traceback.

The subclasses also derive from the built-in exception a caller would expect
(`ConfigError` is a `ValueError`, `MissingFileError` a `FileNotFoundError`),
so `except ValueError` keeps working for code written before they existed.
This module imports nothing: every layer of the package may raise these.
"""


class UserError(Exception):
    """Something the user can fix; the message says how. Entry points print it on one line."""


class ConfigError(UserError, ValueError):
    """A config value (or a function argument taken from one) is not usable."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or directory the run needs is not there."""


class MissingPackageError(UserError, ImportError):
    """An optional package this feature needs is not installed; the message names the pip command."""
