"""Webhook signatures, checked from the receiver's side with the Standard Webhooks library:
what we sign, `standardwebhooks.Webhook(secret).verify` accepts, and nothing altered."""

from __future__ import annotations

import base64
import re
import time
import uuid
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from domain.notifications.webhook_signing import (
    message_id,
    new_signing_secret,
    sign,
    signing_key,
)

BODY = b'{"type":"booking.created","data":{"id":"b1","note":"caf\xc3\xa9"}}'


def test_a_signed_delivery_verifies_with_the_library() -> None:
    secret = new_signing_secret()
    headers = sign(secret, "msg_1", int(time.time()), BODY)
    assert set(headers) == {"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"}
    assert headers["Webhook-Signature"].startswith("v1,")
    assert Webhook(secret).verify(BODY, headers) == {
        "type": "booking.created",
        "data": {"id": "b1", "note": "café"},
    }


def test_the_signature_is_the_librarys_for_the_same_input() -> None:
    secret = new_signing_secret()
    moment = datetime(2026, 11, 26, 12, 0, 30, tzinfo=UTC)
    ours = sign(secret, "msg_abc", moment, BODY)
    assert ours["Webhook-Timestamp"] == str(int(moment.timestamp()))
    assert ours["Webhook-Signature"] == Webhook(secret).sign("msg_abc", moment, BODY.decode())
    assert sign(secret, "msg_abc", int(moment.timestamp()), BODY) == ours


@pytest.mark.parametrize("change", ["body", "timestamp", "secret", "id", "stale"])
def test_an_altered_delivery_is_refused(change: str) -> None:
    secret = new_signing_secret()
    now = int(time.time())
    headers = sign(secret, "msg_1", now - 3600 if change == "stale" else now, BODY)
    body = BODY
    if change == "body":
        body = BODY.replace(b"b1", b"b2")
    elif change == "timestamp":
        headers["Webhook-Timestamp"] = str(now + 1)
    elif change == "id":
        headers["Webhook-Id"] = "msg_2"
    receiver = Webhook(new_signing_secret() if change == "secret" else secret)
    with pytest.raises(WebhookVerificationError):
        receiver.verify(body, headers)


def test_secrets_are_whsec_and_base64_of_32_random_bytes() -> None:
    secrets = {new_signing_secret() for _ in range(20)}
    assert len(secrets) == 20
    for secret in secrets:
        assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret), secret
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
        assert signing_key(secret) == base64.b64decode(secret.removeprefix("whsec_"))


def test_the_key_is_the_decoded_secret_and_unpadded_secrets_work() -> None:
    key = bytes(range(24))
    unpadded = "whsec_" + base64.b64encode(key).decode()  # 24 bytes: no padding at all
    assert signing_key(unpadded) == key
    headers = sign(unpadded, "msg_1", int(time.time()), BODY)
    Webhook(unpadded).verify(BODY, headers)
    Webhook(key).verify(BODY, headers)


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0",  # no prefix
        "whsec_",
        "whsec_not base64!",
        "whsec_" + base64.b64encode(b"short").decode(),
        "whsec_" + base64.b64encode(bytes(65)).decode(),
    ],
)
def test_malformed_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        sign(secret, "msg_1", 0, BODY)


@pytest.mark.parametrize("bad_id", ["", "msg.1", "msg 1", "msg\r\nX-Evil: 1"])
def test_message_ids_that_would_break_the_scheme_are_refused(bad_id: str) -> None:
    with pytest.raises(ValueError, match="message id"):
        sign(new_signing_secret(), bad_id, 0, BODY)


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        sign(new_signing_secret(), "msg_1", datetime(2026, 1, 1), BODY)


def test_the_message_id_is_stable_across_retries_and_distinct_otherwise() -> None:
    event, endpoint = uuid.uuid4(), uuid.uuid4()
    first = message_id(event, endpoint)
    assert re.fullmatch(r"msg_[0-9a-f]{32}", first)
    assert message_id(uuid.UUID(str(event)), uuid.UUID(str(endpoint))) == first
    assert message_id(uuid.uuid4(), endpoint) != first
    assert message_id(event, uuid.uuid4()) != first
    assert message_id(endpoint, event) != first
    assert event.hex not in first
    assert endpoint.hex not in first

    # A retry: same id, a fresh timestamp and signature, and each attempt verifies.
    secret = new_signing_secret()
    now = int(time.time())
    attempts = [sign(secret, message_id(event, endpoint), now + delay, BODY) for delay in (0, 60)]
    assert attempts[0]["Webhook-Id"] == attempts[1]["Webhook-Id"] == first
    assert attempts[0]["Webhook-Signature"] != attempts[1]["Webhook-Signature"]
    for headers in attempts:
        Webhook(secret).verify(BODY, headers)
