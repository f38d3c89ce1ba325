"""Every field has a declared access rule (schema/access_rules.py): each root query,
mutation and subscription of the exported schema, each field of `PERSONAL`, each field
named like personal data (e-mail, phone, guest, notes, time off, payment, secrets,
customer, tokens); no rule names a field that does not exist; every rule the schema can
check is installed on its field; and the access matrix has a sample for every root field.
So a new field cannot ship without a rule, nor a rule outlive its field."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncGenerator, Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import strawberry
from graphql import (
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    build_schema,
)

from domain.availability import records as av
from domain.booking import records as bk
from domain.payments import records as pay
from domain.users import records as us
from schema.access_guards import Guarded
from schema.access_rules import (
    NODE_TYPES,
    PERSONAL,
    PERSONAL_NAME,
    ROOTS,
    RULES,
    Outcome,
    Role,
)
from schema.booking import Booking
from schema.catalog import Organization, Service, Staff, TimeOff
from schema.identity import User
from schema.payment import Payment
from schema.root import Mutation, Query, schema
from schema.subscription import Subscription
from tests.test_access_matrix import SAMPLES, takes_manage_token


def exported(sdl: str | None = None) -> GraphQLSchema:
    """The schema as `python -m schema.export` prints it (schema.graphql)."""
    return build_schema(sdl if sdl is not None else schema.as_str())


def fields(built: GraphQLSchema) -> Iterator[tuple[str, str]]:
    """(type, field) of every object type's field, introspection aside."""
    for type_ in built.type_map.values():
        if isinstance(type_, GraphQLObjectType) and not type_.name.startswith("__"):
            for name in type_.fields:
                yield type_.name, name


def unruled(built: GraphQLSchema) -> list[str]:
    """The fields that must have a rule and have none."""
    missing = []
    for type_name, name in fields(built):
        coordinate = f"{type_name}.{name}"
        must = type_name in ROOTS or coordinate in PERSONAL or PERSONAL_NAME.search(name)
        if must and coordinate not in RULES:
            missing.append(coordinate)
    return sorted(missing)


def test_every_root_and_personal_field_has_a_rule() -> None:
    assert unruled(exported()) == []


def test_personal_data_is_listed() -> None:
    named = {f"{t}.{f}" for t, f in fields(exported()) if PERSONAL_NAME.search(f)}
    roots = {c for c in named if c.partition(".")[0] in ROOTS}
    assert named - roots <= PERSONAL, sorted(named - roots - PERSONAL)


def test_no_rule_names_a_field_that_does_not_exist() -> None:
    existing = {f"{t}.{f}" for t, f in fields(exported())}
    assert sorted(set(RULES) - existing) == []
    assert sorted(PERSONAL - existing) == []


# The schema with one more field of each kind, none given a rule.
@strawberry.type(name="Query")
class MoreQuery(Query):
    @strawberry.field
    def hint(self) -> str:
        return ""


@strawberry.type(name="Mutation")
class MoreMutation(Mutation):
    @strawberry.mutation
    def forget(self) -> bool:
        return True


@strawberry.type
class Person:
    name: str
    backup_phone: str


@strawberry.type(name="Subscription")
class MoreSubscription(Subscription):
    @strawberry.subscription
    async def person_changed(self) -> AsyncGenerator[Person, None]:
        yield Person(name="", backup_phone="")


def test_a_new_field_without_a_rule_fails() -> None:
    more = strawberry.Schema(
        query=MoreQuery,
        mutation=MoreMutation,
        subscription=MoreSubscription,
        types=[Organization, Service, Staff, TimeOff, User, Booking, Payment],
        config=schema.config,
    )
    assert unruled(exported(more.as_str())) == [
        "Mutation.forget",
        "Person.backupPhone",
        "Query.hint",
        "Subscription.personChanged",
    ]


def test_node_answers_every_node_type_under_a_rule() -> None:
    built = exported()
    node = built.get_type("Node")
    assert isinstance(node, GraphQLInterfaceType)
    assert set(NODE_TYPES) == {t.name for t in built.get_implementations(node).objects}


def test_every_rule_the_schema_can_check_is_installed() -> None:
    """Object fields whose rule says who may see their object, root queries and
    subscriptions answering one object under such a rule, and every field whose rule
    turns the anonymous away are guarded; nothing else is."""
    served = schema._schema
    for coordinate, rule in RULES.items():
        type_name, _, name = coordinate.partition(".")
        parent = served.get_type(type_name)
        assert isinstance(parent, GraphQLObjectType)
        resolve = parent.fields[name].resolve
        checks = rule.needs_viewer or (rule.allows is not None and type_name != "Mutation")
        if checks:
            assert isinstance(resolve, Guarded), coordinate
            assert resolve.rule is rule, coordinate
        else:
            assert not isinstance(resolve, Guarded), coordinate


def test_a_guest_is_anonymous_where_no_manage_token_is_taken() -> None:
    """A guest proves nothing without their token: wherever a root field takes none, its
    rule treats them as anonymous."""
    served = schema._schema
    for coordinate, rule in RULES.items():
        type_name, _, name = coordinate.partition(".")
        if type_name not in ROOTS:
            continue
        parent = served.get_type(type_name)
        assert isinstance(parent, GraphQLObjectType)
        if not takes_manage_token(parent.fields[name]):
            assert rule.expect[Role.GUEST] is rule.expect[Role.ANONYMOUS], coordinate


def test_every_rule_says_what_each_role_gets() -> None:
    for coordinate, rule in RULES.items():
        assert set(rule.expect) == set(Role), coordinate
        assert all(isinstance(o, Outcome) for o in rule.expect.values()), coordinate


