from django.urls import path

from events import apis

urlpatterns = [
    path("events", apis.EventCollectionApi.as_view(), name="events"),
    path("events/validate", apis.EventValidateApi.as_view(), name="events-validate"),
    path("taxonomy", apis.TaxonomyApi.as_view(), name="taxonomy"),
]
