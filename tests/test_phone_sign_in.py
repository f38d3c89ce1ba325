"""Sign-in by phone through the HTTP API: requestPhoneCode, then signInWithPhone with the
code the console SMS channel wrote to the server's log (the in-process server logs in
this process, so the test reads it as `make run` users do); and the Twilio adapter
against a loopback stand-in of its Messages API."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import re
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import phonenumbers
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from domain.users import service as users
from domain.users.phone import MAX_ATTEMPTS, PhoneCodes
from domain.users.sms import SmsRejected, SmsUnavailable, TwilioSms
from infra.clock import ManualClock
from infra.settings import Settings
from tests.business import PASSWORD, SIGN_UP
from tests.conftest import GraphQLClient, Server
from tests.stripe_standin import serving

REQUEST = """
mutation($phone: String!) {
  requestPhoneCode(phone: $phone) { sent errors { code field message retryAfterSeconds } }
}"""
SIGN_IN = """
mutation($phone: String!, $code: String!) {
  signInWithPhone(phone: $phone, code: $code) {
    accessToken refreshToken accessTokenExpiresAt
    user { id email phone name emailVerified }
    errors { code field message retryAfterSeconds }
  }
}"""
VIEWER = "{ viewer { id phone name } }"
SENT = re.compile(r"SMS to (\+\d+) .*code is (\d{6})")


def new_number() -> str:
    """A valid German mobile number no other test uses."""
    while True:
        number = f"+49151{random.randrange(10**8):08d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(number)):
            return number


@pytest.fixture
def sms_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="domain.users.sms")
    return caplog


def sent_codes(log: pytest.LogCaptureFixture, number: str) -> list[str]:
    """The codes the console channel logged for `number`, oldest first."""
    found = (SENT.search(record.getMessage()) for record in log.records)
    return [m.group(2) for m in found if m is not None and m.group(1) == number]


async def request_code(gql: GraphQLClient, phone: str) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(REQUEST, {"phone": phone}))["requestPhoneCode"]
    return result


async def sign_in(gql: GraphQLClient, phone: str, code: str) -> dict[str, Any]:
    data = await gql.data(SIGN_IN, {"phone": phone, "code": code})
    result: dict[str, Any] = data["signInWithPhone"]
    return result


async def code_for(
    gql: GraphQLClient, log: pytest.LogCaptureFixture, phone: str, sent_to: str | None = None
) -> str:
    """Requests a code for `phone`: the one the server sent (to `sent_to`, the E.164
    form, when `phone` is written otherwise)."""
    assert await request_code(gql, phone) == {"sent": True, "errors": []}
    return sent_codes(log, sent_to or phone)[-1]


def codes_of(payload: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(e["code"], e["field"]) for e in payload["errors"]]


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


@contextlib.contextmanager
def phone_codes_changed(server: Server, **changes: Any) -> Iterator[PhoneCodes]:
    """The in-process server's phone sign-in with `changes` (clock, channel...), for
    the test's duration."""
    original: PhoneCodes = server.app_state.phone_codes
    server.app_state.phone_codes = dataclasses.replace(original, **changes)
    try:
        yield server.app_state.phone_codes
    finally:
        server.app_state.phone_codes = original


async def test_first_sign_in_makes_the_account_and_the_next_ones_use_it(
    gql: GraphQLClient, sms_log: pytest.LogCaptureFixture
) -> None:
    number = new_number()
    first = await sign_in(gql, number, await code_for(gql, sms_log, number))
    assert first["errors"] == []
    assert first["accessToken"]
    assert first["refreshToken"]
    user = first["user"]
    # No e-mail; the name hides all but the last four digits (updateProfile changes it).
    assert user["email"] is None
    assert user["emailVerified"] is False
    assert user["phone"] == number
    assert user["name"] == f"+49 ••• {number[-4:]}"
    viewer = (await gql.data(VIEWER, token=first["accessToken"]))["viewer"]
    assert viewer["id"] == user["id"]

    # Written another way, the same number: the same account.
    spaced = f"{number[:3]} {number[3:6]} {number[6:]}"
    again = await sign_in(gql, spaced, await code_for(gql, sms_log, spaced, number))
    assert again["errors"] == []
    assert again["user"]["id"] == user["id"]
    assert again["refreshToken"] != first["refreshToken"]


