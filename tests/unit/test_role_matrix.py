"""Every endpoint and back-office page, called as every role, against docs/roles.md's matrix.

The endpoints come from the URL resolver, so a new endpoint or page without its row in
docs/roles.md (*Who may do what*) fails here, as does a row for something no longer there.
Each row's calls run in one savepoint per role, rolled back after, so every role meets the
same data.
"""

import re
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core import roles
from providers.models import ConnectorToken, ProvisioningRequest
from runs.models import ProcessRun, RunDefinition

ROLES_DOC = Path(__file__).resolve().parents[2] / "docs" / "roles.md"
ROLES = ("anonymous", "agent", "operator", "administrator", "connector")
ALLOWED, REFUSED = "✓", "✗"

# Django's own admin plumbing: public (login), or the same page a model row checks already.
ADMIN_PLUMBING = {
    "login",
    "logout",
    "password_change",
    "password_change_done",
    "autocomplete",
    "jsi18n",
    "view_on_site",
    "app_list",
}
ADMIN_MODEL_PAGE = re.compile(r"_(changelist|add|change|delete|history)$")


# --- The endpoints, from the URL resolver --------------------------------------------------------


def _patterns(patterns, prefix="", namespace=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _patterns(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        else:
            yield "/" + prefix + str(pattern.pattern), namespace, pattern


def _template(route: str) -> str:
    """``/api/v1/^services/(?P<pk>[^/.]+)/stop/$`` → ``/api/v1/services/{id}/stop/``."""
    route = route.replace("^", "").replace("$", "")
    route = re.sub(r"\(\?P<pk>[^)]*\)", "{id}", route)
    route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
    return route.replace("{object_id}", "{id}")


def _methods(pattern: URLPattern) -> list[str]:
    callback = pattern.callback
    if getattr(callback, "actions", None):  # a DRF viewset route
        # DRF adds "head" to a GET route's actions once it has been called: HEAD is GET.
        return sorted(m.upper() for m in callback.actions if m != "head")
    view = getattr(callback, "cls", None)  # a DRF APIView: the methods it defines
    if view is not None:
        return sorted(
            m.upper()
            for m in view.http_method_names
            if m not in ("options", "head") and hasattr(view, m)
        )
    return ["GET"]  # a Django page (the / redirect answers every method alike)


CUSTOM_ADMIN_METHODS = {
    # Admin views are functions: the method each one answers.
    "utilities-search": "GET",
    "utilities-request-states": "GET",
    "utilities-subscription": "GET",
    "utilities-run": "GET",
    "index": "GET",
    "monitoring-dashboard": "GET",
    "subscriptions_subscription_action": "POST",
    "subscriptions_subscription_status": "GET",
    "providers_provisioningrequest_retry": "POST",
    "catalogue_provider_test_connection": "POST",
    "runs_rundefinition_preview": "GET",
    "runs_rundefinition_preview_csv": "GET",
    "runs_rundefinition_operate": "POST",
    "runs_processrun_progress": "GET",
    "runs_processrun_errors_csv": "GET",
}


def endpoints() -> tuple[dict[str, str], dict[str, str], list[str]]:
    """(``METHOD /path`` of every API and other endpoint, back-office model pages by path,
    admin views this test does not know how to call)."""
    calls, models, unknown = {}, {}, []
    for route, namespace, pattern in _patterns(get_resolver().url_patterns):
        if "format>" in route:
            continue  # DRF's .json twin of a route already listed
        path = _template(route)
        if namespace == "admin:":
            name = pattern.name
            if name in ADMIN_PLUMBING or name is None:
                continue
            if ADMIN_MODEL_PAGE.search(name):
                if name.endswith("_changelist"):
                    models[path] = name
                continue
            if name not in CUSTOM_ADMIN_METHODS:
                unknown.append(f"{name} ({path})")
                continue
            calls[f"{CUSTOM_ADMIN_METHODS[name]} {path}"] = name
            continue
        for method in _methods(pattern):
            calls[f"{method} {path}"] = pattern.name or ""
    return calls, models, unknown


# --- The matrix, from docs/roles.md --------------------------------------------------------------


def documented_matrix() -> dict[str, dict[str, str]]:
    """``METHOD /path`` or a back-office model's path → role → cell."""
    text = ROLES_DOC.read_text()
    section = text[text.index("### Who may do what") :]
    section = section[: section.index("\n## ")]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != len(ROLES) + 1 or not cells[0].startswith("`"):
            continue
        key = cells[0].strip("`")
        assert key not in rows, f"{key} has two rows in docs/roles.md"
        rows[key] = dict(zip(ROLES, cells[1:], strict=True))
    return rows


def test_every_endpoint_and_page_has_its_row_and_every_row_an_endpoint(db):
    calls, models, unknown = endpoints()
    assert not unknown, f"admin views this test cannot call yet (CUSTOM_ADMIN_METHODS): {unknown}"
    matrix = documented_matrix()
    missing = sorted((set(calls) | set(models)) - set(matrix))
    assert not missing, f"endpoints without a row in docs/roles.md's matrix: {missing}"
    stale = sorted(set(matrix) - set(calls) - set(models))
    assert not stale, f"rows of docs/roles.md's matrix for no endpoint: {stale}"
    assert set(models) == {
        f"/admin/{m._meta.app_label}/{m._meta.model_name}/" for m in admin.site._registry
    }


# --- Calling them --------------------------------------------------------------------------------


@pytest.fixture
def world(catalog, subscribe):
    sub = subscribe("AGRICULTURE")
    definition = RunDefinition.objects.create(
        name="Nightly reset", run_type="reset_subscriptions", provider=catalog.provider
    )
    run = ProcessRun.objects.create(definition=definition, trigger="manual")
    request = sub.provisioning_requests.first()
    ProvisioningRequest.objects.filter(pk=request.pk).update(state="failed", last_error="timed out")
    ids = {
        "subscriptions": sub.pk,
        "services": sub.services.first().pk,
        "installed-items": sub.installed_items.first().pk,
        "products": catalog.products["AGRICULTURE"].pk,
        "providers": catalog.provider.pk,
        "provider": catalog.provider.pk,
        "distributors": catalog.main.pk,
        "requests": request.pk,
        "run-definitions": definition.pk,
        "process-runs": run.pk,
        "subscription": sub.pk,
        "rundefinition": definition.pk,
        "processrun": run.pk,
        "provisioningrequest": request.pk,
    }
    people = {}
    for role in (roles.AGENT, roles.OPERATOR, roles.ADMINISTRATOR):
        person = User.objects.create_user(f"{role}-m", password="pw", is_staff=True)
        person.groups.add(Group.objects.get(name=role))
        people[role] = person
    _, connector_key = ConnectorToken.issue(catalog.provider, "matrix connector")
    return {
        "ids": ids,
        "people": people,
        "connector": connector_key,
        "sub": sub,
        "catalog": catalog,
    }


def _url(key: str, world) -> str:
    path = key.split(" ", 1)[1]
    ids = world["ids"]
    parts = path.split("/")
    # The resource an {id} names is the part just before it (…/provisioningrequest/{id}/…).
    resource = parts[parts.index("{id}") - 1] if "{id}" in parts else None
    values = {
        "id": ids.get(resource),
        "subscription_id": world["sub"].pk,
        "provider_id": world["catalog"].provider.pk,
        "code": "reset_subscription",
        "action": "deactivate",
        "operation": "submit",
    }
    url = re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), path)
    if path == "/api/v1/utilities/":
        url += f"?subscription={world['sub'].pk}"
    return url


