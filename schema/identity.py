"""Users, memberships and the sign-in payloads."""

from __future__ import annotations

from datetime import datetime

import strawberry

from domain.users import records as us
from infra.ids import to_global_id
from schema.catalog import Organization
from schema.common import Node, Role, UserError
from schema.context import Info
from schema.notification_preferences import NotificationPreferences


@strawberry.type(name="Membership")
class Membership:
    record: strawberry.Private[us.Membership]
    role: Role  # type: ignore[valid-type]

    @strawberry.field
    async def organization(self, info: Info) -> Organization:
        org = await info.context.loaders.organizations.load(self.record.organization_id)
        assert org is not None
        return Organization.of(org)


@strawberry.type(name="User")
class User(Node):
    record: strawberry.Private[us.User]
    email: str | None
    phone: str | None = strawberry.field(description="E.164")
    name: str
    email_verified: bool
    time_zone: str | None = strawberry.field(
        description="IANA name: the zone of the times in this account's e-mails; null: the"
        " business's zone."
    )
    # Who this account is to the viewer where the resolver knows more than the viewer's
    # id says (schema/access_rules.py reads both): `own`, the account the answer's
    # recipient just proved to be theirs (a session, an e-mail link); `contact`, the
    # customer of a booking the viewer may read.
    own: strawberry.Private[bool] = False
    contact: strawberry.Private[bool] = False

    @classmethod
    def of(cls, r: us.User, *, own: bool = False, contact: bool = False) -> User:
        return cls(
            id=strawberry.ID(to_global_id("User", r.id)),
            record=r,
            email=r.email,
            phone=r.phone,
            name=r.name,
            email_verified=r.email_verified,
            time_zone=r.time_zone,
            own=own,
            contact=contact,
        )

    @strawberry.field
    async def memberships(self, info: Info) -> list[Membership]:
        found = await info.context.loaders.memberships.load(self.record.id) or []
        return [Membership(record=m, role=m.role) for m in found]

    @strawberry.field(description="The viewer's own only: reminders (booking messages always go).")  # type: ignore[untyped-decorator]
    async def notification_preferences(self, info: Info) -> NotificationPreferences:
        # Here, not at the top: the resolver's module answers with this module's types.
        from resolvers.notification_preferences import notification_preferences

        return await notification_preferences(info, self.record.id, own=self.own)


@strawberry.type
class AuthPayload:
    access_token: str | None = None
    refresh_token: str | None = None
    access_token_expires_at: datetime | None = None
    user: User | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)

    @classmethod
    def of(cls, session: us.Session) -> AuthPayload:
        return cls(
            access_token=session.access_token,
            refresh_token=session.refresh_token,
            access_token_expires_at=session.access_token_expires_at,
            user=User.of(session.user, own=True),
        )


@strawberry.type
class SignOutPayload:
    ok: bool
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class UserPayload:
    user: User | None = None
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class SignUpInput:
    email: str
    password: str
    name: str
    phone: str | None = None


@strawberry.input
class SignInInput:
    email: str
    password: str


@strawberry.input
class UpdateProfileInput:
    name: str | None = None
    phone: str | None = None
    time_zone: str | None = strawberry.field(
        default=None,
        description="IANA name (Europe/Berlin): the zone of the times in your e-mails;"
        ' "" goes back to each business\'s own zone.',
    )


@strawberry.type(
    description="ok: a new verification link is on its way (none when the address is"
    " verified already)."
)
class RequestEmailVerificationPayload:
    ok: bool
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(
    description="ok: the request was taken. The answer is the same whether or not an"
    " account has this address; only an account's owner gets a message."
)
class RequestPasswordResetPayload:
    ok: bool
    errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type(
    description="sent: a code is on its way to the number. The answer is the same whether"
    " or not an account has this number."
)
class RequestPhoneCodePayload:
    sent: bool
    errors: list[UserError] = strawberry.field(default_factory=list)
