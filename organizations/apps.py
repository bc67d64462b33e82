from django.apps import AppConfig


class OrganizationsConfig(AppConfig):
    name = "organizations"

    def ready(self):
        # Registers the API-key scheme with drf-spectacular for the OpenAPI document.
        from organizations import schema  # noqa: F401
