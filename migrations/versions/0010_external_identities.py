"""Third-party sign-in: external identities, sign-ins under way, one-time codes.

external_identities: a provider's subject, unique per provider, linked to one account.
sign_in_states: what the callback needs to finish a sign-in (PKCE verifier, nonce, the
SPA's page), by the sha256 of its `state`; taken once, good for 10 minutes.
sign_in_codes: the one-time codes handed to the SPA, by their sha256; 60 seconds.

Revision ID: 0010_external_identities
Revises: 0009_phone_codes
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0010_external_identities"
down_revision = "0009_phone_codes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
CREATE TABLE external_identities (
    provider text NOT NULL CHECK (provider ~ '^[a-z][a-z0-9]{0,31}$'),
    subject text NOT NULL CHECK (subject <> ''),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email text,
    email_verified boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_sign_in_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, subject)
)"""
    )
    op.execute("CREATE INDEX external_identities_user ON external_identities (user_id)")
    op.execute(
        """
CREATE TABLE sign_in_states (
    state_hash bytea PRIMARY KEY,
    provider text NOT NULL,
    redirect_uri text NOT NULL,
    callback_uri text NOT NULL,
    code_verifier text NOT NULL,
    nonce text,
    client_challenge text,
    expires_at timestamptz NOT NULL
)"""
    )
    op.execute("CREATE INDEX sign_in_states_expiry ON sign_in_states (expires_at)")
    op.execute(
        """
CREATE TABLE sign_in_codes (
    code_hash bytea PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_challenge text,
    expires_at timestamptz NOT NULL
)"""
    )
    op.execute("CREATE INDEX sign_in_codes_expiry ON sign_in_codes (expires_at)")


def downgrade() -> None:
    op.execute("DROP TABLE sign_in_codes")
    op.execute("DROP TABLE sign_in_states")
    op.execute("DROP TABLE external_identities")
