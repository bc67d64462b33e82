"""The taxonomy health report: the playbook's five common problems as numbers.

Answered from aggregates, never by re-validating stored events: the daily rollup
(events, charges, environments, actions per day) and the daily health rollup
(flags, metadata keys, missing traces per application). A window that is not whole
local days, or an organization whose rollups are being rebuilt, reads the same
aggregates computed from its raw events instead. What counts as unknown is judged
here against the taxonomy of now, so fixing the taxonomy fixes the report.
"""
from datetime import datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo


from events.selectors import taxonomy_spec
from events.taxonomy.naming import closest, is_snake_case, suggest_snake_case
from koala.money import money_str
from organizations.models import ApiKey, Organization
from queries.rollups.definitions import DAILY, DAILY_HEALTH, Rollup
from queries.rollups.fold import current_rows, event_columns
from queries.selectors import report_cursor, report_scope
from queries.spec import ReportSpec

TOP = 20  # offenders listed per problem


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _relation(rollup: Rollup, *, aggregated: bool) -> str:
    """The rollup's rows (folded and not yet folded), or the same rows computed from
    the raw events of the window."""
    if aggregated:
        return current_rows(rollup)
    return "(" + rollup.grouped_select(
        f"(SELECT {event_columns()} FROM events_event e "
        "WHERE e.organization_id = %(organization_id)s AND e.project_id = ANY(%(project_ids)s) "
        'AND e."timestamp" >= %(start)s AND e."timestamp" < %(end)s) e, (SELECT %(tz)s::text AS tz) z') + ")"


_WHERE = ("WHERE r.organization_id = %(organization_id)s AND r.project_id = ANY(%(project_ids)s) "
          "AND r.day >= %(start_day)s AND r.day < %(end_day)s")


def _daily_facts(cursor, relation: str, params: dict) -> list:
    cursor.execute(
        "SELECT GROUPING(r.environment, r.action, r.day), r.environment, r.action, r.day, "
        "COALESCE(sum(r.event_count), 0)::bigint, COALESCE(sum(r.uncharged_count), 0)::bigint, "
        "COALESCE(sum(r.uncharged_cost), 0), COALESCE(sum(r.unconverted_count), 0)::bigint "
        f"FROM {relation} r {_WHERE} GROUP BY GROUPING SETS ((), (r.environment), (r.action), (r.day))", params)
    return cursor.fetchall()


def _health_facts(cursor, relation: str, params: dict) -> list:
    cursor.execute(
        "SELECT GROUPING(r.application, r.day), r.kind, r.value, r.application, r.day, "
        "sum(r.event_count)::bigint, sum(r.cost) "
        f"FROM {relation} r {_WHERE} "
        "GROUP BY GROUPING SETS ((r.kind, r.value), (r.kind, r.value, r.application), (r.kind, r.value, r.day))",
        params)
    return cursor.fetchall()


def _canonical_values(rule: dict) -> tuple[set, dict]:
    canonical = {value["value"] for value in rule["values"]}
    lookup = {spelling.lower(): value["value"] for value in rule["values"]
              for spelling in (value["value"], *value["aliases"])}
    return canonical, lookup


def _environment(by_environment: dict, events: int, rule: dict) -> dict:
    canonical, lookup = _canonical_values(rule)
    seen = []
    for value, count in sorted(by_environment.items(), key=lambda item: (-item[1], item[0] or "")):
        if value is None:
            continue
        if not canonical or value in canonical:
            resembles = value
        else:
            resembles = lookup.get(value.lower())
            if resembles is None:
                match = closest(value, lookup)
                resembles = lookup[match] if match is not None else None
        seen.append({"value": value, "count": count, "known": not canonical or value in canonical,
                     "resembles": resembles})
    missing = by_environment.get(None, 0)
    unknown = [item for item in seen if not item["known"]]
    return {"missing": {"count": missing, "share": _share(missing, events)},
            "unknown": {"count": sum(item["count"] for item in unknown), "share": _share(
                sum(item["count"] for item in unknown), events)},
            "values": seen[:TOP]}


