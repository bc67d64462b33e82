"""How API-key authentication appears in the OpenAPI document."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "organizations.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "tk_<prefix>_<secret>",
            "description": "A project or organization key with the scopes ingest, read and/or manage.",
        }
