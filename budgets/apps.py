from django.apps import AppConfig


class BudgetsConfig(AppConfig):
    name = "budgets"
    verbose_name = "Budgets and alerts"

    def ready(self):
        from budgets.tasks import budgets_request_evaluation
        from events.ingest import INGEST_COMMITTED_HOOKS

        # Ingestion asks for an evaluation of the budgets its events touch.
        if budgets_request_evaluation not in INGEST_COMMITTED_HOOKS:
            INGEST_COMMITTED_HOOKS.append(budgets_request_evaluation)
