"""Saved queries: named report bodies an organization runs again and again."""
from django.db import models

from organizations.models import Organization, Project


class SavedQuery(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="saved_queries")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, null=True, blank=True, related_name="+",
                                help_text="Empty: the whole organization. Set: the query reads only this project.")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # A report body (POST /api/v1/reports) that may give "range" instead of from/to.
    query = models.JSONField()
    # One of the queries every organization starts with; may still be changed or deleted.
    builtin = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "name"]
        verbose_name_plural = "saved queries"
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="savedquery_unique_name_per_org"),
        ]
        indexes = [models.Index(fields=["organization", "project"], name="savedquery_org_project")]

    def __str__(self) -> str:
        return self.name

