from django.db import transaction
from django.utils import timezone

from events.demo import demo_events_create
from koala.management.base import JsonCommand
from organizations.models import Organization
from organizations.services import api_key_create, organization_create, project_create

DEMO_SLUG = "demo"
DEMO_OWNER_EMAIL = "demo@trackingkoala.localhost"
DEMO_OWNER_PASSWORD = "koala-demo"
DEMO_EVENTS = 50_000  # a few seconds to write; enough for every chart to have a shape


class Command(JsonCommand):
    help = ("Creates the demo organization: projects, an owner login, an API key with every scope, and "
            "realistic events over the last 90 days.")

    def add_arguments(self, parser):
        parser.add_argument("--password", default=DEMO_OWNER_PASSWORD, help="the demo owner's password")
        parser.add_argument("--events", type=int, default=DEMO_EVENTS, help="how many demo events to write")

    @transaction.atomic
    def run(self, **options) -> dict:
        organization = Organization.objects.filter(slug=DEMO_SLUG).first()
        if organization is not None:
            return {"created": False, "slug": DEMO_SLUG, "email": DEMO_OWNER_EMAIL, "key": None}
        organization = organization_create(
            name="Acme AI (demo)", slug=DEMO_SLUG, owner_email=DEMO_OWNER_EMAIL, owner_password=options["password"],
        )
        project = project_create(organization=organization, name="Assistant API", slug="assistant-api")
        projects = [project, project_create(organization=organization, name="Billing Insights", slug="billing-insights"),
                    project_create(organization=organization, name="Search", slug="search")]
        _, plaintext = api_key_create(organization=organization, scopes="ingest,read,manage", name="demo key")
        events = demo_events_create(organization=organization, project_ids=[p.pk for p in projects],
                                    count=options["events"], end=timezone.now())
        return {"created": True, "slug": organization.slug, "id": organization.id, "project": project.slug,
                "email": DEMO_OWNER_EMAIL, "password": options["password"], "key": plaintext, "events": events}
