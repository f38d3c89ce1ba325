"""Signing organization webhook deliveries: the Standard Webhooks scheme
(https://www.standardwebhooks.com/), as the contract names it.

Pure: plain data in, headers out; no I/O, no clock unless the caller gives none.

Each delivery is a JSON POST carrying three headers:

- ``Webhook-Id``: ``msg_`` + 32 hex digits derived from the event id and the endpoint id
  (`message_id`). It is the same on every retry of one event to one endpoint, so a
  receiver de-duplicates on it; two endpoints get two ids (each is its own delivery).
- ``Webhook-Timestamp``: unix seconds of this attempt. A retry is signed afresh with its
  own timestamp (receivers refuse timestamps more than five minutes off their clock).
- ``Webhook-Signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, keyed
  with the endpoint's signing secret.

A signing secret is ``whsec_`` + standard base64 of 32 random bytes; the HMAC key is the
decoded bytes, not the text (the Standard Webhooks convention, so the receivers' libraries
take our secret as it is shown).

The signature is computed here over the body bytes rather than through
``standardwebhooks.Webhook.sign``, which takes a ``str`` body and a ``datetime``: the few
lines below sign exactly the bytes that go on the wire, and tests/test_webhook_signing.py
proves that the library signs and verifies the same.

A receiver verifies a delivery with the library (``pip install standardwebhooks``)::

    from standardwebhooks import Webhook, WebhookVerificationError

    webhook = Webhook("whsec_...")  # the endpoint's signingSecret, as shown

    def receive(body: bytes, headers: dict[str, str]) -> dict | None:
        try:
            event = webhook.verify(body, headers)  # signature and timestamp (+-5 min)
        except WebhookVerificationError:
            return None  # answer 400: not from us, altered, or replayed late
        # headers["webhook-id"] is the same on every retry: skip ids already handled
        return event
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import uuid
from datetime import datetime

SECRET_PREFIX = "whsec_"  # noqa: S105 - a format prefix, not a secret
SECRET_BYTES = 32
MESSAGE_ID_PREFIX = "msg_"


def new_signing_secret() -> str:
    """A fresh endpoint signing secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def signing_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret: its base64-decoded part.

    Raises ValueError for anything but ``whsec_`` + base64 of 24 to 64 bytes."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook signing secret starts with {SECRET_PREFIX!r}")
    encoded = secret[len(SECRET_PREFIX) :]
    try:
        # Padding is optional in the convention; validate=True refuses stray characters.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as error:
        raise ValueError("a webhook signing secret is base64 after 'whsec_'") from error
    if not 24 <= len(key) <= 64:
        raise ValueError("a webhook signing secret holds 24 to 64 bytes")
    return key


def message_id(event_id: uuid.UUID, endpoint_id: uuid.UUID) -> str:
    """The ``Webhook-Id`` of one event's delivery to one endpoint: the same on every retry
    (receivers de-duplicate on it), different for another event or another endpoint, and
    revealing neither id."""
    digest = hashlib.sha256(b"webhook-message\0" + event_id.bytes + endpoint_id.bytes)
    return MESSAGE_ID_PREFIX + digest.hexdigest()[:32]


def unix_seconds(timestamp: datetime | int) -> int:
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None:
            raise ValueError("a webhook timestamp needs a time zone")
        return int(timestamp.timestamp())
    return timestamp


def signature(secret: str, message_id: str, timestamp: datetime | int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``."""
    signed = b"%s.%d.%s" % (message_id.encode(), unix_seconds(timestamp), body)
    digest = hmac.new(signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def sign(secret: str, message_id: str, timestamp: datetime | int, body: bytes) -> dict[str, str]:
    """The three headers of one delivery attempt of `body` (the exact bytes POSTed)."""
    if not message_id or any(c in message_id for c in ". \r\n"):
        # '.' would make "{id}.{timestamp}.{body}" ambiguous; the rest breaks headers.
        raise ValueError("a webhook message id is non-empty, without dots or spaces")
    return {
        "Webhook-Id": message_id,
        "Webhook-Timestamp": str(unix_seconds(timestamp)),
        "Webhook-Signature": signature(secret, message_id, timestamp, body),
    }
