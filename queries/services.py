"""Writes: saved queries, validated like a report before they are stored."""
import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from koala.exceptions import InvalidRequest, KoalaError
from organizations.models import ApiKey, Organization, Project
from queries.builtins import BUILTIN_QUERIES
from queries.models import SavedQuery
from queries.rollups import rollup_fold, rollup_rebuild  # noqa: F401  (how other apps reach the rollups)
from queries.selectors import report_scope
from queries.spec import report_spec_parse

logger = logging.getLogger(__name__)

EDITABLE_FIELDS = ("name", "description", "project", "query")


def saved_query_validate(*, organization: Organization, api_key: ApiKey | None, query,
                         project: Project | None) -> None:
    """Raises InvalidRequest (or NotFound for a project the key cannot see) unless
    `query` runs: a report body whose window may be a relative `range`."""
    spec = report_spec_parse(query, timezone_name=organization.timezone, now=timezone.now(), allow_range=True,
                             prefix="query.")
    report_scope(organization=organization, api_key=api_key, spec=spec, project=project)


def _check_may_write(*, api_key: ApiKey | None, project: Project | None) -> None:
    if api_key is None or api_key.project_id is None:
        return
    if project is None or project.pk != api_key.project_id:
        raise KoalaError("permission_denied", f"This project key may only save queries of project "
                         f"'{api_key.project.slug}'.", status=403)


def _check_name(*, organization: Organization, name, exclude_pk: int | None = None) -> str:
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 200:
        raise InvalidRequest("name: a saved query needs a name of 1-200 characters.", details={"field": "name"})
    name = name.strip()
    if SavedQuery.objects.filter(organization=organization, name=name).exclude(pk=exclude_pk).exists():
        raise InvalidRequest(f"name: a saved query named '{name}' already exists; choose another name.",
                             details={"field": "name"})
    return name


def _save(saved_query: SavedQuery, **kwargs) -> SavedQuery:
    try:
        with transaction.atomic():
            saved_query.save(**kwargs)
    except IntegrityError:  # a concurrent save took the name
        raise InvalidRequest(f"name: a saved query named '{saved_query.name}' already exists; choose another "
                             "name.", details={"field": "name"}) from None
    return saved_query


def saved_query_create(*, organization: Organization, api_key: ApiKey | None, name: str, query: dict,
                       description: str = "", project: Project | None = None) -> SavedQuery:
    _check_may_write(api_key=api_key, project=project)
    name = _check_name(organization=organization, name=name)
    saved_query_validate(organization=organization, api_key=api_key, query=query, project=project)
    saved_query = _save(SavedQuery(organization=organization, project=project, name=name,
                                   description=description, query=query))
    logger.info("saved_query.created", extra={"organization_id": organization.pk, "saved_query_id": saved_query.pk})
    return saved_query


def saved_query_update(*, saved_query: SavedQuery, api_key: ApiKey | None, changes: dict) -> SavedQuery:
    """Applies `changes` (any of name, description, project, query) after checking
    the result as a whole: the query must still run within the new project."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise InvalidRequest(f"{sorted(unknown)[0]}: cannot be changed; change {', '.join(EDITABLE_FIELDS)}.")
    organization = saved_query.organization
    _check_may_write(api_key=api_key, project=saved_query.project)
    project = changes.get("project", saved_query.project)
    _check_may_write(api_key=api_key, project=project)
    if "name" in changes:
        changes["name"] = _check_name(organization=organization, name=changes["name"], exclude_pk=saved_query.pk)
    query = changes.get("query", saved_query.query)
    saved_query_validate(organization=organization, api_key=api_key, query=query, project=project)
    for field, value in changes.items():
        setattr(saved_query, field, value)
    _save(saved_query, update_fields=[*changes, "updated_at"])
    logger.info("saved_query.updated", extra={"organization_id": organization.pk, "saved_query_id": saved_query.pk})
    return saved_query


def saved_query_delete(*, saved_query: SavedQuery, api_key: ApiKey | None) -> None:
    _check_may_write(api_key=api_key, project=saved_query.project)
    logger.info("saved_query.deleted", extra={"organization_id": saved_query.organization_id,
                                              "saved_query_id": saved_query.pk})
    saved_query.delete()


def saved_query_install_builtins(*, organization: Organization) -> None:
    """The four queries every organization starts with; a name already taken is kept."""
    SavedQuery.objects.bulk_create(
        [SavedQuery(organization=organization, name=builtin["name"], description=builtin["description"],
                    query=builtin["query"], builtin=True) for builtin in BUILTIN_QUERIES],
        ignore_conflicts=True,
    )
