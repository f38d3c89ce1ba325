"""Rate limits: each limited mutation answers RATE_LIMITED with the seconds to wait; the
limits count per target (e-mail, number) and per client address; X-Forwarded-For names
the client only from a trusted proxy; two app processes share the counts through Redis;
and with Redis gone the limits hold in each process, no request failing for it.

The app processes here run the figures of infra/rate_limits.py (docs/identity.md), but
for `sign_in.ip`, lowered: reaching 30 would cost 30 argon2 checks. A client's address
is chosen per test: connections come from a fresh loopback address (127.x.y.z, all
local on Linux), or through the trusted proxy 127.0.0.2 with a fresh X-Forwarded-For.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import random
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from limits import parse_many
from pydantic import ValidationError

from infra.ids import to_global_id
from infra.rate_limits import RULES, RateLimited, RateLimits, ip_key, parse_figures
from infra.settings import Settings
from resolvers.limited import wait_message
from tests.business import PASSWORD, sign_up
from tests.conftest import GraphQLClient
from tests.processes import (
    REDIS_PREFIX,
    AppProcess,
    Apps,
    forget_keys,
    owned_redis,
    redis_client,
    running_apps,
    shared_redis,
)
from tests.test_phone_sign_in import REQUEST, SIGN_IN, new_number
from tests.ws_client import socket
from web.client_ip import client_ip

TRUSTED_PROXY = "127.0.0.2"
SIGN_IN_PER_ADDRESS = 4
SETTINGS = {
    "RATE_LIMITS": json.dumps({"sign_in.ip": f"{SIGN_IN_PER_ADDRESS}/minute;300/hour"}),
    "TRUSTED_PROXIES": TRUSTED_PROXY,
}
SIGN_IN_EMAIL = """
mutation($input: SignInInput!) {
  signIn(input: $input) {
    accessToken errors { code field message retryAfterSeconds }
  }
}"""
CREATE_BOOKING = """
mutation($input: CreateBookingInput!) {
  createBooking(input: $input) { booking { id } errors { code field message retryAfterSeconds } }
}"""


def first_figure(rule: str, key: str) -> tuple[int, int]:
    """The amount and seconds of a rule's shortest window, as the app runs it."""
    item = parse_many(RULES[rule][key])[0]
    return item.amount, item.get_expiry()


def fresh_loopback() -> str:
    """A loopback address no other test connects from."""
    while True:
        address = (
            f"127.{random.randrange(1, 255)}.{random.randrange(256)}.{random.randrange(1, 255)}"
        )
        if address != TRUSTED_PROXY:  # never 127.0.0.x: the second number is not 0
            return address


def fresh_client_address() -> str:
    return str(ipaddress.IPv4Address(random.randrange(2**24)) + (10 << 24))  # 10.x.y.z


@contextlib.asynccontextmanager
async def client(
    app: AppProcess, source: str | None = None, forwarded_for: str | None = None
) -> AsyncIterator[GraphQLClient]:
    """A client connecting from `source` (a fresh loopback address by default), sending
    `forwarded_for` as X-Forwarded-For."""
    transport = httpx.AsyncHTTPTransport(local_address=source or fresh_loopback())
    headers = {"x-forwarded-for": forwarded_for} if forwarded_for else {}
    async with httpx.AsyncClient(
        base_url=app.base_url, transport=transport, headers=headers, timeout=30
    ) as http:
        yield GraphQLClient(http)


@contextlib.asynccontextmanager
async def via_proxy(
    app: AppProcess, client_address: str | None = None
) -> AsyncIterator[GraphQLClient]:
    """A client behind the trusted proxy, at `client_address` (fresh by default)."""
    async with client(app, TRUSTED_PROXY, client_address or fresh_client_address()) as gql:
        yield gql


def error_of(payload: dict[str, Any]) -> dict[str, Any]:
    [error] = payload["errors"]
    assert isinstance(error, dict)
    return error


def assert_limited(payload: dict[str, Any], at_most: int) -> int:
    """The payload is RATE_LIMITED, waiting 1..`at_most` s, said in the message too."""
    error = error_of(payload)
    assert error["code"] == "RATE_LIMITED", payload
    seconds = error["retryAfterSeconds"]
    assert 1 <= seconds <= at_most, error
    assert error["message"] == wait_message(seconds)
    assert error["field"] is None
    return int(seconds)


