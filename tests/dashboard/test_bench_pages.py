"""bench/pages.py keeps working as the pages change: it finds and fetches every page,
in-process and over HTTP (the figures themselves belong to bench/, not to tests)."""
import pytest

from bench.pages import page_paths, time_pages


@pytest.mark.django_db
def test_time_pages_in_process_fetches_every_page(organization, owner_client, events_sent):
    figures = time_pages(owner_client, organization.slug, 1)
    assert set(figures["pages"]) == set(page_paths(organization.slug)) | {"saved_query_run", "event_detail"}
    assert all(page["status"] == 200 for page in figures["pages"].values()), figures
    assert all(page["server_ms_median"] > 0 for page in figures["pages"].values())


@pytest.mark.django_db(transaction=True)
def test_time_pages_over_http_signs_in_like_a_person(live_server, organization):
    from organizations.models import Membership
    from tests.factories import make_member

    make_member(organization=organization, role=Membership.Role.ADMIN, email="bench@acme.test",
                password="correct horse battery")
    figures = time_pages(live_server.url, organization.slug, 1, email="bench@acme.test",
                         password="correct horse battery")
    assert figures["pages"]["api_keys"]["status"] == 200
    assert all(page["status"] == 200 for page in figures["pages"].values()), figures
