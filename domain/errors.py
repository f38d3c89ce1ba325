"""Failures a user can act on. Resolvers turn these into `UserError`s."""

from __future__ import annotations

from enum import Enum


class ErrorCode(Enum):
    INVALID_INPUT = "INVALID_INPUT"
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    RATE_LIMITED = "RATE_LIMITED"
    EMAIL_TAKEN = "EMAIL_TAKEN"
    SLUG_TAKEN = "SLUG_TAKEN"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    CODE_INVALID = "CODE_INVALID"
    CODE_EXPIRED = "CODE_EXPIRED"
    TOKEN_INVALID = "TOKEN_INVALID"  # noqa: S105 - an error code, not a secret
    SLOT_UNAVAILABLE = "SLOT_UNAVAILABLE"
    OUTSIDE_BOOKING_WINDOW = "OUTSIDE_BOOKING_WINDOW"
    HOLD_EXPIRED = "HOLD_EXPIRED"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    NOT_CANCELLABLE = "NOT_CANCELLABLE"
    PAYMENT_FAILED = "PAYMENT_FAILED"
    PAYMENT_PROVIDER_UNAVAILABLE = "PAYMENT_PROVIDER_UNAVAILABLE"


class DomainError(Exception):
    """One failure: a stable code, the input field at fault, a sentence for people."""

    def __init__(self, code: ErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class InvalidInput(DomainError):
    """Collects every bad field of one input, so the client can mark them all."""

    def __init__(self, problems: list[tuple[str | None, str]]) -> None:
        field, message = problems[0]
        super().__init__(ErrorCode.INVALID_INPUT, message, field)
        self.problems = problems

    def errors(self) -> list[DomainError]:
        return [DomainError(ErrorCode.INVALID_INPUT, m, f) for f, m in self.problems]


class Problems:
    """Accumulates validation problems; `check()` raises them together."""

    def __init__(self) -> None:
        self.items: list[tuple[str | None, str]] = []

    def add(self, field: str | None, message: str) -> None:
        self.items.append((field, message))

    def check(self) -> None:
        if self.items:
            raise InvalidInput(self.items)
