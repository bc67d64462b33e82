"""Query parameters of GET /api/v1/events."""
import re
from datetime import UTC, datetime

import django_filters
from django import forms

from events.models import Event

RFC3339_HELP = "RFC 3339 timestamp; without an offset it means UTC."


class MultiValueCharFilter(django_filters.BaseInFilter, django_filters.CharFilter):
    pass


# A '+' typed into a URL arrives as a space ("...T00:00:00 01:00"): curl sends it unencoded.
_SPACED_OFFSET = re.compile(r"(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:\d{2})$")


class RFC3339Field(forms.DateTimeField):
    """RFC 3339 as ingestion reads it: an offset or Z (either case), none meaning UTC."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        text = _SPACED_OFFSET.sub(r"\1+\2", str(value).strip())
        try:
            parsed = datetime.fromisoformat(text.upper())
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        except (ValueError, OverflowError):
            raise forms.ValidationError(
                f"'{text[:40]}' is not an RFC 3339 timestamp (2026-11-01T12:00:00Z).", code="invalid") from None


class RFC3339Filter(django_filters.Filter):
    field_class = RFC3339Field


class TagFilter(django_filters.Filter):
    """`tag` may repeat: events carrying any of the tags."""

    field_class = forms.CharField

    def filter(self, queryset, value):
        tags = [tag for tag in self.parent.data.getlist(self.field_name) if tag]
        return queryset.filter(tags__overlap=tags) if tags else queryset


class EventFilter(django_filters.FilterSet):
    project = django_filters.CharFilter(field_name="project__slug")
    environment = django_filters.CharFilter()
    provider = django_filters.CharFilter()
    application = django_filters.CharFilter()
    action = django_filters.CharFilter()
    user = django_filters.CharFilter(field_name="user_id")
    model = django_filters.CharFilter()
    status = django_filters.CharFilter()
    tag = TagFilter(field_name="tag")
    trace = django_filters.CharFilter(field_name="traces", lookup_expr="contains", method="filter_trace")
    since = RFC3339Filter(field_name="timestamp", lookup_expr="gte", help_text=RFC3339_HELP)
    until = RFC3339Filter(field_name="timestamp", lookup_expr="lt", help_text=RFC3339_HELP)

    class Meta:
        model = Event
        fields = []

    def filter_trace(self, queryset, name, value):
        return queryset.filter(traces__contains=[value])
