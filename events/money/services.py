"""Writes: rates and prices changed, pending events converted, computed costs re-priced.

Every change to stored amounts runs under one lock per organization and is
followed, in the same transaction, by a rebuild of the rollups for the local days
it touched (`queries.services.rollup_rebuild`, which shares the fold's lock), so
reports and budgets never count an event twice or with two amounts. Both writers
set amounts from the rates and prices now in force, never add to them: running
them twice changes nothing the second time.
"""
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import connection, transaction
from django.db.models import F

from events.ingest import INGEST_COMMITTED_HOOKS
from events.models import Event
from events.money.conversion import (UNCONVERTED_FLAG, ConversionOverflow, rate_table_load, reporting_amounts)
from events.money.pricing import UsageProblem, cost_in_currency, price_book_load, usage_from_metadata
from organizations.models import Organization

logger = logging.getLogger(__name__)


def money_touch(*, organization: Organization) -> None:
    """Marks rates or prices changed: every process recompiles them on its next request."""
    Organization.objects.filter(pk=organization.pk).update(money_version=F("money_version") + 1)
    logger.info("money.changed", extra={"organization_id": organization.pk})


def exchange_rates_changed(*, organization: Organization, base: str, since: datetime | None) -> None:
    """After a rate of `base` was added, corrected or deleted: new events use it at once,
    and stored events from `since` on are (re)converted by a task after the commit."""
    money_touch(organization=organization)
    since_text = since.isoformat() if since is not None else None

    def enqueue():
        from events.tasks import events_convert  # tasks call services; imported late to avoid the cycle

        try:
            events_convert.delay(organization.pk, base, since_text)
        except Exception:  # the broker being down must not fail the admin; the sweep catches up
            logger.exception("money.convert_enqueue_failed", extra={"organization_id": organization.pk})

    transaction.on_commit(enqueue)


def _lock(organization: Organization) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended('events.money:' || %s, 0))",
                       [str(organization.pk)])


def _local_days(organization: Organization, first: datetime, last: datetime) -> tuple[date, date]:
    zone = ZoneInfo(organization.timezone)
    return first.astimezone(zone).date(), last.astimezone(zone).date() + timedelta(days=1)


def _amounts_changed(organization: Organization, changed: list[tuple[datetime, int]]) -> None:
    """Rebuilds the rollups of the local days of `changed` (timestamp, project id) now,
    and after the commit tells what follows ingested events (budget evaluation) too."""
    if not changed:
        return
    from queries.services import rollup_rebuild  # queries reads events; imported late to avoid the cycle

    first, last = min(stamp for stamp, _ in changed), max(stamp for stamp, _ in changed)
    since, until = _local_days(organization, first, last)
    rollup_rebuild(organization=organization, since=since, until=until)
    project_ids = sorted({project_id for _, project_id in changed})
    transaction.on_commit(lambda: _tell_hooks(organization.pk, project_ids, first, last))


def _tell_hooks(organization_id: int, project_ids: list[int], first: datetime, last: datetime) -> None:
    # Changed amounts matter to the same followers as new events (budgets re-evaluate
    # the periods they fall in); like ingestion, a failing hook is logged, never raised.
    for hook in INGEST_COMMITTED_HOOKS:
        try:
            hook(organization_id=organization_id, project_ids=project_ids, first=first, last=last)
        except Exception:
            logger.exception("money.hook_failed", extra={"organization_id": organization_id})


_CONVERT = """
WITH target AS (
    SELECT e.seq, e."timestamp", CASE
        WHEN round(e.cost * r.rate, 18) < 1e20 AND COALESCE(round(e.charge * r.rate, 18), 0) < 1e20
        THEN r.rate END AS rate
    FROM events_event e
    LEFT JOIN LATERAL (
        SELECT x.rate FROM organizations_exchangerate x
        WHERE x.organization_id = e.organization_id AND x.base = e.currency AND x.quote = %(quote)s
          AND x.valid_from <= e."timestamp"
        ORDER BY x.valid_from DESC LIMIT 1
    ) r ON true
    WHERE e.organization_id = %(organization)s AND e.currency <> %(quote)s
      AND (%(currency)s::text IS NULL OR e.currency = %(currency)s)
      AND (%(since)s::timestamptz IS NULL OR e."timestamp" >= %(since)s)
      AND (NOT %(pending_only)s OR e.cost_reporting IS NULL)
)
UPDATE events_event e SET
    exchange_rate = t.rate,
    cost_reporting = round(e.cost * t.rate, 18),
    charge_reporting = round(e.charge * t.rate, 18),
    flags = CASE
        WHEN t.rate IS NOT NULL THEN array_remove(e.flags, %(flag)s::varchar)
        WHEN %(flag)s::varchar = ANY(e.flags) THEN e.flags
        ELSE array_append(e.flags, %(flag)s::varchar) END
FROM target t
WHERE e.organization_id = %(organization)s AND e."timestamp" = t."timestamp" AND e.seq = t.seq
  AND e.exchange_rate IS DISTINCT FROM t.rate
RETURNING e."timestamp", e.project_id, t.rate IS NOT NULL
"""


@dataclass(frozen=True)
class ConvertResult:
    converted: int  # events that now carry reporting amounts with a new rate
    unconverted: int  # events that lost their rate (it was deleted or moved later)

    def as_json(self) -> dict:
        return {"converted": self.converted, "unconverted": self.unconverted}


