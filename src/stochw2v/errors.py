"""The errors a user can cause, as one family.

Everything the user hands us (a file, a folder, a recipe value, a compression setting, a CLI
option) that we cannot use raises a `Stochw2vError` whose message names the thing and the
problem. The CLI prints those as one line and exits with 2; any other exception is a bug in
stochw2v (or torch) and keeps its traceback. The classes subclass ValueError so that callers
who catch ValueError keep working.
"""
from __future__ import annotations


class Stochw2vError(ValueError):
    """A problem with something the user gave us; the message says what and where."""


class ConfigError(Stochw2vError):
    """A bad recipe, encoder config, compression setting, policy or option value."""


class AudioError(Stochw2vError):
    """A file that cannot serve as audio input; the message names the file."""


class ManifestError(Stochw2vError):
    """A manifest that does not describe its audio; the message names the file and line."""


class ModelFileError(Stochw2vError):
    """A model, checkpoint or run folder that cannot be read as one."""


class UnsafeFileError(ModelFileError):
    """A file that could only be read by running code stored in it (a pickle): refused."""


class TrainingError(Stochw2vError):
    """A training run that cannot start or continue (folder conflicts, resume problems, NaNs)."""


class MissingFileError(Stochw2vError, FileNotFoundError):
    """A path the user named does not exist."""


__all__ = [
    "Stochw2vError", "ConfigError", "AudioError", "ManifestError", "ModelFileError", "UnsafeFileError",
    "TrainingError", "MissingFileError",
]
