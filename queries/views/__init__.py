"""The dashboard: server-rendered pages for the people of an organization.

Every page lives under `/o/<org_slug>/` and is reached through `access.org_page`,
which answers 404 to anyone who is not a member of that organization (exactly as
for an organization that does not exist) and 403 to a member whose role may not
use an admin-only action. Numbers come from the same selectors as the API
(`queries.selectors.report_run` and friends, with `api_key=None`: a person sees the
whole organization); amounts are shown with `koala.money.money_display`.
"""
