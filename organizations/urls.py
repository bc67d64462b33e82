from django.urls import path

from organizations import apis

urlpatterns = [
    path("me", apis.KeyInfoApi.as_view(), name="key-info"),
    path("projects", apis.ProjectListApi.as_view(), name="project-list"),
    path("projects/<slug:slug>", apis.ProjectDetailApi.as_view(), name="project-detail"),
]
