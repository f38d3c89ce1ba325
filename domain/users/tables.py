"""Tables owned by the users domain: people, sessions, organizations and roles."""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    Table,
    Text,
    Uuid,
    func,
)

from infra.database import metadata

users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("email", Text, unique=True),  # stored lower-cased
    Column("phone", Text),  # the profile's, as typed in: proves nothing
    Column("name", Text, nullable=False),
    Column("password_hash", Text),
    Column("email_verified", Boolean, nullable=False, server_default="false"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The number a phone code proved (E.164): phone sign-in finds the account by it.
    Column("verified_phone", Text, unique=True),
    # Where the account holder reads times (their e-mails); null: the organization's.
    Column("time_zone", Text),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", LargeBinary, primary_key=True),  # sha256 of the opaque token
    Column("family_id", Uuid, nullable=False, index=True),
    # Indexed: signOutEverywhere and a password reset revoke every token of a user.
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True)),  # used once, or signed out
    Column("revoked_at", DateTime(timezone=True)),  # the family was revoked
)

server_secrets = Table(
    "server_secrets",
    metadata,
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

organizations = Table(
    "organizations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    Column("slug", Text, nullable=False, unique=True),
    Column("time_zone", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("hold_minutes", Integer, nullable=False, server_default="15"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The booking and refund policy (updateOrganizationSettings).
    Column("free_cancellation_hours", Integer, nullable=False, server_default="24"),
    Column("late_cancellation_refund_percent", Integer, nullable=False, server_default="0"),
    # How long before a confirmed booking its customer is reminded (0016; checked there).
    Column("reminder_minutes", ARRAY(Integer), nullable=False, server_default="{1440,60}"),
    CheckConstraint("hold_minutes BETWEEN 1 AND 120", name="hold_minutes_range"),
    CheckConstraint(
        "cardinality(reminder_minutes) <= 3 AND 10 <= ALL (reminder_minutes)"
        " AND 10080 >= ALL (reminder_minutes)"
        " AND array_position(reminder_minutes, NULL) IS NULL",
        name="reminder_minutes_range",
    ),
    CheckConstraint(
        "free_cancellation_hours BETWEEN 0 AND 720", name="free_cancellation_hours_range"
    ),
    CheckConstraint(
        "late_cancellation_refund_percent BETWEEN 0 AND 100",
        name="late_cancellation_refund_percent_range",
    ),
    CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_code"),
)

memberships = Table(
    "memberships",
    metadata,
    Column(
        "organization_id",
        Uuid,
        ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", Text, nullable=False),
    CheckConstraint("role in ('OWNER', 'ADMIN', 'STAFF')", name="role_known"),
)

# addStaff(email:) for someone without an account yet: the membership waits here.
invitations = Table(
    "invitations",
    metadata,
    Column(
        "organization_id",
        Uuid,
        ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("email", Text, primary_key=True),
    Column("role", Text, nullable=False),
    CheckConstraint("role in ('OWNER', 'ADMIN', 'STAFF')", name="role_known"),
)

# Single-use links sent by e-mail (verification, password reset); only their hash is
# kept. `email`: the address it was sent to, the one a verification proves.
email_tokens = Table(
    "email_tokens",
    metadata,
    Column("token_hash", LargeBinary, primary_key=True),  # sha256 of the token
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("email", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),  # used, or superseded by a newer one
    CheckConstraint("purpose in ('verify_email', 'reset_password')", name="purpose_known"),
)

# Keys that sign access tokens (JWT header `kid`): the newest signs, a retired one
# still verifies the tokens it signed until they expire. Unused when JWT_SECRET is set.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", Text, primary_key=True),
    Column("secret", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("retired_at", DateTime(timezone=True)),
)

# Third-party sign-in (domain/users/external.py): who a provider says signed in, by its
# stable subject; the account it is linked to. `email`: what the provider said last.
external_identities = Table(
    "external_identities",
    metadata,
    Column("provider", Text, primary_key=True),  # OIDC_PROVIDERS' name: google, github ...
    Column("subject", Text, primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("email", Text),
    Column("email_verified", Boolean, nullable=False, server_default="false"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_sign_in_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Third-party sign-ins under way, by the sha256 of their `state` (sign_in_states.py).
sign_in_states = Table(
    "sign_in_states",
    metadata,
    Column("state_hash", LargeBinary, primary_key=True),
    Column("provider", Text, nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("callback_uri", Text, nullable=False),
    Column("code_verifier", Text, nullable=False),
    Column("nonce", Text),
    Column("client_challenge", Text),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# One-time codes the callback hands the SPA for exchangeSignInCode, by their sha256.
sign_in_codes = Table(
    "sign_in_codes",
    metadata,
    Column("code_hash", LargeBinary, primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("client_challenge", Text),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# Phone sign-in: at most one live code per number (a new request replaces it), kept as
# HMAC-SHA256 under a server key; `attempts`: wrong codes tried so far (5 end it).
phone_codes = Table(
    "phone_codes",
    metadata,
    Column("phone", Text, primary_key=True),  # E.164
    Column("code_hash", LargeBinary, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
    CheckConstraint("attempts BETWEEN 0 AND 5", name="attempts_range"),
)