async def test_a_code_is_single_use(gql: GraphQLClient, sms_log: pytest.LogCaptureFixture) -> None:
    number = new_number()
    code = await code_for(gql, sms_log, number)
    assert (await sign_in(gql, number, code))["errors"] == []
    reused = await sign_in(gql, number, code)
    assert reused["accessToken"] is None
    assert reused["user"] is None
    assert codes_of(reused) == [("CODE_INVALID", "code")]


async def test_a_new_request_replaces_the_code(
    gql: GraphQLClient, sms_log: pytest.LogCaptureFixture
) -> None:
    number = new_number()
    old = await code_for(gql, sms_log, number)
    new = await code_for(gql, sms_log, number)
    if old != new:  # one chance in a million that they are the same
        assert codes_of(await sign_in(gql, number, old)) == [("CODE_INVALID", "code")]
    assert (await sign_in(gql, number, new))["errors"] == []


async def test_five_wrong_codes_end_it(
    gql: GraphQLClient, sms_log: pytest.LogCaptureFixture
) -> None:
    number = new_number()
    code = await code_for(gql, sms_log, number)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        refused = await sign_in(gql, number, wrong(code))
        assert codes_of(refused) == [("CODE_INVALID", "code")], attempt
        if attempt == MAX_ATTEMPTS:
            assert "request a new code" in refused["errors"][0]["message"]
    # Dead now, the right code included, and the answer says what to do.
    dead = await sign_in(gql, number, code)
    assert codes_of(dead) == [("CODE_INVALID", "code")]
    assert "request a new code" in dead["errors"][0]["message"]
    # A new code works.
    assert (await sign_in(gql, number, await code_for(gql, sms_log, number)))["errors"] == []


async def test_a_malformed_code_is_invalid_input_and_uses_no_try(
    gql: GraphQLClient, sms_log: pytest.LogCaptureFixture
) -> None:
    number = new_number()
    code = await code_for(gql, sms_log, number)
    for _ in range(MAX_ATTEMPTS + 1):
        assert codes_of(await sign_in(gql, number, "12a4")) == [("INVALID_INPUT", "code")]
    both = await sign_in(gql, "12", "")
    assert codes_of(both) == [("INVALID_INPUT", "phone"), ("INVALID_INPUT", "code")]
    assert (await sign_in(gql, number, f" {code[:3]} {code[3:]} "))["errors"] == []


