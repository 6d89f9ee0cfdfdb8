"""Exceptions that carry what a person needs to act: an HTTP status or an exit reason."""


class SerinusError(Exception):
    """Base of every error the runtime raises on purpose."""


class ModelLoadError(SerinusError):
    """The model (or bundle) could not be fetched, verified, deserialised or warmed up.

    At startup this ends the process with one line on stderr and a non-zero exit code; on reload
    the previous model keeps serving.
    """


class BundleError(ModelLoadError):
    """A bundle directory or its serinus.json / profile is missing or malformed."""


class PackError(SerinusError):
    """`serinus pack` could not build a bundle from what it was given."""


class InvalidInput(SerinusError):
    """A request the client can fix: answered with 400 (or `status`) and counted by `reason`."""

    __slots__ = ("reason", "status")

    def __init__(self, reason: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


class NotFound(SerinusError):
    """Unknown route, model or version: answered with 404."""


class Unavailable(SerinusError):
    """Not ready yet (loading) or overloaded: answered with 503."""
