"""The demo business of `make run` (commands/seed.py) on the test database."""

from __future__ import annotations

from typing import Any

from commands.seed import SLUG, Demo, seed_url
from infra.settings import Settings
from tests.conftest import GraphQLClient

SERVICES = (
    "query($slug: String!) { organization(slug: $slug) { timeZone "
    "services { edges { node { id name price { amount currency } } } } } }"
)


async def seed_demo(database_url: str) -> Demo:
    """Idempotent, like commands/seed.py: every test may ask for it."""
    return await seed_url(database_url, Settings.from_env())


async def services(gql: GraphQLClient) -> list[dict[str, Any]]:
    data = await gql.data(SERVICES, {"slug": SLUG})
    return [edge["node"] for edge in data["organization"]["services"]["edges"]]


async def first_service(gql: GraphQLClient) -> dict[str, Any]:
    return (await services(gql))[0]


async def paid_service(gql: GraphQLClient) -> dict[str, Any]:
    """The first with a price, as GraphiQL's example variables pick it."""
    return next(s for s in await services(gql) if s["price"])