async def test_a_code_expires_after_five_minutes(
    server: Server, gql: GraphQLClient, sms_log: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    with phone_codes_changed(server, clock=clock):
        late, in_time = new_number(), new_number()
        late_code = await code_for(gql, sms_log, late)
        in_time_code = await code_for(gql, sms_log, in_time)
        clock.advance(timedelta(minutes=5) - timedelta(seconds=1))
        assert (await sign_in(gql, in_time, in_time_code))["errors"] == []
        clock.advance(timedelta(seconds=1))
        expired = await sign_in(gql, late, late_code)
        assert codes_of(expired) == [("CODE_EXPIRED", "code")]
        assert expired["accessToken"] is None


async def test_codes_are_forgotten_a_day_after_they_expired(
    server: Server, gql: GraphQLClient, sms_log: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    with phone_codes_changed(server, clock=clock):
        number = new_number()
        code = await code_for(gql, sms_log, number)
        clock.advance(timedelta(minutes=5))
        engine = server.app_state.engine
        await users.forget_expired(engine, clock.now() + timedelta(hours=23))
        kept = await sign_in(gql, number, code)
        assert codes_of(kept) == [("CODE_EXPIRED", "code")]  # still known: expired
        await users.forget_expired(engine, clock.now() + timedelta(days=1, seconds=1))
        forgotten = await sign_in(gql, number, code)
        assert codes_of(forgotten) == [("CODE_INVALID", "code")]


async def test_numbers_are_checked_and_read_in_the_default_region(
    server: Server, gql: GraphQLClient, sms_log: pytest.LogCaptureFixture
) -> None:
    for bad in ("0151 23456789", "+49 151", "+1 900 555 0100", "call me", ""):
        refused = await request_code(gql, bad)
        assert refused["sent"] is False, bad
        assert codes_of(refused) == [("INVALID_INPUT", "phone")], bad
    # Without DEFAULT_PHONE_REGION a national number says how to write it.
    refused = await request_code(gql, "0151 23456789")
    assert "+14155550123" in refused["errors"][0]["message"]
    number = new_number()
    national = "0" + number[3:]
    with phone_codes_changed(server, default_region="DE"):
        code = await code_for(gql, sms_log, national, number)
        signed_in = await sign_in(gql, national, code)
    assert signed_in["errors"] == []
    assert signed_in["user"]["phone"] == number
    assert sent_codes(sms_log, number) == [code]  # texted to the E.164 form


async def test_the_answer_is_the_same_for_a_number_with_an_account_and_one_without(
    server: Server, gql: GraphQLClient, sms_log: pytest.LogCaptureFixture
) -> None:
    known, unknown = new_number(), new_number()
    assert (await sign_in(gql, known, await code_for(gql, sms_log, known)))["errors"] == []

    async def asked(number: str) -> tuple[dict[str, Any], list[str]]:
        server.counter.start()
        try:
            body = await gql.raw(REQUEST, {"phone": number})
        finally:
            server.counter.stop()
        return body, server.counter.statements

    known_answer, known_statements = await asked(known)
    unknown_answer, unknown_statements = await asked(unknown)
    assert (
        known_answer
        == unknown_answer
        == {"data": {"requestPhoneCode": {"sent": True, "errors": []}}}
    )
    # The same work in the database: no account is looked up.
    assert known_statements == unknown_statements
    assert not any("users" in statement for statement in known_statements)
    # A wrong code: the same refusal.
    for number in (known, unknown):
        code = sent_codes(sms_log, number)[-1]
        assert codes_of(await sign_in(gql, number, wrong(code))) == [("CODE_INVALID", "code")]


async def test_a_profile_phone_does_not_sign_anyone_in(
    gql: GraphQLClient, sms_log: pytest.LogCaptureFixture
) -> None:
    """A number typed into a profile proves nothing: phone sign-in with it makes an
    account of its own rather than entering the one whose profile names it."""
    number = new_number()
    email = f"profile-{random.randrange(10**9)}@example.com"
    signed_up = await gql.data(
        SIGN_UP, {"input": {"email": email, "password": PASSWORD, "name": "P", "phone": number}}
    )
    assert signed_up["signUp"]["errors"] == []
    by_email = signed_up["signUp"]["user"]["id"]
    by_phone = await sign_in(gql, number, await code_for(gql, sms_log, number))
    assert by_phone["errors"] == []
    assert by_phone["user"]["id"] != by_email
    assert by_phone["user"]["email"] is None


# ---- the Twilio adapter -------------------------------------------------------------------

SID = "AC0123456789abcdef0123456789abcdef"
TOKEN = "twilio-auth-token"
SENDER = "+15005550006"


@dataclasses.dataclass
class TwilioStandIn:
    """Twilio's Messages API on loopback: each request kept, answers queued by the test
    (201 with a message resource when none is)."""

    base_url: str = ""
    received: list[dict[str, str]] = dataclasses.field(default_factory=list)
    answers: list[tuple[int, dict[str, Any]]] = dataclasses.field(default_factory=list)

    async def messages(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        self.received.append(
            {**form, "path": request.url.path, "auth": request.headers.get("authorization", "")}
        )
        if self.answers:
            status, body = self.answers.pop(0)
            return JSONResponse(body, status_code=status)
        return JSONResponse({"sid": "SM" + "0" * 32, "status": "queued"}, status_code=201)

    def texts_to(self, number: str) -> list[str]:
        return [r["Body"] for r in self.received if r.get("To") == number]


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioStandIn]:
    stand_in = TwilioStandIn()
    app = Starlette(
        routes=[
            Route("/2010-04-01/Accounts/{sid}/Messages.json", stand_in.messages, methods=["POST"])
        ]
    )
    async with serving(app) as base_url:
        stand_in.base_url = base_url
        yield stand_in


@pytest.fixture
async def twilio_sms(twilio: TwilioStandIn) -> AsyncIterator[TwilioSms]:
    channel = TwilioSms(SID, TOKEN, SENDER, twilio.base_url, call_seconds=2.0)
    try:
        yield channel
    finally:
        await channel.close()


def failing(status: int, times: int) -> list[tuple[int, dict[str, Any]]]:
    return [(status, {"code": 20500, "message": "Internal error", "status": status})] * times


async def test_twilio_posts_the_message_with_basic_auth(
    twilio: TwilioStandIn, twilio_sms: TwilioSms
) -> None:
    await twilio_sms.send("+4915112345678", "hello")
    [sent] = twilio.received
    assert sent["path"] == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert (sent["To"], sent["From"], sent["Body"]) == ("+4915112345678", SENDER, "hello")
    assert sent["auth"].startswith("Basic ")


async def test_twilio_retries_a_server_error_then_gives_up(
    twilio: TwilioStandIn, twilio_sms: TwilioSms
) -> None:
    twilio.answers = failing(500, 1)
    await twilio_sms.send("+4915112345678", "once more")  # the retry went through
    assert len(twilio.received) == 2
    twilio.answers = failing(503, 3)
    with pytest.raises(SmsUnavailable):
        await twilio_sms.send("+4915112345678", "never")
    assert len(twilio.received) == 5


async def test_twilio_refusals(twilio: TwilioStandIn, twilio_sms: TwilioSms) -> None:
    twilio.answers = [(400, {"code": 21614, "message": "'To' number is not a valid mobile"})]
    with pytest.raises(SmsRejected, match="21614"):
        await twilio_sms.send("+4915112345678", "no")
    twilio.answers = [(401, {"code": 20003, "message": "Authenticate"})]
    with pytest.raises(SmsUnavailable):  # our credentials: not the user's to fix
        await twilio_sms.send("+4915112345678", "no")
    assert len(twilio.received) == 2  # neither retried


async def test_sign_in_with_a_code_texted_through_twilio(
    server: Server, gql: GraphQLClient, twilio: TwilioStandIn, twilio_sms: TwilioSms
) -> None:
    number = new_number()
    with phone_codes_changed(server, channel=twilio_sms):
        assert await request_code(gql, number) == {"sent": True, "errors": []}
        [text] = twilio.texts_to(number)
        code = re.findall(r"\d{6}", text)[0]
        assert (await sign_in(gql, number, code))["errors"] == []

        # The provider refuses the number: the user is told to check it.
        twilio.answers = [(400, {"code": 21211, "message": "Invalid 'To' Phone Number"})]
        refused = await request_code(gql, number)
        assert refused["sent"] is False
        assert codes_of(refused) == [("INVALID_INPUT", "phone")]

        # The provider is down: an honest error, top-level (no error code fits, and the
        # user can only try again later), as when the database is away.
        twilio.answers = failing(500, 3)
        body = await gql.raw(REQUEST, {"phone": number})
        assert body["data"] is None
        [error] = body["errors"]
        assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
        assert "try again" in error["message"]


def test_twilio_needs_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in Settings.variables():
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("SMS_PROVIDER", "twilio")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", SID)
    with pytest.raises(ValidationError, match="TWILIO_AUTH_TOKEN, SMS_FROM"):
        Settings.from_env()
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("SMS_FROM", SENDER)
    monkeypatch.setenv("DEFAULT_PHONE_REGION", "de")
    settings = Settings.from_env()
    assert settings.default_phone_region == "DE"
    assert TOKEN not in repr(settings)
    monkeypatch.setenv("DEFAULT_PHONE_REGION", "XX")
    with pytest.raises(ValidationError, match="DEFAULT_PHONE_REGION"):
        Settings.from_env()