def events_convert(*, organization: Organization, currency: str | None = None, since: datetime | None = None,
                   pending_only: bool = False) -> ConvertResult:
    """Gives every stored event of `organization` in another currency (only `currency`,
    only from `since`, when given) the reporting amounts of the rate in force at its
    timestamp, then rebuilds the rollups of the days that changed.

    Pending events are converted, events of a corrected rate re-converted, events
    whose rate was deleted become unconverted again; events already right are not
    touched, so a second run changes nothing. `pending_only`: only the unconverted
    ones (the sweep's catch-up, found through their partial index).
    """
    organization = Organization.objects.get(pk=organization.pk)  # the reporting currency as it is now
    with transaction.atomic():
        _lock(organization)
        with connection.cursor() as cursor:
            cursor.execute(_CONVERT, {"quote": organization.reporting_currency, "organization": organization.pk,
                                      "currency": currency, "since": since, "pending_only": pending_only,
                                      "flag": UNCONVERTED_FLAG})
            changed = cursor.fetchall()
        _amounts_changed(organization, [(stamp, project_id) for stamp, project_id, _ in changed])
    result = ConvertResult(converted=sum(1 for *_, converted in changed if converted),
                           unconverted=sum(1 for *_, converted in changed if not converted))
    logger.info("money.events_converted", extra={"organization_id": organization.pk, "currency": currency,
                                                  **result.as_json()})
    return result


def organizations_with_pending_events() -> list[int]:
    """Organizations holding unconverted events for which some rate now exists (the sweep's work list)."""
    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT DISTINCT e.organization_id FROM events_event e
            JOIN organizations_organization o ON o.id = e.organization_id
            WHERE e.cost_reporting IS NULL AND EXISTS (
                SELECT 1 FROM organizations_exchangerate x
                WHERE x.organization_id = e.organization_id AND x.base = e.currency
                  AND x.quote = o.reporting_currency AND x.valid_from <= e."timestamp")
        """)
        return [row[0] for row in cursor.fetchall()]


_REPRICE_UPDATE = """
UPDATE events_event SET cost = %s, cost_reporting = %s, charge_reporting = %s, exchange_rate = %s, price_ref = %s,
    flags = %s
WHERE organization_id = %s AND "timestamp" = %s AND seq = %s
"""


@dataclass(frozen=True)
class RepriceResult:
    examined: int  # events with a computed cost in the range
    changed: int  # whose cost or reporting amounts changed
    unpriced: int  # left unchanged: no price (or no rate into their currency) is known any more

    def as_json(self) -> dict:
        return {"examined": self.examined, "changed": self.changed, "unpriced": self.unpriced}


def event_costs_reprice(*, organization: Organization, since: datetime, until: datetime) -> RepriceResult:
    """Recomputes the costs computed from tokens for events in [since, until) with the
    prices and rates in force now, then rebuilds the rollups of the days that changed.

    Costs the client sent are never touched. A second run changes nothing.
    """
    organization = Organization.objects.get(pk=organization.pk)
    examined = unpriced = 0
    updates, changed = [], []
    with transaction.atomic():
        _lock(organization)
        prices, rates = price_book_load(organization=organization), rate_table_load(organization=organization)
        rows = (Event.objects.filter(organization=organization, cost_source="computed", timestamp__gte=since,
                                     timestamp__lt=until)
                .order_by().values_list("seq", "timestamp", "project_id", "provider", "metadata", "currency", "cost",
                                        "charge", "cost_reporting", "charge_reporting", "exchange_rate", "price_ref",
                                        "flags"))
        for (seq, stamp, project_id, provider, metadata, currency, cost, charge, cost_reporting, charge_reporting,
             rate, price_ref, flags) in rows.iterator(chunk_size=2000):
            examined += 1
            try:
                model, usage = usage_from_metadata(metadata) or (None, None)
                price = model and prices.price(provider=provider, model=model, usage=usage, when=stamp)
                if not price:
                    unpriced += 1
                    continue
                new_cost = cost_in_currency(price=price, currency=currency, table=rates, when=stamp)
                reporting = reporting_amounts(cost=new_cost, charge=charge, currency=currency, table=rates,
                                              when=stamp)
            except (UsageProblem, ConversionOverflow):
                unpriced += 1
                continue
            new_flags = [flag for flag in flags if flag != UNCONVERTED_FLAG]
            if not reporting.converted:
                new_flags.append(UNCONVERTED_FLAG)
            new = (new_cost, reporting.cost, reporting.charge, reporting.rate, price.ref, new_flags)
            if new != (cost, cost_reporting, charge_reporting, rate, price_ref, flags):
                updates.append((*new, organization.pk, stamp, seq))
                changed.append((stamp, project_id))
        if updates:
            with connection.cursor() as cursor:
                cursor.executemany(_REPRICE_UPDATE, updates)
        _amounts_changed(organization, changed)
    result = RepriceResult(examined=examined, changed=len(updates), unpriced=unpriced)
    logger.info("money.events_repriced", extra={"organization_id": organization.pk, "since": since.isoformat(),
                                                 "until": until.isoformat(), **result.as_json()})
    return result