def code_of(payload: dict[str, Any]) -> str:
    return str(error_of(payload)["code"])


async def request_code(gql: GraphQLClient, number: str) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(REQUEST, {"phone": number}))["requestPhoneCode"]
    return result


async def phone_sign_in(gql: GraphQLClient, number: str) -> dict[str, Any]:
    result: dict[str, Any] = (await gql.data(SIGN_IN, {"phone": number, "code": "000000"}))[
        "signInWithPhone"
    ]
    return result


async def email_sign_in(gql: GraphQLClient, email: str, password: str) -> dict[str, Any]:
    data = await gql.data(SIGN_IN_EMAIL, {"input": {"email": email, "password": password}})
    result: dict[str, Any] = data["signIn"]
    return result


def nobody() -> str:
    return f"nobody-{uuid.uuid4().hex[:10]}@example.com"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def apps(database_url: str) -> AsyncIterator[Apps]:
    async with contextlib.AsyncExitStack() as stack:
        redis_url = await stack.enter_async_context(shared_redis())
        stack.push_async_callback(forget_keys, redis_url, REDIS_PREFIX)
        yield await stack.enter_async_context(
            running_apps(database_url, count=2, redis_url=redis_url, settings=SETTINGS)
        )


# ---- each limited mutation ----------------------------------------------------------------


async def test_sign_in_per_email(apps: Apps) -> None:
    app = apps.processes[0]
    async with client(app) as gql:
        person = await sign_up(gql)
    amount, window = first_figure("sign_in", "email")
    for _ in range(amount):  # each from another address: only the e-mail counts
        async with via_proxy(app) as gql:
            wrong = await email_sign_in(gql, person.email, "not the password at all")
            assert code_of(wrong) == "INVALID_CREDENTIALS"
    async with via_proxy(app) as gql:
        # However the address is written, and the right password too.
        assert_limited(await email_sign_in(gql, person.email.upper(), PASSWORD), window)
        other = await email_sign_in(gql, nobody(), PASSWORD)
        assert code_of(other) == "INVALID_CREDENTIALS"


async def test_sign_in_per_address(apps: Apps) -> None:
    app = apps.processes[0]
    async with client(app) as gql:
        for _ in range(SIGN_IN_PER_ADDRESS):
            assert code_of(await email_sign_in(gql, nobody(), PASSWORD)) == "INVALID_CREDENTIALS"
        assert_limited(await email_sign_in(gql, nobody(), PASSWORD), 60)
    async with client(app) as elsewhere:
        assert code_of(await email_sign_in(elsewhere, nobody(), PASSWORD)) == "INVALID_CREDENTIALS"


async def test_request_phone_code_per_number_and_per_address(apps: Apps) -> None:
    app = apps.processes[0]
    number = new_number()
    async with via_proxy(app) as gql:
        assert await request_code(gql, number) == {"sent": True, "errors": []}
    _, window = first_figure("phone_code", "number")
    async with via_proxy(app) as gql:
        refused = await request_code(gql, f"{number[:3]} {number[3:]}")
        assert refused["sent"] is False
        assert_limited(refused, window)
        assert (await request_code(gql, new_number()))["sent"] is True

    amount, window = first_figure("phone_code", "ip")
    async with client(app) as gql:
        for _ in range(amount):
            assert (await request_code(gql, new_number()))["sent"] is True
        assert_limited(await request_code(gql, new_number()), window)


async def test_sign_in_with_phone_per_number_and_per_address(apps: Apps) -> None:
    app = apps.processes[0]
    number = new_number()
    amount, window = first_figure("phone_sign_in", "number")
    for _ in range(amount):
        async with via_proxy(app) as gql:
            assert code_of(await phone_sign_in(gql, number)) == "CODE_INVALID"
    async with via_proxy(app) as gql:
        assert_limited(await phone_sign_in(gql, number), window)
        assert code_of(await phone_sign_in(gql, new_number())) == "CODE_INVALID"

    amount, window = first_figure("phone_sign_in", "ip")
    async with client(app) as gql:
        for _ in range(amount):
            assert code_of(await phone_sign_in(gql, new_number())) == "CODE_INVALID"
        assert_limited(await phone_sign_in(gql, new_number()), window)


