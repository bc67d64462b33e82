"""Fixtures for the dashboard pages: people with each role, signed in through Django's
test client, and a small set of events through the real ingestion API."""
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from events.partitions import forget_known_partitions
from organizations.models import Membership
from tests.factories import make_member, make_project
from tests.queries.helpers import event, send_events

PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _partitions_follow_the_rollback():
    # Events of past months create partitions inside the test's rolled-back transaction.
    forget_known_partitions()
    yield
    forget_known_partitions()


def signed_in(membership: Membership) -> Client:
    client = Client()
    assert client.login(username=membership.user.email, password=PASSWORD)
    return client


@pytest.fixture
def person_as(organization):
    """`person_as(role)` -> a test client signed in as a new member of `organization` with that role."""

    def make(role: str = Membership.Role.MEMBER, org=None) -> Client:
        return signed_in(make_member(organization=org or organization, role=role, password=PASSWORD))

    return make


@pytest.fixture
def owner_client(person_as):
    return person_as(Membership.Role.OWNER)


@pytest.fixture
def viewer_client(person_as):
    return person_as(Membership.Role.VIEWER)


def days_ago(days: float):
    return timezone.now() - timedelta(days=days)


@pytest.fixture
def events_sent(organization, project):
    """Events over the last days: two providers, customers with positive and negative margin,
    one without a charge, one with rich metadata and a trace."""
    billing = make_project(organization=organization, slug="billing-api")
    events = [
        event(id="e1", project="assistant-api", timestamp=days_ago(0.1), cost="1.004", charge="2.5", provider="openai",
              userId="usr_good", traces=["trace_2039"], tags=["premium"],
              metadata={"model": "gpt-4.1-mini", "latencyMs": 684, "region": "eu"}),
        event(id="e2", project="assistant-api", timestamp=days_ago(1.2), cost="3.333", charge="1.25",
              provider="anthropic", userId="usr_loss", metadata={"model": "claude-sonnet", "latencyMs": 1200}),
        event(id="e3", project="billing-api", timestamp=days_ago(2.5), cost="0.25", provider="openai",
              userId="usr_good", metadata={"model": "gpt-4.1-mini"}),
        event(id="e4", project="billing-api", timestamp=days_ago(3.5), cost="10", charge="12.125", provider="google",
              userId="usr_big", metadata={"model": "gemini-pro", "status": "error"}),
        event(id="e5", project="assistant-api", timestamp=days_ago(40), cost="5", charge="4", provider="openai",
              userId="usr_good", metadata={"model": "gpt-4.1-mini"}),  # the previous 30-day period
    ]
    send_events(organization, events)
    return {"billing": billing}
