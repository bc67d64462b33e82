from django.core.management.base import CommandError

from koala.management.base import JsonCommand
from organizations.models import Organization
from organizations.services import project_create


class Command(JsonCommand):
    help = "Creates a project in an organization."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--slug")

    def run(self, **options) -> dict:
        organization = Organization.objects.filter(slug=options["org"]).first()
        if organization is None:
            raise CommandError(f"No organization with slug '{options['org']}'.")
        project = project_create(organization=organization, name=options["name"], slug=options["slug"])
        return {"slug": project.slug, "id": project.id}
