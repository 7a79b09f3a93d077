"""Domain errors raised by the catalogue; the HTTP layer turns them into problem details."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a caller can act on."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    """The named thing does not exist (or the caller may not know that it does)."""


class AlreadyExists(DomainError):
    """A thing with that identity exists already."""


class Invalid(DomainError):
    """The input breaks a rule; ``errors`` names each field at fault."""

    def __init__(
        self,
        detail: str,
        errors: list[dict[str, object]] | None = None,
        **extra: object,
    ) -> None:
        super().__init__(detail)
        self.errors = errors or []
        self.extra = extra


class Forbidden(DomainError):
    """The caller is known but may not do this."""


class Conflict(DomainError):
    """The thing is in a state that does not allow this."""


class ServiceUnavailable(RuntimeError):
    """A service the broker needs (database, Redis) does not answer; says which setting."""
