"""Errors a user can cause. The CLI turns each into one line on stderr and exit code 1."""

from __future__ import annotations


class MoodsicError(Exception):
    """Base class: bad input or a missing resource, never a bug."""


class InputError(MoodsicError):
    """The input file, folder or manifest cannot be used."""


class VideoError(InputError):
    """The video cannot be decoded (missing, empty, corrupt, no video stream, no frame rate)."""


class LibraryError(InputError):
    """The music library cannot be loaded or is empty."""


class CueSheetError(InputError):
    """A cue sheet fails schema validation or refers to something it may not."""


class ResourceError(MoodsicError):
    """A model weight, tool or package needed for the request is missing."""


class ExpertUnavailable(ResourceError):
    """An expert asked for by name cannot run; the message says why and what to fetch."""
