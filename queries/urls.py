from django.urls import path

from queries import apis

urlpatterns = [
    path("reports", apis.ReportApi.as_view(), name="reports"),
    path("taxonomy/health", apis.TaxonomyHealthApi.as_view(), name="taxonomy-health"),
    path("saved-queries", apis.SavedQueryCollectionApi.as_view(), name="saved-query-list"),
    path("saved-queries/<int:saved_query_id>", apis.SavedQueryDetailApi.as_view(), name="saved-query-detail"),
    path("saved-queries/<int:saved_query_id>/run", apis.SavedQueryRunApi.as_view(), name="saved-query-run"),
]
