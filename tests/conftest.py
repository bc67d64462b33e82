import os

import pytest
from rest_framework.test import APIClient

from tests.factories import make_api_key, make_organization, make_project


def pytest_sessionstart(session):
    """Under CI a missing PostgreSQL or Redis fails the run loudly instead of skipping."""
    from django.conf import settings

    import psycopg
    import redis

    database = settings.DATABASES["default"]
    problems = []
    try:
        # The maintenance database: the configured one need not exist yet, since the
        # tests run in test_<name>, which pytest-django creates.
        psycopg.connect(host=database["HOST"] or None, port=database["PORT"] or None, user=database["USER"] or None,
                        password=database["PASSWORD"] or None, dbname="postgres", connect_timeout=5).close()
    except Exception as error:
        problems.append(f"PostgreSQL at {settings.DATABASE_URL}: {error}")
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5).ping()
    except Exception as error:
        problems.append(f"Redis at {settings.REDIS_URL}: {error}")
    if problems:
        raise pytest.UsageError("The test suite needs its real services; unreachable: " + "; ".join(problems))


@pytest.fixture
def organization(db):
    return make_organization(name="Acme")


@pytest.fixture
def project(organization):
    return make_project(organization=organization, slug="assistant-api")


@pytest.fixture
def other_organization(db):
    return make_organization(name="Globex")


@pytest.fixture
def other_project(other_organization):
    return make_project(organization=other_organization, slug="assistant-api")


@pytest.fixture
def ingest_key(organization, project):
    return make_api_key(organization=organization, project=project, scopes="ingest")


@pytest.fixture
def read_key(organization):
    return make_api_key(organization=organization, scopes="read")


@pytest.fixture
def full_key(organization):
    return make_api_key(organization=organization, scopes="ingest,read,manage")


@pytest.fixture
def other_key(other_organization):
    return make_api_key(organization=other_organization, scopes="ingest,read,manage")


@pytest.fixture
def api_client():
    return APIClient()


def client_with(key: str | None) -> APIClient:
    client = APIClient()
    if key:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def api_as():
    """`api_as(key)` -> an API client sending that key."""
    return client_with


@pytest.fixture(autouse=True)
def _no_leaking_environment(monkeypatch):
    # Tests must not depend on a developer's shell exporting DEBUG or the like.
    monkeypatch.delenv("DJANGO_DEBUG", raising=False)
    yield
