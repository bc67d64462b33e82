from django.urls import path

from budgets import apis

urlpatterns = [
    path("budgets", apis.BudgetCollectionApi.as_view(), name="budget-list"),
    path("budgets/<int:budget_id>", apis.BudgetDetailApi.as_view(), name="budget-detail"),
    path("budgets/<int:budget_id>/status", apis.BudgetStatusApi.as_view(), name="budget-status"),
]
