from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"

    def ready(self):
        from events.services import taxonomy_install_default
        from organizations.services import ORGANIZATION_SETUP_HOOKS

        # Every new organization starts with the contract's default taxonomy.
        if taxonomy_install_default not in ORGANIZATION_SETUP_HOOKS:
            ORGANIZATION_SETUP_HOOKS.append(taxonomy_install_default)
