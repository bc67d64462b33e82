"""The admin site, opened to organization owners and admins.

Django's admin normally admits `is_staff` users with model permissions. Here an
owner or admin of an organization may enter and manage that organization's objects;
`TenantAdmin` (koala/admin.py) decides what each of them sees. Superusers see all.
"""
from django import forms
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm

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
