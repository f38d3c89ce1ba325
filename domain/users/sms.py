"""Text messages: the channel phone sign-in sends its codes through.

SMS_PROVIDER=console (the default) writes each message to the server's log, at WARNING
so that `make run` and a bare `uvicorn app:app` both show it: nothing leaves the
machine. SMS_PROVIDER=twilio posts to Twilio's Messages API (SMS_API_BASE points it
elsewhere, e.g. a loopback stand-in), each call bounded, retried with backoff and
jitter, behind a circuit breaker (infra/resilience.py). A retried call may send the
same message twice; a second copy of one code is harmless.
"""

from __future__ import annotations

import logging
from typing import Protocol

import httpx

from infra.resilience import Breaker, BreakerOpen, retrying, within
from infra.settings import Settings

log = logging.getLogger(__name__)

TRIES = 3


class SmsRejected(Exception):
    """The provider refused this message for good (a number it cannot text, say)."""


class SmsUnavailable(Exception):
    """The message could not be sent now (provider down or misconfigured); maybe later."""


class SmsChannel(Protocol):
    name: str

    async def send(self, to: str, text: str) -> None:
        """Sends `text` to `to` (E.164), or raises SmsRejected or SmsUnavailable."""

    async def close(self) -> None: ...


class ConsoleSms:
    """Development: the message goes to the log, for whoever runs the server to read."""

    name = "console"

    async def send(self, to: str, text: str) -> None:
        log.warning("SMS to %s (not sent: SMS_PROVIDER is console): %s", to, text)

    async def close(self) -> None:
        pass


class _ProviderFault(Exception):
    """A 5xx or 429 answer: the provider is (briefly) unable, a retry may do."""


_UNAVAILABLE = (httpx.TransportError, TimeoutError, _ProviderFault)


class TwilioSms:
    """Twilio's Messages API: POST /2010-04-01/Accounts/{sid}/Messages.json, form
    fields To, From, Body, HTTP basic auth with the account SID and auth token."""

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        sender: str,
        api_base: str = "https://api.twilio.com",
        call_seconds: float = 3.0,
        breaker: Breaker | None = None,
    ) -> None:
        self.sender = sender
        self.call_seconds = call_seconds
        self._path = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._http = httpx.AsyncClient(
            base_url=api_base.rstrip("/"), auth=(account_sid, auth_token), timeout=call_seconds
        )
        self.breaker = breaker or Breaker(
            "SMS provider", fail_max=5, reset_timeout=30.0, failures=_UNAVAILABLE
        )

    async def send(self, to: str, text: str) -> None:
        try:
            async for attempt in retrying(on=_UNAVAILABLE, attempts=TRIES, name="SMS send"):
                with attempt:
                    async with self.breaker, within(self.call_seconds):
                        answer = await self._http.post(
                            self._path, data={"To": to, "From": self.sender, "Body": text}
                        )
                        if answer.status_code == 429 or answer.status_code >= 500:
                            raise _ProviderFault(f"HTTP {answer.status_code}")
        except (*_UNAVAILABLE, BreakerOpen) as error:
            log.warning("SMS to %s not sent: %s", to, _describe(error))
            raise SmsUnavailable(_describe(error)) from error
        if answer.status_code in (401, 403):
            # Our credentials, not the number: the operator must act.
            log.error("SMS provider refused our credentials: HTTP %d", answer.status_code)
            raise SmsUnavailable(f"HTTP {answer.status_code}")
        if answer.is_error:
            log.warning("SMS to %s refused: HTTP %d %s", to, answer.status_code, _reason(answer))
            raise SmsRejected(_reason(answer))

    async def close(self) -> None:
        await self._http.aclose()


def _reason(answer: httpx.Response) -> str:
    """Twilio's error message ({"code": 21211, "message": "..."}), or the status."""
    try:
        body = answer.json()
    except ValueError:
        return f"HTTP {answer.status_code}"
    if isinstance(body, dict) and body.get("message"):
        return f"{body.get('code', '')} {body['message']}".strip()
    return f"HTTP {answer.status_code}"


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def channel_from_settings(settings: Settings) -> SmsChannel:
    if settings.sms_provider == "twilio":
        # Settings refuse twilio without them.
        sid, token, sender = (
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.sms_from,
        )
        assert sid is not None
        assert token is not None
        assert sender is not None
        return TwilioSms(
            sid,
            token,
            sender,
            settings.sms_api_base,
            settings.sms_timeout_seconds,
        )
    return ConsoleSms()