def test_the_matrix_has_a_sample_for_every_root_field() -> None:
    roots = {f"{t}.{f}" for t, f in fields(exported()) if t in ROOTS}
    sampled = {s.root for s in SAMPLES}
    assert sorted(roots - sampled) == []
    assert sorted(sampled - roots) == []
    for sample in SAMPLES:
        assert sample.coordinate in RULES, sample.name
        assert sample.coordinate == sample.root or sample.kind == "Query", sample.name
    assert len({s.name for s in SAMPLES}) == len(SAMPLES)


# ---- the guards stand on their own -------------------------------------------------------
# What a resolver would let through by mistake (an object of someone else's), the field's
# rule still refuses: checked here on the guards alone, with the viewer and the few rows
# they look up.


class Rows:
    """A dataloader that answers every key with the same rows."""

    def __init__(self, value: object) -> None:
        self.value = value

    async def load(self, key: object) -> object:
        return self.value


def viewing(
    viewer: uuid.UUID | None,
    memberships: list[us.Membership] | None = None,
    staff: av.Staff | None = None,
) -> Any:
    """The `info` a guard gets: the request's context, as far as the rules read it."""
    loaders = SimpleNamespace(memberships=Rows(memberships or []), staff=Rows(staff))
    return SimpleNamespace(context=SimpleNamespace(viewer_id=viewer, loaders=loaders))


def guard(coordinate: str) -> Guarded:
    type_name, _, name = coordinate.partition(".")
    parent = schema._schema.get_type(type_name)
    assert isinstance(parent, GraphQLObjectType)
    resolve = parent.fields[name].resolve
    assert isinstance(resolve, Guarded)
    return resolve


async def answer(coordinate: str, source: object, info: Any) -> Any:
    """The field's answer, or the code of the error it refuses with."""
    try:
        result = guard(coordinate)(source, info)
        return await result if inspect.isawaitable(result) else result
    except GraphQLError as error:
        return (error.extensions or {}).get("code")


def a_booking(customer: uuid.UUID, org: uuid.UUID, staff: uuid.UUID) -> Booking:
    now = datetime.now(UTC)
    record = bk.Booking(
        id=uuid.uuid4(),
        reference="ABC123",
        organization_id=org,
        service_id=uuid.uuid4(),
        staff_id=staff,
        customer_id=customer,
        guest_name=None,
        guest_email=None,
        guest_phone=None,
        start=now,
        end=now,
        status=bk.BookingStatus.CONFIRMED,
        notes="private notes",
        price_amount=0,
        currency="EUR",
        expires_at=None,
        created_at=now,
        cancelled_at=None,
        cancellation_reason=None,
    )
    return Booking.of(record)


async def test_a_booking_handed_to_the_wrong_viewer_keeps_its_personal_data() -> None:
    customer, org, staff_id, stranger = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    booking = a_booking(customer, org, staff_id)
    assert await answer("Booking.notes", booking, viewing(None)) == "UNAUTHENTICATED"
    assert await answer("Booking.notes", booking, viewing(stranger)) == "FORBIDDEN"
    elsewhere = us.Membership(uuid.uuid4(), stranger, us.Role.OWNER)
    assert await answer("Booking.guestEmail", booking, viewing(stranger, [elsewhere])) == (
        "FORBIDDEN"
    )
    # Those the booking is theirs to read, worked out from the viewer alone.
    assert await answer("Booking.notes", booking, viewing(customer)) == "private notes"
    admin = us.Membership(org, stranger, us.Role.ADMIN)
    assert await answer("Booking.notes", booking, viewing(stranger, [admin])) == "private notes"
    works_on = av.Staff(staff_id, org, "Sam", "Europe/Berlin", stranger)
    assert await answer("Booking.notes", booking, viewing(stranger, [], works_on)) == (
        "private notes"
    )
    # A guest is known by the token the resolver checked (Booking.as_read_by).
    by_token = Booking.as_read_by(booking.record, frozenset({bk.Actor.GUEST}))
    assert await answer("Booking.notes", by_token, viewing(None)) == "private notes"


async def test_an_account_handed_to_the_wrong_viewer_keeps_its_details() -> None:
    record = us.User(uuid.uuid4(), "carla@example.com", "+4915112345678", "Carla", True)
    someone = uuid.uuid4()
    user = User.of(record)
    assert await answer("User.email", user, viewing(None)) == "UNAUTHENTICATED"
    assert await answer("User.phone", user, viewing(someone)) == "FORBIDDEN"
    assert await answer("User.email", user, viewing(record.id)) == "carla@example.com"
    # A booking's reader sees its customer's contact details, not their memberships.
    contact = User.of(record, contact=True)
    assert await answer("User.email", contact, viewing(someone)) == "carla@example.com"
    assert await answer("User.memberships", contact, viewing(someone)) == "FORBIDDEN"


async def test_a_payment_secret_is_null_for_anyone_but_its_payer() -> None:
    now = datetime.now(UTC)
    record = pay.Payment(
        id=uuid.uuid4(),
        booking_id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        provider="offline",
        intent_id="pi_1",
        client_secret="pi_1_secret",
        status=pay.PaymentStatus.REQUIRES_PAYMENT,
        amount=2500,
        refunded_amount=0,
        currency="EUR",
        last_error="declined",
        state_at=now,
        created_at=now,
    )
    for coordinate in ("Payment.clientSecret", "Payment.failureMessage"):
        hidden = Payment.of(record, payer=False)
        assert await answer(coordinate, hidden, viewing(uuid.uuid4())) is None
