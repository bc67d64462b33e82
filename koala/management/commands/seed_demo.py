from django.db import transaction

from koala.management.base import JsonCommand
from organizations.models import Organization
from organizations.services import api_key_create, organization_create, project_create

DEMO_SLUG = "demo"
DEMO_OWNER_EMAIL = "demo@trackingkoala.localhost"
DEMO_OWNER_PASSWORD = "koala-demo"


class Command(JsonCommand):
    help = "Creates the demo organization: a project, an owner login and an API key with every scope."

    def add_arguments(self, parser):
        parser.add_argument("--password", default=DEMO_OWNER_PASSWORD, help="the demo owner's password")

    @transaction.atomic
    def run(self, **options) -> dict:
        organization = Organization.objects.filter(slug=DEMO_SLUG).first()
        if organization is not None:
            return {"created": False, "slug": DEMO_SLUG, "email": DEMO_OWNER_EMAIL, "key": None}
        organization = organization_create(
            name="Acme AI (demo)", slug=DEMO_SLUG, owner_email=DEMO_OWNER_EMAIL, owner_password=options["password"],
        )
        project = project_create(organization=organization, name="Assistant API", slug="assistant-api")
        project_create(organization=organization, name="Billing Insights", slug="billing-insights")
        _, plaintext = api_key_create(organization=organization, scopes="ingest,read,manage", name="demo key")
        return {"created": True, "slug": organization.slug, "id": organization.id, "project": project.slug,
                "email": DEMO_OWNER_EMAIL, "password": options["password"], "key": plaintext}
