"""The typed context every resolver gets."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager as AsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from graphql import GraphQLError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from dataloaders import DataLoaders
from dataloaders.share import ConnectionShare
from domain.availability.live import LiveAvailability, Window
from domain.booking.service import Policy
from domain.booking.slot_lock import SlotLock
from domain.payments.service import PaymentProvider
from domain.users.phone import PhoneCodes
from domain.users.tokens import TokenSigner
from infra.mail import Mailer
from infra.rate_limits import RateLimits
from infra.settings import Settings
from schema.operation_limits import Prepared


class BookingChanges(Protocol):
    """What a subscription resolver needs of the live feeds (realtime/feeds.py): to hear
    of a booking's changes. A protocol, so this layer imports nothing above it."""

    def listen_booking(
        self, booking_id: uuid.UUID, listener: Callable[[], None]
    ) -> Callable[[], None]: ...


def unauthenticated(message: str = "Sign in to do this.") -> GraphQLError:
    return GraphQLError(message, extensions={"code": "UNAUTHENTICATED"})


def forbidden(message: str = "You may not see this.") -> GraphQLError:
    return GraphQLError(message, extensions={"code": "FORBIDDEN"})


TIMEOUT = "TIMEOUT"


def timed_out(message: str) -> GraphQLError:
    """An operation stopped before its answer: its time limit, or its client gone."""
    return GraphQLError(message, extensions={"code": TIMEOUT})


def over_time_limit(seconds: float) -> GraphQLError:
    return timed_out(f"The operation took longer than {seconds:g} s and was stopped.")


def service_unavailable(message: str) -> GraphQLError:
    """Something the operation needs (the SMS provider) cannot be reached now."""
    return GraphQLError(message, extensions={"code": "SERVICE_UNAVAILABLE"})


def invalid_argument(message: str, argument: str | None = None) -> GraphQLError:
    extensions: dict[str, object] = {"code": "INVALID_INPUT"}
    if argument:
        extensions["field"] = argument
    return GraphQLError(message, extensions=extensions)


@dataclass(slots=True)
class Context:
    request: Request | WebSocket | None  # None: a subscription event shared by many
    response: Response | None
    engine: AsyncEngine
    reader: AsyncEngine  # the engine's pool, one statement per transaction
    signer: TokenSigner
    mailer: Mailer
    settings: Settings
    share: ConnectionShare  # this request's connections, at most a few at once
    loaders: DataLoaders
    slot_lock: SlotLock
    policy: Policy
    payments: PaymentProvider
    live: LiveAvailability
    feeds: BookingChanges
    rate_limits: RateLimits
    phone_codes: PhoneCodes
    viewer_id: uuid.UUID | None = None
    # Per-address rate limits count by it: the peer, or the client a trusted proxy names
    # (web/client_ip.py); "unknown" where there is no peer (a subscription's event).
    client_ip: str = "unknown"
    auth_failed: bool = False  # a bearer token was sent but is forged or expired
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    # The live windows this request's answer was computed from (web/graphql_endpoint.py keeps the
    # answer of a query that read exactly one, until that window changes).
    windows_read: list[tuple[Window, int]] = field(default_factory=list)
    # The document web/graphql_endpoint.py checked (limits, variables): executed as it is.
    prepared: Prepared | None = None

    def require_viewer(self) -> uuid.UUID:
        if self.viewer_id is None:
            raise unauthenticated()
        return self.viewer_id

    def read(self) -> AsyncContextManager[AsyncConnection]:
        """A connection of its own for one read: sibling resolvers run concurrently,
        within the request's share of the pool."""
        return self.share.connect()

    def unit_of_work(self) -> AsyncContextManager[AsyncConnection]:
        """One transaction for one mutation."""
        return self.share.begin()


Info = StrawberryInfo[Context, None]
