"""Domain exceptions. The CLI prints ``str(err)`` as one line and exits non-zero; nothing else leaks."""

from __future__ import annotations


class FaceplateError(Exception):
    """Base of every error a user can cause (bad input, missing file, unwritable output)."""

    exit_code = 2


class ConfigError(FaceplateError):
    """An option or config value is invalid."""


class RegistryError(ConfigError):
    """A plugin name is not registered."""


class PlateError(FaceplateError):
    """A plate (video or image sequence) cannot be opened or decoded."""


class WriterError(FaceplateError):
    """An output cannot be written."""


class StoreError(FaceplateError):
    """The shot store is missing, locked, corrupt or from another version."""


class FaceNotFoundError(FaceplateError):
    """No face where one was needed (a reference image, a track, a whole shot)."""

    exit_code = 3


class ModelError(FaceplateError):
    """A bundled model file is missing or cannot be loaded."""


class Interrupted(FaceplateError):
    """Ctrl-C during a stage; everything finished before it is kept."""

    exit_code = 130
