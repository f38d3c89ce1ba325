"""Settings come from the environment, typed: the README's tables list exactly the
variables `Settings` reads, an empty variable counts as unset, and a value that does not
parse stops start-up with a message naming the variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from infra.settings import ROOT, Settings

ENV_NAME = re.compile(r"`([A-Z][A-Z0-9_]*)`")


def table_variables(readme: str, section: str) -> list[str]:
    """The backquoted names in the `variable` column of the first table under `## section`."""
    body = readme.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in body.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    column = header.index("variable")
    names: list[str] = []
    for row in rows[2:]:  # past the header and its --- line
        cells = row.strip("|").split("|")
        names += ENV_NAME.findall(cells[column])
    return names


def test_the_readme_tables_list_every_setting_and_nothing_else() -> None:
    readme = (ROOT / "README.md").read_text()
    listed = table_variables(readme, "Configuration") + table_variables(readme, "Limits")
    assert len(listed) == len(set(listed)), f"listed twice: {sorted(listed)}"
    fields = set(Settings.variables())
    assert fields - set(listed) == set(), "settings the README does not list"
    assert set(listed) - fields == set(), "README variables that are no setting"


def test_every_field_is_read_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in Settings.variables():
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("GRAPHQL_MAX_DEPTH", "7")
    monkeypatch.setenv("OPERATION_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("BOOKING_DATA_DIR", "/tmp/booking-data")
    monkeypatch.setenv("BOOKING_HOLD_SECONDS", "90")
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.setenv("max_cost", "5")  # not the variable's name: ignored
    settings = Settings.from_env()
    assert settings.max_depth == 7
    assert settings.operation_timeout_seconds == 2.5
    assert settings.data_dir == Path("/tmp/booking-data")
    assert settings.booking_hold_seconds == 90
    assert settings.port == 8123
    assert settings.max_cost == 100_000
    assert settings.database_url is None
    assert settings.host == "127.0.0.1"


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("DATABASE_URL", "REDIS_URL", "JWT_SECRET", "BOOKING_HOLD_SECONDS"):
        monkeypatch.setenv(variable, "")
    monkeypatch.setenv("DATABASE_POOL_SIZE", "")
    settings = Settings.from_env()
    assert settings.database_url is None
    assert settings.redis_url is None
    assert settings.jwt_secret is None
    assert settings.booking_hold_seconds is None
    assert settings.database_pool_size == 20


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("GRAPHQL_MAX_DEPTH", "abc", "valid integer"),
        ("DATABASE_POOL_SIZE", "0", "greater than or equal to 1"),
        ("PORT", "70000", "less than or equal to 65535"),
        ("OPERATION_TIMEOUT_SECONDS", "soon", "valid number"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as refused:
        Settings.from_env()
    message = str(refused.value)
    assert variable in message
    assert says in message
    assert repr(value) in message


def test_settings_are_immutable_and_keep_secrets_out_of_repr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GRAPHQL_MAX_DEPTH", raising=False)
    monkeypatch.setenv("JWT_SECRET", "do-not-print-me")
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:hunter2@db/booking")
    settings = Settings.from_env()
    with pytest.raises(ValidationError):
        settings.max_depth = 1000
    assert "do-not-print-me" not in repr(settings)
    assert "hunter2" not in repr(settings)
    loosened = settings.model_copy(update={"max_depth": 1000})
    assert (loosened.max_depth, settings.max_depth) == (1000, 15)
