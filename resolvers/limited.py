"""Rate limits as a mutation answers them: a RATE_LIMITED payload error that says how
long to wait, in its message and in `retryAfterSeconds`.

    if limited := await rate_limited(info, "password_reset", email=email):
        return RequestPasswordResetPayload(ok=False, errors=limited)

The client's address counts as `ip` for every rule (docs/identity.md has the figures).
Call it before the work it guards, and before opening a transaction.
"""

from __future__ import annotations

from domain.errors import ErrorCode
from infra.rate_limits import RateLimited, ip_key
from schema.common import UserError
from schema.context import Info


def wait_message(seconds: int) -> str:
    if seconds < 120:
        return f"Too many attempts. Try again in {seconds} second{'s' if seconds != 1 else ''}."
    return f"Too many attempts. Try again in {-(-seconds // 60)} minutes."


def email_key(email: str) -> str:
    """An e-mail address as accounts store it (one count per address, however typed)."""
    return email.strip().lower()


async def rate_limited(info: Info, rule: str, **keys: str) -> list[UserError]:
    """[] when the attempt may go on (it is counted); else the error to answer with."""
    context = info.context
    try:
        await context.rate_limits.hit(rule, ip=ip_key(context.client_ip), **keys)
    except RateLimited as limited:
        seconds = limited.retry_after_seconds
        return [
            UserError(
                code=ErrorCode.RATE_LIMITED,
                field=None,
                message=wait_message(seconds),
                retry_after_seconds=seconds,
            )
        ]
    return []