def _metadata_drift(keys: dict, applications: dict, metadata_rule: dict) -> list:
    registered = {key["key"]: key["key"] for key in metadata_rule["keys"]}
    registered.update({alias: key["key"] for key in metadata_rule["keys"] for alias in key["aliases"]})
    drift = []
    for key, (count, cost) in keys.items():
        if key in registered:
            continue
        match = closest(key, registered)
        by_application = sorted(applications.get(key, {}).items(), key=lambda item: (-item[1], item[0] or ""))
        drift.append({"key": key, "count": count, "resembles": registered[match] if match else None,
                      "applications": [{"application": name, "count": n} for name, n in by_application[:TOP]]})
    # Keys that resemble a registered one first: those are the renames to fix.
    drift.sort(key=lambda item: (item["resembles"] is None, -item["count"], item["key"]))
    return drift[:TOP]


def _action_naming(by_action: dict, rule: dict) -> list:
    if rule.get("convention") != "snake_case":
        return []
    broken = [{"action": action, "count": count, "suggestion": suggest_snake_case(action)}
              for action, count in by_action.items() if action is not None and not is_snake_case(action)]
    broken.sort(key=lambda item: (-item["count"], item["action"]))
    return broken[:TOP]


def taxonomy_health(*, organization: Organization, api_key: ApiKey | None, start: datetime, end: datetime,
                    project_slug: str | None = None) -> dict:
    """The health report of `[start, end)` over the projects the key can read (or one)."""
    spec = ReportSpec(start=start, end=end, projects=(project_slug,) if project_slug else None, filters={},
                      group_by=(), metrics=("count",), order_by=None, descending=False, limit=1)
    scope = report_scope(organization=organization, api_key=api_key, spec=spec)
    tz = ZoneInfo(organization.timezone)
    local_start, local_end = start.astimezone(tz), end.astimezone(tz)
    aligned = local_start.time() == time(0) and local_end.time() == time(0)
    aggregated = aligned and scope.rollups
    end_day = local_end.date() if local_end.time() == time(0) else local_end.date() + timedelta(days=1)
    params = {"organization_id": organization.pk, "project_ids": list(scope.project_ids), "tz": organization.timezone,
              "start": start, "end": end, "start_day": local_start.date(), "end_day": end_day,
              "unfolded_from": scope.unfolded_from}
    with report_cursor(organization=organization, source="rollups" if aggregated else "events") as cursor:
        daily = _daily_facts(cursor, _relation(DAILY, aggregated=aggregated), params)
        health = _health_facts(cursor, _relation(DAILY_HEALTH, aggregated=aggregated), params)

    events = uncharged = unconverted = 0
    uncharged_cost = Decimal(0)
    by_environment, by_action, trend = {}, {}, {}
    for grouping, environment, action, day, count, uncharged_count, cost, unconverted_count in daily:
        if grouping == 0b111:
            events, uncharged, uncharged_cost, unconverted = count, uncharged_count, cost, unconverted_count
        elif grouping == 0b011:
            by_environment[environment] = count
        elif grouping == 0b101:
            by_action[action] = count
        else:
            trend[day] = {"day": day.isoformat(), "events": count, "missing_charge": uncharged_count,
                          "missing_traces": 0, "flagged": 0}
    flags, keys, key_applications, missing_traces = [], {}, {}, 0
    for grouping, kind, value, application, day, count, cost in health:
        if grouping == 0b11:
            if kind == "flag":
                flags.append({"rule": value, "count": count, "cost": money_str(cost)})
            elif kind == "metadata_key":
                keys[value] = (count, cost)
            elif kind == "missing_traces":
                missing_traces = count
        elif grouping == 0b01:
            if kind == "metadata_key":
                key_applications.setdefault(value, {})[application] = count
        elif day in trend and kind in ("missing_traces", "flagged"):
            trend[day][kind] += count
    flags.sort(key=lambda item: (-item["count"], item["rule"]))
    rules = taxonomy_spec(organization=organization)
    return {
        "from": start.astimezone(tz).isoformat(), "to": end.astimezone(tz).isoformat(),
        "project": project_slug, "currency": organization.reporting_currency,
        "events": events,
        "missing_charge": {"count": uncharged, "share": _share(uncharged, events), "cost": money_str(uncharged_cost)},
        "missing_traces": {"count": missing_traces, "share": _share(missing_traces, events)},
        "environment": _environment(by_environment, events, rules["fields"]["environment"]),
        "metadata_drift": _metadata_drift(keys, key_applications, rules["metadata"]),
        "action_naming": _action_naming(by_action, rules["fields"]["action"]),
        "flags": flags,
        "unconverted_count": unconverted,
        "trend": [trend[day] for day in sorted(trend)],
    }
