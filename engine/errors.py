"""Error types of the engine. Every failure a user can cause surfaces as an HfdError
subclass whose message is one line naming the problem."""


class HfdError(Exception):
    """Base class for every error the engine raises on purpose."""


class BitstreamError(HfdError):
    """A .hfd file is truncated, corrupt, of a future version, or not a .hfd file."""


class ModelMismatchError(HfdError):
    """A .hfd file was written by other weights than the ones loaded."""


class ImageError(HfdError):
    """An input image cannot be read or is of an unsupported kind or size."""


class SettingsError(HfdError):
    """A decode or encode setting is outside its valid range."""


class WeightsError(HfdError):
    """Weights are missing, unreadable, or do not fit the architecture."""


class Cancelled(HfdError):
    """A decode was cancelled through its CancelToken."""
