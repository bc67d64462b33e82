from datetime import UTC, datetime

from django.core.management.base import CommandError

from events.money.services import event_costs_reprice
from koala.management.base import JsonCommand
from organizations.models import Organization


def _moment(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--{name} '{text}' is not an RFC 3339 timestamp or a date (2026-11-01).") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Command(JsonCommand):
    help = ("Recomputes the costs computed from tokens for events in [--from, --to) with the prices and rates "
            "in force now (after a price override was added or corrected), and the rollups of those days. "
            "Costs sent by clients are never changed; running it twice changes nothing the second time.")

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--from", dest="since", required=True, help="start, included (RFC 3339; no offset: UTC)")
        parser.add_argument("--to", dest="until", required=True, help="end, excluded (RFC 3339; no offset: UTC)")

    def run(self, **options) -> dict:
        organization = Organization.objects.filter(slug=options["org"]).first()
        if organization is None:
            raise CommandError(f"No organization with slug '{options['org']}'.")
        since, until = _moment(options["since"], "from"), _moment(options["until"], "to")
        if since >= until:
            raise CommandError("--from must be before --to.")
        result = event_costs_reprice(organization=organization, since=since, until=until)
        return {"organization": organization.slug, "from": since.isoformat(), "to": until.isoformat(),
                **result.as_json()}
