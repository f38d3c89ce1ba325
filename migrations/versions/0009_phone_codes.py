"""Phone sign-in: the one-time codes sent by text message, and the number a user proved.

`phone_codes` holds at most one code per number (a new request replaces it), as an
HMAC-SHA256 under a server key, with its expiry and the wrong tries so far (at most 5).
`users.verified_phone` is the number a code proved: phone sign-in finds the account by
it, never by the profile's `phone`, which anyone may type in. One account per number.

Revision ID: 0009_phone_codes
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0009_phone_codes"
down_revision = "0008"
branch_labels = None
depends_on = None

E164 = r"'^\+[1-9][0-9]{6,14}$'"


UPGRADE = [
    f"""
ALTER TABLE users
    ADD COLUMN verified_phone text,
    ADD CONSTRAINT uq_users_verified_phone UNIQUE (verified_phone),
    ADD CONSTRAINT ck_users_verified_phone_e164 CHECK (verified_phone ~ {E164})
""",
    f"""
CREATE TABLE phone_codes (
    phone text PRIMARY KEY,
    code_hash bytea NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CONSTRAINT ck_phone_codes_phone_e164 CHECK (phone ~ {E164}),
    CONSTRAINT ck_phone_codes_attempts_range CHECK (attempts BETWEEN 0 AND 5),
    CONSTRAINT ck_phone_codes_code_hash_length CHECK (octet_length(code_hash) = 32)
)
""",
    "CREATE INDEX ix_phone_codes_expires_at ON phone_codes (expires_at)",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE phone_codes")
    op.execute("ALTER TABLE users DROP COLUMN verified_phone")
