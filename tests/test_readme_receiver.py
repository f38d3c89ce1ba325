"""The README's ten-line webhook receiver works as written: run against a delivery
signed the way the dispatcher signs one, it returns the event; a tampered body or another
secret gets None."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from domain.notifications.webhook_signing import new_signing_secret, sign

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_receiver(secret: str) -> Callable[[bytes, dict[str, str]], Any]:
    (code,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert code.count("\n") <= 12, code
    namespace: dict[str, Any] = {}
    exec(code.replace('"whsec_..."', repr(secret)), namespace)  # our own README's code
    receive: Callable[[bytes, dict[str, str]], Any] = namespace["receive"]
    return receive


def test_the_readme_receiver_accepts_ours_and_refuses_the_rest() -> None:
    secret = new_signing_secret()
    receive = readme_receiver(secret)
    event = {"type": "booking.confirmed", "id": "evt_1", "timestamp": "now", "data": {}}
    body = json.dumps(event).encode()
    headers = {k.lower(): v for k, v in sign(secret, "msg_1", datetime.now(UTC), body).items()}
    assert receive(body, headers) == event
    assert receive(body.replace(b"confirmed", b"cancelled"), headers) is None
    assert readme_receiver(new_signing_secret())(body, headers) is None
