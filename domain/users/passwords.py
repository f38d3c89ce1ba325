"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# argon2-cffi's defaults are RFC 9106's second recommendation: argon2id, 64 MiB.
_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so a miss costs as much as a hit.
_DUMMY_HASH = _hasher.hash("not a real password, only for timing")

MIN_LENGTH = 10
# The most common passwords of at least 10 characters in public breach lists.
COMMON = frozenset(
    [
        "1234567890",
        "0123456789",
        "1234567891",
        "12345678910",
        "qwertyuiop",
        "1q2w3e4r5t",
        "1qaz2wsx3edc",
        "password12",
        "password123",
        "password1234",
        "passw0rd123",
        "qwerty1234",
        "qwerty12345",
        "qwerty123456",
        "1111111111",
        "0000000000",
        "abcdefghij",
        "abc1234567",
        "iloveyou12",
        "letmein123",
        "welcome123",
        "administrator",
        "adminadmin",
        "admin12345",
        "football12",
        "baseball12",
        "superman12",
        "princess12",
        "sunshine12",
        "trustno1234",
        "1234qwerty",
        "qazwsxedc1",
        "zaq12wsxcde",
        "asdfghjkl1",
        "zxcvbnm123",
        "monkey1234",
        "dragon1234",
        "master1234",
        "michael123",
        "shadow1234",
        "changeme12",
        "changeme123",
        "password!",
        "password1!",
        "p@ssw0rd12",
        "p@ssword123",
        "welcome1234",
        "123456789a",
        "a123456789",
        "1234567890a",
        "qwertyuiop1",
        "987654321a",
        "9876543210",
        "1122334455",
        "5555555555",
        "abcd123456",
        "iloveyou123",
        "computer12",
        "internet12",
        "starwars12",
        "whatever12",
        "trustno1trustno1",
    ]
)


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_LENGTH:
        return f"Use at least {MIN_LENGTH} characters."
    if password.lower() in COMMON:
        return "This password is too common; choose another."
    return None


async def hash_password(password: str) -> str:
    # ~50 ms of CPU: off the event loop.
    return await anyio.to_thread.run_sync(_hasher.hash, password)


async def verify_password(stored_hash: str | None, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await anyio.to_thread.run_sync(verify)
