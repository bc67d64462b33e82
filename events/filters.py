"""Query parameters of GET /api/v1/events."""
import django_filters
from django import forms

from events.models import Event

RFC3339_HELP = "RFC 3339 timestamp; without an offset it means UTC."


class MultiValueCharFilter(django_filters.BaseInFilter, django_filters.CharFilter):
    pass


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
    since = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte", help_text=RFC3339_HELP)
    until = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="lt", help_text=RFC3339_HELP)

    class Meta:
        model = Event
        fields = []

    def filter_trace(self, queryset, name, value):
        return queryset.filter(traces__contains=[value])
