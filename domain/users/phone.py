"""Sign-in by phone: a one-time code sent by text message (docs/identity.md).

- A code is 6 random digits, valid CODE_LIFETIME, MAX_ATTEMPTS wrong tries, single use;
  asking again replaces the number's code. Only its HMAC-SHA256 under a server key is
  stored: a plain hash of one of a million codes is reversed at once.
- Asking for a code never looks at accounts, so the answer and its timing are the same
  for a number with an account and one without.
- The account is found by `users.verified_phone`, the number a code proved, never by
  the profile's `phone` (anyone may type any number there). The first sign-in with a
  number makes a new account with that number verified.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from domain.errors import DomainError, ErrorCode
from domain.users.records import Session
from domain.users.server_keys import server_key
from domain.users.sessions import open_session
from domain.users.sms import SmsChannel, SmsRejected
from domain.users.tables import phone_codes, users
from domain.users.tokens import TokenSigner
from infra.clock import SYSTEM_CLOCK, Clock
from infra.ids import uuid7

CODE_LIFETIME = timedelta(minutes=5)
MAX_ATTEMPTS = 5  # as the check constraint on phone_codes.attempts has it
CODE_DIGITS = 6
# Numbers that cannot take a text message, or would cost us to text.
_NO_TEXTS = frozenset(
    {
        PhoneNumberType.PREMIUM_RATE,
        PhoneNumberType.SHARED_COST,
        PhoneNumberType.TOLL_FREE,
        PhoneNumberType.UAN,
        PhoneNumberType.VOICEMAIL,
        PhoneNumberType.PAGER,
    }
)
# Expired codes a request clears on its way (one row per number otherwise stays).
# Expired codes are kept this long (answered CODE_EXPIRED), then the sweep forgets them.
KEPT_AFTER_EXPIRY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class PhoneCodes:
    """What phone sign-in needs besides the database."""

    key: bytes  # of the codes' HMAC
    channel: SmsChannel
    default_region: str | None = None  # how to read a number without +country code
    lifetime: timedelta = CODE_LIFETIME
    clock: Clock = SYSTEM_CLOCK


async def code_key(engine: AsyncEngine, jwt_secret: str | None) -> bytes:
    """The HMAC key of the codes (domain/users/server_keys.py)."""
    return await server_key(engine, "phone_codes", b"phone sign-in codes", jwt_secret)


def normalise(text: str, default_region: str | None, field: str = "phone") -> str:
    """The number in E.164 (+14155550123), or INVALID_INPUT on `field`."""
    if default_region is None and not text.strip().startswith("+"):
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            "Enter the number with its country code, like +14155550123.",
            field,
        )
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise DomainError(ErrorCode.INVALID_INPUT, "Enter a valid phone number.", field)
    if phonenumbers.number_type(number) in _NO_TEXTS:
        raise DomainError(
            ErrorCode.INVALID_INPUT, "This number cannot receive text messages.", field
        )
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def masked(number: str) -> str:
    """The name of an account made by phone sign-in: its number with all but the last
    four digits hidden (+1 ••• 0123). The name shows where the phone number does not
    (bookings a business sees); the person changes it with updateProfile."""
    parsed = phonenumbers.parse(number, None)
    return f"+{parsed.country_code} ••• {number[-4:]}"


def _hash(codes: PhoneCodes, number: str, code: str) -> bytes:
    return hmac.new(codes.key, f"{number}:{code}".encode(), hashlib.sha256).digest()


async def issue_code(conn: AsyncConnection, codes: PhoneCodes, number: str) -> str:
    """A new code for `number` (E.164), replacing any it had; the caller sends it after
    this commits."""
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    now = codes.clock.now()
    values = {
        "code_hash": _hash(codes, number, code),
        "attempts": 0,
        "created_at": now,
        "expires_at": now + codes.lifetime,
    }
    await conn.execute(
        pg_insert(phone_codes)
        .values(phone=number, **values)
        .on_conflict_do_update(index_elements=["phone"], set_=values)
    )
    return code


async def send_code(codes: PhoneCodes, number: str, code: str) -> None:
    """Texts the code; SmsUnavailable when the provider cannot now, INVALID_INPUT when it
    will not text this number."""
    minutes = int(codes.lifetime.total_seconds() // 60)
    text = f"Your sign-in code is {code}. It expires in {minutes} minutes. Never share it."
    try:
        await codes.channel.send(number, text)
    except SmsRejected:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            "We could not send a text message to this number; check it or use another.",
            "phone",
        ) from None


def check_code_format(code: str) -> str:
    """The code without spaces, or INVALID_INPUT on `code` (no try is used up)."""
    code = "".join(code.split())
    if len(code) != CODE_DIGITS or not code.isascii() or not code.isdigit():
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"Enter the {CODE_DIGITS}-digit code we sent.", "code"
        )
    return code


async def sign_in(
    conn: AsyncConnection, signer: TokenSigner, codes: PhoneCodes, number: str, code: str
) -> Session | DomainError:
    """A session for the account of `number` (made now on its first sign-in), when
    `code` is its live code. A refusal is returned, not raised, so that the caller
    commits the wrong try it counted."""
    row = (
        await conn.execute(
            select(phone_codes.c.code_hash, phone_codes.c.attempts, phone_codes.c.expires_at)
            .where(phone_codes.c.phone == number)
            .with_for_update()
        )
    ).first()
    if row is None:
        return DomainError(
            ErrorCode.CODE_INVALID, "This code is not valid; request a new one.", "code"
        )
    if row.attempts >= MAX_ATTEMPTS:
        return DomainError(
            ErrorCode.CODE_INVALID, "Too many wrong codes; request a new code.", "code"
        )
    if row.expires_at <= codes.clock.now():
        return DomainError(
            ErrorCode.CODE_EXPIRED, "This code has expired; request a new one.", "code"
        )
    if not hmac.compare_digest(row.code_hash, _hash(codes, number, code)):
        attempts = row.attempts + 1
        await conn.execute(
            update(phone_codes).where(phone_codes.c.phone == number).values(attempts=attempts)
        )
        if attempts >= MAX_ATTEMPTS:
            message = "Wrong code, and that was the last try: request a new code."
        else:
            message = "Wrong code; check it and try again."
        return DomainError(ErrorCode.CODE_INVALID, message, "code")
    await conn.execute(delete(phone_codes).where(phone_codes.c.phone == number))
    return await open_session(conn, signer, await _account(conn, number))


async def _account(conn: AsyncConnection, number: str) -> uuid.UUID:
    """The account whose number `number` is, made now if there is none."""
    found = await conn.scalar(select(users.c.id).where(users.c.verified_phone == number))
    if found is None:
        found = await conn.scalar(
            pg_insert(users)
            .values(id=uuid7(), phone=number, verified_phone=number, name=masked(number))
            .on_conflict_do_nothing(index_elements=["verified_phone"])
            .returning(users.c.id)
        )
    if found is None:  # made meanwhile (the code's row lock makes that unlikely)
        found = await conn.scalar(select(users.c.id).where(users.c.verified_phone == number))
    assert isinstance(found, uuid.UUID)
    return found
