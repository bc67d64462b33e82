"""Base for the contract's management commands: `--json` prints one JSON object."""
import json

from django.core.management.base import BaseCommand, CommandError

from koala.exceptions import KoalaError


class JsonCommand(BaseCommand):
    """Subclasses implement `run(**options) -> dict`; errors exit non-zero with one line."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        return parser

    def run(self, **options) -> dict:
        raise NotImplementedError

    def describe(self, result: dict) -> str:
        return "\n".join(f"{key}: {value}" for key, value in result.items())

    def handle(self, *args, **options):
        try:
            result = self.run(**options)
        except KoalaError as error:
            raise CommandError(error.message) from None
        if options["json"]:
            self.stdout.write(json.dumps(result, default=str))
        else:
            self.stdout.write(self.describe(result))
