"""Sign-up, sign-in, sessions and the profile."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from domain.availability import service as availability
from domain.errors import DomainError
from domain.users import records as us
from domain.users import service as users
from resolvers.attempt import attempt
from schema.common import UserError
from schema.context import Info
from schema.identity import (
    AuthPayload,
    SignInInput,
    SignOutPayload,
    SignUpInput,
    UpdateProfileInput,
    User,
    UserPayload,
)


def _auth(session: us.Session | None, errors: list[UserError]) -> AuthPayload:
    return AuthPayload.of(session) if session else AuthPayload(errors=errors)


async def sign_up(info: Info, input: SignUpInput) -> AuthPayload:
    async def work(conn: AsyncConnection) -> us.Session:
        session = await users.sign_up(
            conn, info.context.signer, input.email, input.password, input.name, input.phone
        )
        # addStaff(email:) before this person had an account: they are that staff member.
        await availability.link_staff_user(conn, input.email, session.user.id)
        return session

    return _auth(*await attempt(info, work))


async def sign_in(info: Info, input: SignInInput) -> AuthPayload:
    async def work(conn: AsyncConnection) -> us.Session:
        return await users.sign_in(conn, info.context.signer, input.email, input.password)

    return _auth(*await attempt(info, work))


async def refresh_session(info: Info, refresh_token: str) -> AuthPayload:
    async def work(conn: AsyncConnection) -> us.Session | DomainError:
        return await users.refresh_session(conn, info.context.signer, refresh_token)

    # A refused token is answered after commit: revoking its family must persist.
    outcome, errors = await attempt(info, work)
    if isinstance(outcome, DomainError):
        return AuthPayload(errors=UserError.list_from(outcome))
    return _auth(outcome, errors)


async def sign_out(info: Info, refresh_token: str) -> SignOutPayload:
    async def work(conn: AsyncConnection) -> None:
        await users.sign_out(conn, refresh_token)

    _, errors = await attempt(info, work)
    return SignOutPayload(ok=not errors, errors=errors)


async def update_profile(info: Info, input: UpdateProfileInput) -> UserPayload:
    viewer = info.context.require_viewer()

    async def work(conn: AsyncConnection) -> us.User:
        return await users.update_profile(conn, viewer, input.name, input.phone)

    user, errors = await attempt(info, work)
    return UserPayload(user=User.of(user) if user else None, errors=errors)


async def viewer(info: Info) -> User | None:
    if info.context.viewer_id is None:
        return None
    user = await info.context.loaders.users.load(info.context.viewer_id)
    return User.of(user) if user else None
