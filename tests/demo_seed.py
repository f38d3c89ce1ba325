"""The demo business of `make run` (commands/seed.py) on the test database."""

from __future__ import annotations

from typing import Any

from commands.seed import SLUG, Demo, seed_url
from infra.settings import Settings
from tests.conftest import GraphQLClient

FIRST_SERVICE = (
    "query($slug: String!) { organization(slug: $slug) { timeZone "
    "services(first: 1) { edges { node { id } } } } }"
)


async def seed_demo(database_url: str) -> Demo:
    """Idempotent, like commands/seed.py: every test may ask for it."""
    return await seed_url(database_url, Settings.from_env())


async def first_service(gql: GraphQLClient) -> dict[str, Any]:
    data = await gql.data(FIRST_SERVICE, {"slug": SLUG})
    node: dict[str, Any] = data["organization"]["services"]["edges"][0]["node"]
    return node
