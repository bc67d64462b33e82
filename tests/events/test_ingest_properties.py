"""Property: whatever a sequence of batches mixes, the counts add up and match what is stored.

Random batches mix new events, invalid ones, events without an id, and repeats of ids
seen before (in the same batch or an earlier one, stored or not), with the same content
written differently or with changed content. A plain dict models the contract:
the first valid occurrence of a (project, id) is stored; a later one is a duplicate
when its content equals what is stored, an id_conflict otherwise.
"""
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from events.models import Event
from tests.factories import make_project

EVENTS = "/api/v1/events"
PROJECTS = ("assistant-api", "billing")
TIMESTAMP = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
COSTS = (Decimal("0.5"), Decimal("1.25"), Decimal("142"), Decimal("0.000000000000000001"))


def _spellings(cost: Decimal) -> list:
    """The same amount as a JSON number, a string, and with trailing zeros: all the same content."""
    plain = format(cost, "f")
    padded = plain + ("000" if "." in plain else ".000")
    return [f"@@NUM:{plain}@@", plain, f"@@NUM:{padded}@@", padded]


# One operation in a batch; materialized against the ids the example has seen so far.
new_event = st.tuples(st.just("new"), st.sampled_from(PROJECTS), st.sampled_from(COSTS), st.integers(0, 3))
repeat = st.tuples(st.just("repeat"), st.integers(0, 10_000), st.booleans(), st.integers(0, 3))
invalid = st.tuples(st.just("invalid"), st.sampled_from(["negative", "nan", "taxonomy", "not_object", "unknown_field"]),
                    st.integers(0, 10_000), st.booleans())
no_id = st.tuples(st.just("no_id"), st.sampled_from(PROJECTS))
operation = st.one_of(new_event, new_event, repeat, repeat, invalid, no_id)
batches = st.lists(st.lists(operation, min_size=1, max_size=12), min_size=1, max_size=3)


def _event(project: str, client_id: str | None, cost) -> dict:
    event = {"project": project, "timestamp": TIMESTAMP, "cost": cost, "charge": "2", "environment": "production",
             "provider": "openai", "application": "assistant", "action": "completion", "userId": "user_1",
             "traces": ["trace_1"], "metadata": {"model": "gpt-4o-mini"}}
    if client_id is not None:
        event["id"] = client_id
    return event


def _body(items: list) -> str:
    """JSON text; "@@NUM:x@@" becomes the bare number x and "@@NaN@@" the bare literal NaN."""
    text = json.dumps({"events": items})
    while '"@@NUM:' in text:
        start = text.index('"@@NUM:')
        end = text.index('@@"', start + 7)
        text = text[:start] + text[start + 7:end] + text[end + 3:]
    return text.replace('"@@NaN@@"', "NaN")


@pytest.fixture
def billing(organization):
    return make_project(organization=organization, slug="billing")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(plan=batches)