def _client(role: str, world, admin_page: bool) -> APIClient:
    client = APIClient()
    if role == "connector":
        client.credentials(HTTP_AUTHORIZATION=f"Token {world['connector']}")
    elif role != "anonymous":
        person = world["people"][role]
        if admin_page:
            client.force_login(person)  # the back office is signed into
        else:
            key = Token.objects.get_or_create(user=person)[0].key
            client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


class _Undo(Exception):
    pass


def _seen(client, method: str, url: str) -> tuple[str, int]:
    """What the role met: ✓ (let through: any answer but a refusal), ✗ (refused), or ? (an
    answer that says the test called it wrong)."""
    response = None
    try:
        with transaction.atomic():
            response = getattr(client, method.lower())(url, {}, format="json")
            raise _Undo
    except _Undo:
        pass
    status = response.status_code
    to_login = status == 302 and response["Location"].startswith("/admin/login/")
    if status in (401, 403) or to_login:
        return REFUSED, status
    if status in (404, 405) or status >= 500:
        return "?", status
    return ALLOWED, status


def _admin_model_cell(client, path: str) -> tuple[str, str]:
    listed, list_status = _seen(client, "GET", path)
    added, add_status = _seen(client, "GET", path + "add/")
    if listed == REFUSED and added == REFUSED:
        return REFUSED, f"{list_status}/{add_status}"
    if listed == ALLOWED and added == REFUSED:
        return "view", f"{list_status}/{add_status}"
    if listed == ALLOWED and added == ALLOWED:
        return "view, add", f"{list_status}/{add_status}"
    return "?", f"{list_status}/{add_status}"


def _expected_refusal(role: str, admin_page: bool) -> set[int]:
    if admin_page:
        return {302} if role in ("anonymous", "connector") else {403}
    return {401} if role == "anonymous" else {403}


ROWS = sorted(documented_matrix())


@pytest.mark.parametrize("key", ROWS)
def test_each_role_meets_the_documented_matrix(world, key):
    expected = documented_matrix()[key]
    model_page = " " not in key
    admin_page = model_page or key.split(" ", 1)[1].startswith("/admin/")
    differences = []
    for role in ROLES:
        client = _client(role, world, admin_page)
        if model_page:
            seen, status = _admin_model_cell(client, key)
            refusal = _expected_refusal(role, admin_page=True).pop()
            if seen == REFUSED and status != f"{refusal}/{refusal}":
                seen = f"refused with {status}"
        else:
            seen, status = _seen(client, key.split(" ")[0], _url(key, world))
            if seen == REFUSED and status not in _expected_refusal(role, admin_page):
                seen = f"refused with {status}"
        if seen != expected[role]:
            differences.append(f"{role}: docs say {expected[role]!r}, saw {seen!r} ({status})")
    assert not differences, f"{key}: " + "; ".join(differences)
