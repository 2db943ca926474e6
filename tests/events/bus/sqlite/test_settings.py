"""SqliteSettings and its URL: what the file is called and which options a URL may carry."""

from __future__ import annotations

from pathlib import Path

import pytest

from cumulo.errors import BusError, UnknownBackendError
from cumulo.events.bus.base import BusSettings
from cumulo.events.bus.sqlite.settings import URL_OPTIONS, SqliteSettings, parse_options


def test_a_settings_url_opens_the_same_file_again():
    for path in (Path("/var/lib/cumulo/bus.db"), Path("state/bus.db")):
        assert SqliteSettings.from_url(SqliteSettings(path).url).path == path


def test_a_percent_encoded_path_names_the_file_with_its_real_characters():
    settings = SqliteSettings.from_url("sqlite:////tmp/my%20bus/bus%231.db")
    assert settings.path == Path("/tmp/my bus/bus#1.db")


def test_the_query_overrides_the_extra_settings_and_the_bus_settings_are_kept():
    bus = BusSettings(dedup_window=3, extra={"synchronous": "OFF", "busy_timeout": "1"})
    settings = SqliteSettings.from_url("sqlite:///b.db?synchronous=normal", bus)
    assert (settings.synchronous, settings.busy_timeout) == ("NORMAL", 1.0)
    assert settings.bus is bus


def test_the_defaults_are_durable():
    settings = SqliteSettings(Path("b.db"))
    assert (settings.synchronous, settings.busy_timeout) == ("FULL", 10.0)


def test_another_scheme_is_not_a_sqlite_url():
    with pytest.raises(UnknownBackendError, match="not a sqlite URL"):
        SqliteSettings.from_url("redis://localhost/b.db")


def test_an_unknown_option_is_named_with_the_known_ones():
    with pytest.raises(BusError) as caught:
        parse_options({"colour": "blue", "synchronous": "FULL"}, "sqlite:///b.db")
    message = str(caught.value)
    assert "colour" in message and all(option in message for option in URL_OPTIONS)


def test_options_are_parsed_to_their_types():
    parsed = parse_options({"synchronous": "off", "busy_timeout": "2.5"}, "u")
    assert parsed == {"synchronous": "OFF", "busy_timeout": 2.5}
    assert parse_options({}, "u") == {}


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [({"synchronous": "EXTRA"}, "synchronous"), ({"busy_timeout": -1.0}, "negative")],
)
def test_settings_out_of_range_are_refused(fields: dict[str, object], complaint: str):
    with pytest.raises(BusError, match=complaint):
        SqliteSettings(Path("b.db"), **fields)  # type: ignore[arg-type]
