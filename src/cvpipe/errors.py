"""Errors a user can cause.

Anything raised as a :class:`CvpipeError` is the user's to fix (a bad path, a broken file, an
unknown config key). The command line prints its message as one line and exits with status 2;
every other exception is a bug in cvpipe and keeps its traceback.

Lower layers that must depend on torch only (``ops``, ``geometry``) raise ``ValueError``
instead, as torchvision does.
"""

from __future__ import annotations


class CvpipeError(Exception):
    """A problem with the user's input. The message names the file or key and what to do."""


class ConfigError(CvpipeError):
    """An unknown key, a wrong type or an impossible value in a configuration."""


class DataError(CvpipeError):
    """A dataset, image or label file that cannot be used."""


class CheckpointError(CvpipeError):
    """A checkpoint or weights file that cannot be loaded."""
