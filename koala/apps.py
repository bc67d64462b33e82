from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class KoalaConfig(AppConfig):
    default = True
    name = "koala"
    verbose_name = "TrackingKoala platform"


class KoalaAdminConfig(admin_apps.AdminConfig):
    """The admin, opened to organization owners and admins (see koala.admin_site)."""

    default = False
    default_site = "koala.admin_site.KoalaAdminSite"
