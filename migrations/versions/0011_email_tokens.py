"""E-mail tokens (verification, password reset) and JWT signing keys.

email_tokens: single-use links, stored as SHA-256 of the token; at most one open token
per user and purpose (a new one supersedes the older), enforced by a partial unique
index. signing_keys: the keys access tokens are signed with, by key id; they replace
the generated secret kept in server_secrets ('jwt'), which is dropped. refresh_tokens
gets an index by user.

Revision ID: 0011_email_tokens
Revises: 0010_external_identities
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0011_email_tokens"
down_revision = "0010_external_identities"
branch_labels = None
depends_on = None


# One statement per execute: asyncpg prepares each, and a prepared statement is one.
UPGRADE = [
    """
CREATE TABLE email_tokens (
    token_hash bytea PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose text NOT NULL,
    email text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at timestamptz,
    CONSTRAINT ck_email_tokens_purpose_known
        CHECK (purpose IN ('verify_email', 'reset_password')),
    CONSTRAINT ck_email_tokens_expiry_after_creation CHECK (expires_at > created_at)
)""",
    # At most one open token per user and purpose: a new one replaces it (an upsert).
    """
CREATE UNIQUE INDEX uq_email_tokens_one_open
    ON email_tokens (user_id, purpose) WHERE used_at IS NULL""",
    """
CREATE TABLE signing_keys (
    kid text PRIMARY KEY,
    secret text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz,
    CONSTRAINT ck_signing_keys_secret_length CHECK (length(secret) >= 32)
)""",
    "DELETE FROM server_secrets WHERE name = 'jwt'",
    # signOutEverywhere and a password reset revoke every refresh token of a user.
    "CREATE INDEX ix_refresh_tokens_user_id ON refresh_tokens (user_id)",
]


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    # The older code generates a new 'jwt' secret: access tokens signed before fail
    # once, and clients refresh.
    op.execute("DROP INDEX ix_refresh_tokens_user_id")
    op.execute("DROP TABLE signing_keys, email_tokens")
