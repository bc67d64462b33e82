"""Accessible basics on every page, read from the HTML a screen reader gets: one h1,
every form control labelled, every chart named, the page's nav link marked current,
images of charts paired with a table of the same numbers."""
from html.parser import HTMLParser

import pytest

from tests.dashboard.test_access import READ_PAGES

pytestmark = pytest.mark.django_db


class _Controls(HTMLParser):
    def __init__(self):
        super().__init__()
        self.labels_for, self.controls, self.h1 = set(), [], 0
        self.svgs, self.current, self._label_depth = [], [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "label":
            self._label_depth += 1
            if attrs.get("for"):
                self.labels_for.add(attrs["for"])
        elif tag in ("input", "select", "textarea") and attrs.get("type") not in ("hidden", "submit"):
            self.controls.append((attrs.get("name"), attrs.get("id"), self._label_depth > 0,
                                  attrs.get("aria-label")))
        elif tag == "h1":
            self.h1 += 1
        elif tag == "svg":
            self.svgs.append(attrs)
        elif tag == "a" and attrs.get("aria-current") == "page":
            self.current.append(attrs.get("href"))

    def handle_endtag(self, tag):
        if tag == "label":
            self._label_depth -= 1


@pytest.mark.parametrize("page", [page for page in READ_PAGES if "format=csv" not in page] + ["api-keys/"])
def test_every_control_is_labelled_and_every_chart_named(page, organization, owner_client, events_sent):
    response = owner_client.get(f"/o/{organization.slug}/{page}")
    parsed = _Controls()
    parsed.feed(response.content.decode())
    assert parsed.h1 == 1, page
    unlabelled = [(name, control_id) for name, control_id, wrapped, aria in parsed.controls
                  if not wrapped and not aria and control_id not in parsed.labels_for]
    assert unlabelled == [], page
    for svg in parsed.svgs:
        assert svg.get("role") == "img" and svg.get("aria-label"), (page, svg)
    if page:
        assert parsed.current == [f"/o/{organization.slug}/{page}"], page
    assert b'class="skip" href="#main"' in response.content and b'<main id="main">' in response.content
    assert b'<html lang="en">' in response.content
    assert b'name="viewport"' in response.content
