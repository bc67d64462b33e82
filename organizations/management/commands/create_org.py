from koala.management.base import JsonCommand
from organizations.services import organization_create


class Command(JsonCommand):
    help = "Creates an organization (and optionally its owner's login)."

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--slug")
        parser.add_argument("--currency", default="USD", help="reporting currency, ISO 4217 (default USD)")
        parser.add_argument("--timezone", default="UTC", help="IANA time zone (default UTC)")
        parser.add_argument("--owner-email")
        parser.add_argument("--owner-password")

    def run(self, **options) -> dict:
        organization = organization_create(
            name=options["name"], slug=options["slug"], currency=options["currency"].upper(),
            timezone_name=options["timezone"], owner_email=options["owner_email"],
            owner_password=options["owner_password"],
        )
        return {"slug": organization.slug, "id": organization.id}
