from django.apps import AppConfig


class QueriesConfig(AppConfig):
    name = "queries"
    verbose_name = "Reports and saved queries"

    def ready(self):
        from organizations.services import ORGANIZATION_SETUP_HOOKS
        from queries.services import saved_query_install_builtins

        # Every new organization starts with the four built-in saved queries.
        if saved_query_install_builtins not in ORGANIZATION_SETUP_HOOKS:
            ORGANIZATION_SETUP_HOOKS.append(saved_query_install_builtins)