async def test_guest_bookings_per_address(apps: Apps) -> None:
    app = apps.processes[0]
    booking = {
        "serviceId": to_global_id("Service", uuid.uuid4()),
        "start": "2030-01-07T09:00:00Z",
        "guest": {"name": "Gus Guest", "email": "gus@example.com"},
    }

    async def create(gql: GraphQLClient, token: str | None = None) -> dict[str, Any]:
        input = {**booking, "idempotencyKey": uuid.uuid4().hex}
        result: dict[str, Any] = (await gql.data(CREATE_BOOKING, {"input": input}, token))[
            "createBooking"
        ]
        return result

    amount, window = first_figure("guest_booking", "ip")
    async with client(app) as gql:
        for _ in range(amount):
            assert code_of(await create(gql)) == "NOT_FOUND"  # counted, whatever the answer
        assert_limited(await create(gql), window)
        # A signed-in customer at the same address is not a guest.
        person = await sign_up(gql)
        assert code_of(await create(gql, person.token)) == "NOT_FOUND"


# ---- whose address ------------------------------------------------------------------------


async def test_forwarded_for_counts_only_from_a_trusted_proxy(apps: Apps) -> None:
    app = apps.processes[0]
    amount, window = first_figure("phone_code", "ip")
    client_address = fresh_client_address()
    async with via_proxy(app, client_address) as gql:
        for _ in range(amount):
            assert (await request_code(gql, new_number()))["sent"] is True
        assert_limited(await request_code(gql, new_number()), window)
    # What the client wrote left of it is not believed: the proxy's right-most entry is.
    async with client(app, TRUSTED_PROXY, f"{fresh_client_address()}, {client_address}") as gql:
        assert_limited(await request_code(gql, new_number()), window)
    # Another client behind the same proxy has its own count.
    async with via_proxy(app) as gql:
        assert (await request_code(gql, new_number()))["sent"] is True

    # A peer that is no trusted proxy: its header is ignored, however it changes.
    peer = fresh_loopback()
    for _ in range(amount):
        async with client(app, peer, fresh_client_address()) as gql:
            assert (await request_code(gql, new_number()))["sent"] is True
    async with client(app, peer, fresh_client_address()) as gql:
        assert_limited(await request_code(gql, new_number()), window)


RESET = """
mutation($email: String!) {
  requestPasswordReset(email: $email) { ok errors { code field message retryAfterSeconds } }
}"""


async def test_password_reset_per_email_and_per_address(apps: Apps) -> None:
    app = apps.processes[0]
    email = nobody()  # no account: the limit must not tell (it counts every address)
    amount, window = first_figure("password_reset", "email")
    for _ in range(amount):
        async with via_proxy(app) as gql:
            asked = (await gql.data(RESET, {"email": email}))["requestPasswordReset"]
            assert asked == {"ok": True, "errors": []}
    async with via_proxy(app) as gql:
        refused = (await gql.data(RESET, {"email": email.upper()}))["requestPasswordReset"]
        assert refused["ok"] is False
        assert_limited(refused, window)
    per_address, window = first_figure("password_reset", "ip")
    async with client(app) as gql:
        for _ in range(per_address):
            asked = (await gql.data(RESET, {"email": nobody()}))["requestPasswordReset"]
            assert asked["errors"] == []
        refused = (await gql.data(RESET, {"email": nobody()}))["requestPasswordReset"]
        assert_limited(refused, window)


VERIFY_AGAIN = """
mutation { requestEmailVerification { ok errors { code field message retryAfterSeconds } } }"""


async def test_verification_mails_per_person(apps: Apps) -> None:
    app = apps.processes[0]
    async with client(app) as gql:
        person = await sign_up(gql)  # its first mail went at sign-up, unlimited
        amount, window = first_figure("email_verification", "user")
        for _ in range(amount):
            asked = await gql.data(VERIFY_AGAIN, token=person.token)
            assert asked["requestEmailVerification"] == {"ok": True, "errors": []}
    async with client(app) as gql:  # from elsewhere too: the person counts
        refused = await gql.data(VERIFY_AGAIN, token=person.token)
        assert refused["requestEmailVerification"]["ok"] is False
        assert_limited(refused["requestEmailVerification"], window)


