"""Sign-up, sign-in, sessions, the profile, e-mail verification and password reset."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncConnection

from domain.availability import service as availability
from domain.errors import DomainError
from domain.notifications import service as notifications
from domain.users import external
from domain.users import phone as phones
from domain.users import records as us
from domain.users import service as users
from domain.users.letters import Letterhead
from domain.users.sms import SmsUnavailable
from resolvers.attempt import attempt
from resolvers.limited import email_key, rate_limited
from schema.common import UserError
from schema.context import Info, service_unavailable
from schema.identity import (
    AuthPayload,
    RequestEmailVerificationPayload,
    RequestPasswordResetPayload,
    RequestPhoneCodePayload,
    SignInInput,
    SignOutPayload,
    SignUpInput,
    UpdateProfileInput,
    User,
    UserPayload,
)


def _auth(session: us.Session | None, errors: list[UserError]) -> AuthPayload:
    return AuthPayload.of(session) if session else AuthPayload(errors=errors)


def _letterhead(info: Info) -> Letterhead:
    settings = info.context.settings
    return Letterhead(app_url=settings.app_url, sender=settings.mail_from)


async def _send(info: Info, letter: uuid.UUID | None) -> None:
    """A link the answer says is on its way: sent now, once its token has committed
    (queued with it, so the dispatcher retries it if the mail server is down)."""
    await notifications.send_now(info.context.engine, info.context.mailer, letter)


async def _claim(conn: AsyncConnection, user: us.User) -> us.User:
    """A verified address: the staff members addStaff(email:) named by it are this user
    (its invitations' memberships the users domain gave already)."""
    if user.email is not None:
        await availability.link_staff_user(conn, user.email, user.id)
    return user


async def sign_up(info: Info, input: SignUpInput) -> AuthPayload:
    async def work(conn: AsyncConnection) -> tuple[us.Session, uuid.UUID | None]:
        session = await users.sign_up(
            conn, info.context.signer, input.email, input.password, input.name, input.phone
        )
        mail = await users.request_email_verification(conn, session.user.id, _letterhead(info))
        return session, await notifications.queue_letter(conn, mail)

    outcome, errors = await attempt(info, work)
    if outcome is None:
        return AuthPayload(errors=errors)
    session, letter = outcome
    await _send(info, letter)
    return AuthPayload.of(session)


async def sign_in(info: Info, input: SignInInput) -> AuthPayload:
    if limited := await rate_limited(info, "sign_in", email=email_key(input.email)):
        return AuthPayload(errors=limited)

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
        return await users.update_profile(conn, viewer, input.name, input.phone, input.time_zone)

    user, errors = await attempt(info, work)
    return UserPayload(user=User.of(user) if user else None, errors=errors)


async def viewer(info: Info) -> User | None:
    if info.context.viewer_id is None:
        return None
    user = await info.context.loaders.users.load(info.context.viewer_id)
    return User.of(user) if user else None


async def request_email_verification(info: Info) -> RequestEmailVerificationPayload:
    viewer = info.context.require_viewer()
    if limited := await rate_limited(info, "email_verification", user=str(viewer)):
        return RequestEmailVerificationPayload(ok=False, errors=limited)

    async def work(conn: AsyncConnection) -> uuid.UUID | None:
        mail = await users.request_email_verification(conn, viewer, _letterhead(info))
        return await notifications.queue_letter(conn, mail)

    letter, errors = await attempt(info, work)
    await _send(info, letter)
    return RequestEmailVerificationPayload(ok=not errors, errors=errors)


async def verify_email(info: Info, token: str) -> UserPayload:
    async def work(conn: AsyncConnection) -> us.User:
        return await _claim(conn, await users.verify_email(conn, token))

    user, errors = await attempt(info, work)
    # The link reached the address's owner: the account is theirs to see, signed in or not.
    return UserPayload(user=User.of(user, own=True) if user else None, errors=errors)


async def request_password_reset(info: Info, email: str) -> RequestPasswordResetPayload:
    if limited := await rate_limited(info, "password_reset", email=email_key(email)):
        return RequestPasswordResetPayload(ok=False, errors=limited)

    async def work(conn: AsyncConnection) -> uuid.UUID | None:
        mail = await users.request_password_reset(conn, email, _letterhead(info))
        return await notifications.queue_letter(conn, mail)

    letter, errors = await attempt(info, work)
    await _send(info, letter)
    # The same answer whether or not an account has this address.
    return RequestPasswordResetPayload(ok=not errors, errors=errors)


async def reset_password(info: Info, token: str, new_password: str) -> AuthPayload:
    async def work(conn: AsyncConnection) -> us.Session:
        user = await _claim(conn, await users.reset_password(conn, token, new_password))
        return await users.open_session(conn, info.context.signer, user.id)

    return _auth(*await attempt(info, work))


async def sign_out_everywhere(info: Info) -> SignOutPayload:
    viewer = info.context.require_viewer()

    async def work(conn: AsyncConnection) -> None:
        await users.sign_out_everywhere(conn, viewer)

    _, errors = await attempt(info, work)
    return SignOutPayload(ok=not errors, errors=errors)


async def exchange_sign_in_code(
    info: Info, code: str, code_verifier: str | None = None
) -> AuthPayload:
    async def work(conn: AsyncConnection) -> us.Session | DomainError:
        return await external.exchange_code(
            conn, info.context.signer, code, code_verifier, info.context.now
        )

    # A refused code is answered after commit: it is spent either way.
    outcome, errors = await attempt(info, work)
    if isinstance(outcome, DomainError):
        return AuthPayload(errors=UserError.list_from(outcome))
    return _auth(outcome, errors)


# ---- phone sign-in (domain/users/phone.py) -----------------------------------------------


async def request_phone_code(info: Info, phone: str) -> RequestPhoneCodePayload:
    codes = info.context.phone_codes
    try:
        number = phones.normalise(phone, codes.default_region)
    except DomainError as error:
        return RequestPhoneCodePayload(sent=False, errors=UserError.list_from(error))
    if limited := await rate_limited(info, "phone_code", number=number):
        return RequestPhoneCodePayload(sent=False, errors=limited)

    async def work(conn: AsyncConnection) -> str:
        return await phones.issue_code(conn, codes, number)

    code, errors = await attempt(info, work)
    if code is None:
        return RequestPhoneCodePayload(sent=False, errors=errors)
    try:
        await phones.send_code(codes, number, code)  # once committed: the code must work
    except DomainError as error:
        return RequestPhoneCodePayload(sent=False, errors=UserError.list_from(error))
    except SmsUnavailable:
        # No error code fits, and the user can only wait: as when the database is away.
        raise service_unavailable(
            "We could not send the text message just now; try again in a minute."
        ) from None
    return RequestPhoneCodePayload(sent=True)


async def sign_in_with_phone(info: Info, phone: str, code: str) -> AuthPayload:
    codes = info.context.phone_codes
    problems = []
    try:
        number = phones.normalise(phone, codes.default_region)
    except DomainError as error:
        problems.append(error)
    try:
        code = phones.check_code_format(code)
    except DomainError as error:
        problems.append(error)
    if problems:
        return AuthPayload(errors=[e for p in problems for e in UserError.list_from(p)])
    if limited := await rate_limited(info, "phone_sign_in", number=number):
        return AuthPayload(errors=limited)

    async def work(conn: AsyncConnection) -> us.Session | DomainError:
        return await phones.sign_in(conn, info.context.signer, codes, number, code)

    # A wrong code is answered after commit: the try it used up must count.
    outcome, errors = await attempt(info, work)
    if isinstance(outcome, DomainError):
        return AuthPayload(errors=UserError.list_from(outcome))
    return _auth(outcome, errors)
