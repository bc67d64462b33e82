"""The dashboard's pages: `/login/`, `/`, and every organization's pages under `/o/<org_slug>/`."""
from django.contrib.auth import views as auth_views
from django.urls import path

from queries.views import budgets, customers, events, explore, health, keys, overview, saved

app_name = "dashboard"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="dashboard/login.html", redirect_authenticated_user=True),
         name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="dashboard:login"), name="logout"),
    path("", overview.home, name="home"),
    path("switch/", overview.switch, name="switch"),
    path("o/<slug:org_slug>/", overview.overview, name="overview"),
    path("o/<slug:org_slug>/explore/", explore.explore, name="explore"),
    path("o/<slug:org_slug>/explore/save/", explore.explore_save, name="explore_save"),
    path("o/<slug:org_slug>/saved-queries/", saved.saved_queries, name="saved_queries"),
    path("o/<slug:org_slug>/saved-queries/<int:saved_query_id>/", saved.saved_query, name="saved_query"),
    path("o/<slug:org_slug>/saved-queries/<int:saved_query_id>/delete/", saved.saved_query_remove,
         name="saved_query_delete"),
    path("o/<slug:org_slug>/customers/", customers.customers, name="customers"),
    path("o/<slug:org_slug>/budgets/", budgets.budgets, name="budgets"),
    path("o/<slug:org_slug>/budgets/<int:budget_id>/", budgets.budget_change, name="budget_change"),
    path("o/<slug:org_slug>/taxonomy-health/", health.taxonomy_health, name="taxonomy_health"),
    path("o/<slug:org_slug>/events/", events.events, name="events"),
    path("o/<slug:org_slug>/events/view/", events.event_detail, name="event_detail"),
    path("o/<slug:org_slug>/api-keys/", keys.api_keys, name="api_keys"),
    path("o/<slug:org_slug>/api-keys/<int:api_key_id>/revoke/", keys.api_key_revoke_view, name="api_key_revoke"),
]