async def test_two_processes_share_the_counts(apps: Apps) -> None:
    first, second = apps.processes
    number = new_number()
    _, window = first_figure("phone_code", "number")
    async with via_proxy(first) as gql:
        assert (await request_code(gql, number))["sent"] is True
    async with via_proxy(second) as gql:
        assert_limited(await request_code(gql, number), window)

    amount, window = first_figure("phone_code", "ip")
    peer = fresh_loopback()
    for i in range(amount):
        async with client(apps.processes[i % 2], peer) as gql:
            assert (await request_code(gql, new_number()))["sent"] is True
    for app in apps.processes:
        async with client(app, peer) as gql:
            assert_limited(await request_code(gql, new_number()), window)


async def test_mutations_over_the_websocket_count_by_its_address(apps: Apps) -> None:
    app = apps.processes[1]
    amount, window = first_figure("phone_code", "ip")
    async with socket(app.base_url) as ws:  # from 127.0.0.1, which no other test uses here
        assert (await ws.init())["type"] == "connection_ack"
        answers = []
        for _ in range(amount + 1):
            await ws.subscribe(REQUEST, {"phone": new_number()})
            answers.append((await ws.data())["data"]["requestPhoneCode"])
            assert (await ws.next())["type"] == "complete"
    assert [a["sent"] for a in answers] == [True] * amount + [False]
    assert_limited(answers[-1], window)
    async with client(app, "127.0.0.1") as gql:
        assert_limited(await request_code(gql, new_number()), window)


# ---- Redis gone ---------------------------------------------------------------------------


async def test_with_redis_gone_each_process_still_limits(database_url: str) -> None:
    async with (
        owned_redis() as redis,
        running_apps(
            database_url, count=1, redis_url=redis.url, settings={"RATE_LIMITS": ""}
        ) as apps,
    ):
        [app] = apps.processes

        async def request(number: str) -> dict[str, Any]:
            async with client(app) as gql:  # a fresh address each: only the number counts
                return await request_code(gql, number)

        number = new_number()
        assert (await request(number))["sent"] is True
        assert code_of(await request(number)) == "RATE_LIMITED"
        redis.kill()
        # Counted in the process from now on: the first is let through, no more.
        for other in [new_number() for _ in range(3)]:
            started = time.monotonic()
            assert (await request(other))["sent"] is True
            assert time.monotonic() - started < 5.0
            assert code_of(await request(other)) == "RATE_LIMITED"
        log = app.log()
        assert log.count("rate limits: Redis unavailable") == 1, log  # once, not per request
        assert "Traceback" not in log, log

        # Back: counted in Redis again.
        await redis.start()
        deadline = time.monotonic() + 30
        while "rate limits: Redis is back" not in app.log():
            assert time.monotonic() < deadline, app.log()
            assert (await request(new_number()))["sent"] is True
            await asyncio.sleep(0.2)
        later = new_number()
        assert (await request(later))["sent"] is True
        assert code_of(await request(later)) == "RATE_LIMITED"
        async with contextlib.aclosing(redis_client(redis.url)) as direct:
            assert [k async for k in direct.scan_iter(match=f"{REDIS_PREFIX}limits:*")]


# ---- pieces -------------------------------------------------------------------------------


async def test_a_refused_attempt_is_not_counted() -> None:
    limits = RateLimits(parse_figures('{"phone_code.number": "2/minute;3/hour"}'))
    await limits.hit("phone_code", ip="192.0.2.1", number="+4915112345678")
    await limits.hit("phone_code", ip="192.0.2.2", number="+4915112345678")
    for _ in range(3):
        with pytest.raises(RateLimited) as refused:
            await limits.hit("phone_code", ip="192.0.2.3", number="+4915112345678")
        assert 1 <= refused.value.retry_after_seconds <= 60
    await limits.hit("phone_code", ip="192.0.2.3", number="+4915100000000")
    with pytest.raises(ValueError, match="does not count by"):
        await limits.hit("guest_booking", ip="192.0.2.1", email="x@example.com")
    await RateLimits(None).hit("phone_code", ip="192.0.2.1", number="+4915112345678")  # off


