"""The mail the apps wrote (infra.mail.FileMailer, under MAIL_DIR: tests/conftest.py),
read as its recipients would: by address, the newest last, and the links in it."""

from __future__ import annotations

import os
import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

TOKEN = re.compile(r"#token=([A-Za-z0-9_-]+)")


def mail_dir() -> Path:
    return Path(os.environ["MAIL_DIR"])


def messages_to(address: str) -> list[EmailMessage]:
    """Every message to `address`, oldest first."""
    found = []
    for path in sorted(mail_dir().glob("*.eml")):
        raw = path.read_bytes()
        if address.lower().encode() not in raw.lower():
            continue  # a whole session's mail is here: parse only what may be theirs
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        if str(message["To"]).lower() == address.lower():
            found.append(message)
    return found


def last_to(address: str, subject: str) -> EmailMessage:
    """The newest message to `address` with this subject."""
    matching = [m for m in messages_to(address) if m["Subject"] == subject]
    assert matching, f"no message {subject!r} to {address}"
    return matching[-1]


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    content = body.get_content()
    assert isinstance(content, str)
    return content


def link_in(message: EmailMessage) -> str:
    """The one link of the message."""
    links = re.findall(r"https?://\S+", text_of(message))
    assert len(links) == 1, links
    return str(links[0])


def token_in(message: EmailMessage) -> str:
    found = TOKEN.search(link_in(message))
    assert found, link_in(message)
    return found.group(1)


VERIFY_SUBJECT = "Confirm your e-mail address"
RESET_SUBJECT = "Reset your password"


def verification_token(address: str) -> str:
    return token_in(last_to(address, VERIFY_SUBJECT))


def reset_token(address: str) -> str:
    return token_in(last_to(address, RESET_SUBJECT))
