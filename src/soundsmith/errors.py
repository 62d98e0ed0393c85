"""Errors that soundsmith raises for bad input.

Every user-facing problem raises a subclass of :class:`SoundsmithError` whose message names the file or
value at fault and says what to do. The CLI prints such messages on one line (traceback only with --debug).
"""


class SoundsmithError(Exception):
    """Base class of every error caused by the user's input, files or configuration."""


class AudioError(SoundsmithError):
    """Unreadable, truncated, empty or invalid audio (names the file and the problem)."""


class ManifestError(SoundsmithError):
    """A malformed manifest row (names the manifest file and the row number)."""


class ConfigError(SoundsmithError):
    """An unknown key, wrong type or invalid value in a configuration."""


class ModelError(SoundsmithError):
    """A model directory that cannot be loaded, or an unknown model name."""


class TextError(SoundsmithError):
    """A prompt that cannot be encoded (empty, not text, ...)."""


class TrainingError(SoundsmithError):
    """A training run that cannot go on (e.g. losses stay non-finite after recovery)."""
