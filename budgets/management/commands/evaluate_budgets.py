from django.core.management.base import CommandError

from budgets.emails import budget_alert_send, budget_alerts_due
from budgets.services import budgets_evaluate_all
from budgets.tasks import _fold_rollups
from koala.management.base import JsonCommand
from organizations.models import Organization


class Command(JsonCommand):
    help = ("Evaluates every active budget once, now, and sends the alerts that result (and any still "
            "waiting to be sent) before it exits.")

    def add_arguments(self, parser):
        parser.add_argument("--org", help="only this organization's budgets (slug)")

    def run(self, **options) -> dict:
        organization_ids = None
        if options.get("org"):
            organization = Organization.objects.filter(slug=options["org"]).first()
            if organization is None:
                raise CommandError(f"No organization with slug '{options['org']}'.")
            organization_ids = [organization.pk]
        _fold_rollups()
        claimed = budgets_evaluate_all(organization_ids=organization_ids)
        outcomes = {"sent": 0, "failed": 0, "skipped": 0, "no_recipients": 0}
        pending = dict.fromkeys([*claimed, *budget_alerts_due(organization_ids=organization_ids)])
        for alert_id in pending:
            outcomes[budget_alert_send(alert_id=alert_id)] += 1
        return {"claimed": len(claimed), **outcomes}
