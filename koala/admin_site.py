"""The admin site, opened to organization owners and admins.

Django's admin normally admits `is_staff` users with model permissions. Here an
owner or admin of an organization may enter and manage that organization's objects;
`TenantAdmin` (koala/admin.py) decides what each of them sees. Superusers see all.
"""
from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.contenttypes.models import ContentType
from django.db.models import Q, TextField
from django.db.models.functions import Cast

from organizations.selectors import organization_ids_administered

ADMIN_ORG_IDS_ATTRIBUTE = "_koala_admin_organization_ids"


def administered_organization_ids(request) -> set[int]:
    """The organizations the signed-in person administers, computed once per request."""
    cached = getattr(request, ADMIN_ORG_IDS_ATTRIBUTE, None)
    if cached is None:
        cached = organization_ids_administered(user=request.user)
        setattr(request, ADMIN_ORG_IDS_ATTRIBUTE, cached)
    return cached


def may_use_admin(request) -> bool:
    user = request.user
    if not user.is_active:
        return False
    return user.is_superuser or bool(administered_organization_ids(request))


class OrganizationAdminAuthenticationForm(AdminAuthenticationForm):
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": "Please enter the email and password of an organization owner or admin.",
        "not_admin": "This account is not an owner or admin of any organization; ask one of them for the role.",
    }

    def __init__(self, request=None, *args, **kwargs):
        super().__init__(request, *args, **kwargs)
        # People sign in with their email (organizations.authentication.EmailOrUsernameBackend).
        username = self.fields["username"]
        username.label = "Email"
        username.max_length = 254
        username.widget.attrs.update({"maxlength": 254, "autocomplete": "email"})

    def confirm_login_allowed(self, user):
        if not user.is_active:
            raise forms.ValidationError(self.error_messages["inactive"], code="inactive")
        if user.is_superuser:
            return
        if not organization_ids_administered(user=user):
            raise forms.ValidationError(self.error_messages["not_admin"], code="not_admin")


class KoalaAdminSite(admin.AdminSite):
    site_header = "TrackingKoala administration"
    site_title = "TrackingKoala admin"
    index_title = "Your organizations"
    login_form = OrganizationAdminAuthenticationForm

    def has_permission(self, request) -> bool:
        return may_use_admin(request)

    def get_log_entries(self, request):
        """The index's "Recent actions", narrowed to objects the person may see today.

        Django lists a person's own log entries with each object's name. Someone who
        once administered another organization, and now does not, would still read
        that organization's object names there. An entry is listed while its object
        is in the `get_queryset` of a model admin that lets them view it, so the
        model admins (`TenantAdmin`) stay the one place that decides. Entries of
        deleted objects cannot be placed in an organization and are left out.
        """
        entries = super().get_log_entries(request)
        if request.user.is_active and request.user.is_superuser:
            return entries
        visible = Q(pk__in=[])
        for model, model_admin in self._registry.items():
            if not model_admin.has_view_or_change_permission(request):
                continue
            object_ids = model_admin.get_queryset(request).order_by().annotate(
                _object_id=Cast("pk", output_field=TextField())).values("_object_id")
            visible |= Q(content_type=ContentType.objects.get_for_model(model), object_id__in=object_ids)
        return entries.filter(visible)