# Pinned: a stored id, then a changed copy and a copy of that changed copy in one batch.
# Both are conflicts; the second once counted as a "duplicate" of the first.
@example(plan=[[("new", "billing", COSTS[0], 0)], [("repeat", 0, False, 1), ("repeat", 1, True, 2)]])
def test_counts_add_up_and_match_the_rows_stored(api_as, full_key, organization, project, billing, plan):
    client = api_as(full_key)
    prefix = f"p{uuid.uuid4().hex[:10]}_"  # fresh ids per example: the database is shared across examples
    stored: dict[tuple[str, str], Decimal] = {}  # the model: (project, id) -> the stored cost
    seen: list[tuple[str, str, Decimal]] = []  # every valid (project, id, cost) sent so far, stored or not
    rows_before = Event.objects.filter(organization=organization).count()
    total_accepted = 0

    for ops in plan:
        items, expected_errors = [], []
        accepted = duplicates = 0
        for index, op in enumerate(ops):
            kind = op[0]
            if kind == "new" or (kind == "repeat" and not seen):
                project_slug, cost, spelling = (op[1], op[2], op[3]) if kind == "new" else ("billing", COSTS[0], 0)
                client_id = f"{prefix}{len(seen)}"
            elif kind == "repeat":
                project_slug, client_id, earlier_cost = seen[op[1] % len(seen)]
                cost = earlier_cost if op[2] else earlier_cost + 1
                spelling = op[3]
            elif kind == "invalid":
                reason, reuse, keyed = op[1], op[2], op[3]
                client_id = seen[reuse % len(seen)][1] if (keyed and seen) else f"{prefix}bad{index}"
                event = _event("assistant-api", client_id, "1")
                code = "invalid"
                if reason == "negative":
                    event["cost"] = "-1"
                elif reason == "nan":
                    event["cost"] = "@@NaN@@"
                elif reason == "taxonomy":
                    event["environment"], code = "prod-eu", "taxonomy_violation"
                elif reason == "not_object":
                    event = 42
                else:
                    event["user_id"] = "user_1"
                items.append(event)
                expected_errors.append((index, code))
                continue
            else:  # no id: always a new event, never deduplicated
                items.append(_event(op[1], None, "0.5"))
                accepted += 1
                continue

            items.append(_event(project_slug, client_id, _spellings(cost)[spelling]))
            key = (project_slug, client_id)
            if key in stored:
                if stored[key] == cost:
                    duplicates += 1
                else:
                    expected_errors.append((index, "id_conflict"))
            else:
                stored[key] = cost
                accepted += 1
            seen.append((project_slug, client_id, cost))

        response = client.post(EVENTS, data=_body(items), content_type="application/json")
        body = response.json()
        assert response.status_code == (207 if expected_errors else 200), body
        assert (body["accepted"], body["duplicates"], body["rejected"]) == (
            accepted, duplicates, len(expected_errors)), (ops, body)
        assert body["accepted"] + body["duplicates"] + body["rejected"] == len(items)
        assert [(error["index"], error["code"]) for error in body["errors"]] == expected_errors, body
        total_accepted += body["accepted"]
        assert Event.objects.filter(organization=organization).count() - rows_before == total_accepted

    # Every stored id holds the content it was first stored with; conflicts changed nothing.
    rows = Event.objects.filter(organization=organization, client_id__startswith=prefix)
    assert {(row.project.slug, row.client_id): row.cost for row in rows.select_related("project")} == stored


# Any JSON value at all, strings with any code point (NUL, unpaired surrogates),
# integers of any size, NaN and Infinity (json.dumps writes them as bare literals).
any_text = st.text(alphabet=st.characters(blacklist_categories=()), max_size=20)
any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text
    | st.sampled_from(["NaN", "1e400", "-1", "0.0000000000000000001", "2026-11-01T12:00:00", "prod", "USD", "EUR"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
FIELDS = ("id", "timestamp", "project", "cost", "charge", "currency", "environment", "provider", "application",
          "action", "userId", "tags", "traces", "metadata")
fuzzed_event = st.tuples(st.dictionaries(st.sampled_from(FIELDS), any_json, max_size=4),
                         st.dictionaries(any_text, any_json, max_size=1), st.booleans())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(events=st.lists(fuzzed_event, min_size=1, max_size=4), single=st.booleans())
def test_no_event_however_odd_gets_a_500(api_as, full_key, organization, project, billing, events, single):
    items = []
    for replaced, extra, drop_extra in events:
        event = _event("assistant-api", f"fz{uuid.uuid4().hex[:12]}", "0.5")
        event.update(replaced)
        if not drop_extra:
            event.update(extra)
        items.append(event)
    raw = json.dumps(items[0] if single else {"events": items})
    rows_before = Event.objects.filter(organization=organization).count()
    response = api_as(full_key).post(EVENTS, data=raw, content_type="application/json")
    body = response.json()
    assert response.status_code in (200, 207, 400, 422), body
    if response.status_code >= 400:
        assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str)
    if response.status_code != 400:
        assert body["accepted"] + body["duplicates"] + body["rejected"] == (1 if single else len(items))
        assert Event.objects.filter(organization=organization).count() - rows_before == body["accepted"]
    else:
        assert Event.objects.filter(organization=organization).count() == rows_before