def test_figures_and_their_overrides() -> None:
    assert parse_figures("off") is None
    assert parse_figures(" OFF ") is None
    defaults = parse_figures(None)
    assert defaults is not None
    assert set(defaults) == set(RULES)
    assert [str(i) for i in defaults["phone_code"]["number"]] == ["1 per 30 second", "5 per 1 hour"]
    changed = parse_figures('{"guest_booking.ip": "100/minute"}')
    assert changed is not None
    assert [i.amount for i in changed["guest_booking"]["ip"]] == [100]
    for bad, says in (
        ("{", "JSON object"),
        ("[]", "JSON object"),
        ('{"sign_in.phone": "1/minute"}', "no rule 'sign_in.phone'"),
        ('{"sign_in.ip": 5}', "as a string"),
        ('{"sign_in.ip": "five a minute"}', "sign_in.ip"),
    ):
        with pytest.raises(ValueError, match=says):
            parse_figures(bad)


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("RATE_LIMITS", '{"nope.ip": "1/minute"}', "no rule"),
        ("TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal", "TRUSTED_PROXIES"),
        ("SMS_PROVIDER", "carrier-pigeon", "SMS_PROVIDER"),
    ],
)
def test_bad_settings_stop_start_up(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=says):
        Settings.from_env()


def test_trusted_proxies_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7 ,2001:db8::/32")
    assert [str(n) for n in Settings.from_env().trusted_proxies] == [
        "10.0.0.0/8",
        "192.0.2.7/32",
        "2001:db8::/32",
    ]
    monkeypatch.setenv("TRUSTED_PROXIES", "")
    assert Settings.from_env().trusted_proxies == ()


def test_the_client_address() -> None:
    trusted = Settings.model_validate({"TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7"}).trusted_proxies
    # The peer, when it is no trusted proxy: its header is the client's own words.
    assert client_ip("203.0.113.9", ["198.51.100.1"], trusted) == "203.0.113.9"
    assert client_ip("203.0.113.9", [], ()) == "203.0.113.9"
    # Behind trusted proxies: the right-most address that is not one of them.
    assert client_ip("10.1.2.3", ["198.51.100.1"], trusted) == "198.51.100.1"
    chain = ["6.6.6.6, 198.51.100.1", "192.0.2.7"]  # two headers, as sent
    assert client_ip("10.1.2.3", chain, trusted) == "198.51.100.1"
    # Only proxies in it: the left-most; nothing usable: the last proxy.
    assert client_ip("10.1.2.3", ["10.9.9.9, 192.0.2.7"], trusted) == "10.9.9.9"
    assert client_ip("10.1.2.3", ["unknown"], trusted) == "10.1.2.3"
    assert client_ip("10.1.2.3", [], trusted) == "10.1.2.3"
    # The ways proxies write addresses.
    assert client_ip("10.1.2.3", ["198.51.100.1:4711"], trusted) == "198.51.100.1"
    assert client_ip("10.1.2.3", ["[2001:db8::1]:443"], trusted) == "2001:db8::1"
    assert client_ip("::ffff:203.0.113.9", [], trusted) == "203.0.113.9"
    assert client_ip(None, ["198.51.100.1"], trusted) == "unknown"


def test_ipv6_clients_count_by_their_64() -> None:
    assert ip_key("2001:db8:1:2:aaaa::1") == ip_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert ip_key("2001:db8:1:3::1") != ip_key("2001:db8:1:2::1")
    assert ip_key("203.0.113.9") == "203.0.113.9"


def test_the_wait_in_words() -> None:
    assert wait_message(42) == "Too many attempts. Try again in 42 seconds."
    assert wait_message(1) == "Too many attempts. Try again in 1 second."
    assert wait_message(3000) == "Too many attempts. Try again in 50 minutes."


async def test_in_process_counts_are_swept_now_and_then() -> None:
    """limits' own sweep would start again after every hit and visit every key: with
    thousands of keys, a core kept busy. Ours runs at most every SWEEP_SECONDS (this
    also notices a new `limits` whose private hook has another name)."""
    limits = RateLimits(parse_figures(None))
    await limits.hit("guest_booking", ip="192.0.2.1")
    storage: Any = limits._local.storage
    sweep = storage.timer
    assert sweep is not None
    await sweep
    await limits.hit("guest_booking", ip="192.0.2.2")
    assert storage.timer is sweep
