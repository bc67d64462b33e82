from django.core.management.base import CommandError

from koala.management.base import JsonCommand
from organizations.models import Organization, Project
from organizations.services import api_key_create


class Command(JsonCommand):
    help = "Creates an API key and prints it once; only its hash is stored."

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--project", help="project slug; without it, an organization key")
        parser.add_argument("--scopes", required=True, help="comma-separated: ingest,read,manage")
        parser.add_argument("--name", default="")

    def run(self, **options) -> dict:
        organization = Organization.objects.filter(slug=options["org"]).first()
        if organization is None:
            raise CommandError(f"No organization with slug '{options['org']}'.")
        project = None
        if options["project"]:
            project = Project.objects.filter(organization=organization, slug=options["project"]).first()
            if project is None:
                raise CommandError(f"No project '{options['project']}' in organization '{organization.slug}'.")
        api_key, plaintext = api_key_create(organization=organization, project=project, scopes=options["scopes"],
                                            name=options["name"])
        return {"key": plaintext, "prefix": api_key.prefix, "scopes": api_key.scopes}
