"""The outbox: rows written in the transaction that makes a change (domain/events.py
is the one writer), read after the commit by the consumers (infra/relay.py first)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Table, Text, func
from sqlalchemy.dialects.postgresql import JSONB

from infra.database import metadata

# NOTIFY channel: wakes the consumers at commit.
CHANNEL = "outbox"
# One row per transaction, holding all its events: kind ROW_KIND, the payload the list
# of {kind, payload}.
ROW_KIND = "events"

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("payload", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("published_at", DateTime(timezone=True)),
)
