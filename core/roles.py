"""The three roles, as groups with permissions.

- **agent** (call centre): reads subscriptions, customers, devices, requests, runs and the
  catalogue, performs subscription actions, keeps customer accounts up to date, runs utilities;
  not the scheduler's internals (django-celery-beat's schedules and periodic tasks).
- **operator** (back office): reads everything, sets up providers, distributors and CA IDs,
  defines, schedules and runs batch runs, retries Failed requests.
- **administrator**: everything, including products, users and roles.

Nobody, not even an administrator, may add, change or delete a provisioning request: requests
are created by the system only. The groups are brought up to date after every ``migrate``: this
module is the one place roles are defined (the back office shows them read-only), and a group
found otherwise than this module says (changed in a shell or the database) is put right with a
warning naming each permission granted or withdrawn.
"""

import sys

from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType

AGENT = "agent"
OPERATOR = "operator"
ADMINISTRATOR = "administrator"
ROLES = (AGENT, OPERATOR, ADMINISTRATOR)
# Seeing and changing the scheduler's own periodic tasks (the heartbeat, sweepers, the watch):
# django-celery-beat's models have no such permission, so ensure_roles creates it.
SYSTEM_TASKS = ("django_celery_beat", "periodictask", "manage_system_periodictask")
SYSTEM_TASKS_PERMISSION = f"{SYSTEM_TASKS[0]}.{SYSTEM_TASKS[2]}"

DOMAIN_APPS = ("catalogue", "subscriptions", "providers", "runs", "django_celery_beat")
# What an agent works with; the scheduler's rows (django_celery_beat) are the operators'.
AGENT_APPS = ("catalogue", "subscriptions", "providers", "runs")

# Permissions are "app_label.codename"; "app_label.view_*" means every view permission of the app.
ROLE_PERMISSIONS: dict[str, list[str]] = {
    AGENT: [
        *(f"{app}.view_*" for app in AGENT_APPS),
        "subscriptions.perform_actions",
        "subscriptions.add_customeraccount",
        "subscriptions.change_customeraccount",
    ],
    OPERATOR: [
        *(f"{app}.view_*" for app in DOMAIN_APPS),
        "providers.retry_provisioningrequest",
        "monitoring.view_metrics",
        "monitoring.view_incident",
        *(f"monitoring.{verb}_alertchannel" for verb in ("view", "add", "change", "delete")),
        *(f"runs.{verb}_rundefinition" for verb in ("add", "change", "delete", "operate")),
        *(
            f"catalogue.{verb}_{model}"
            for verb in ("add", "change", "delete")
            for model in ("provider", "distributor", "productcaid")
        ),
        *(
            f"django_celery_beat.{verb}_{model}"
            for verb in ("add", "change", "delete")
            for model in ("periodictask", "intervalschedule", "crontabschedule", "clockedschedule")
        ),
    ],
    ADMINISTRATOR: [
        *(f"{app}.*" for app in DOMAIN_APPS),
        "auth.*",
        "monitoring.*",
    ],
}

# Whatever a pattern says, these are never granted: requests and the audit trail are written by
# the system only, and subscriptions, services, devices and pairings change only through actions
# (``subscriptions.perform_actions``).
NEVER_GRANTED = {
    *(
        f"providers.{verb}_{model}"
        for verb in ("add", "change", "delete")
        for model in ("provisioningrequest", "archivedrequest")
    ),
    *(
        f"runs.{verb}_{model}"
        for verb in ("add", "change", "delete")
        for model in ("processrun", "processrunerror")
    ),
    *(
        f"monitoring.{verb}_{model}"
        for verb in ("add", "change", "delete")
        for model in ("incident", "providerhealth")
    ),
    *(
        f"subscriptions.{verb}_{model}"
        for verb in ("add", "change", "delete")
        for model in (
            "subscription",
            "subscriptionservice",
            "installeditem",
            "pairing",
            "subscriptionevent",
        )
    ),
}


def _resolve(patterns: list[str]) -> list[Permission]:
    perms = Permission.objects.select_related("content_type")
    chosen = []
    for perm in perms:
        key = f"{perm.content_type.app_label}.{perm.codename}"
        if key in NEVER_GRANTED:
            continue
        for pattern in patterns:
            app, _, codename = pattern.partition(".")
            if app != perm.content_type.app_label:
                continue
            if codename == "*" or codename == perm.codename:
                chosen.append(perm)
                break
            if codename.endswith("*") and perm.codename.startswith(codename[:-1]):
                chosen.append(perm)
                break
    return chosen


def _ensure_system_tasks_permission() -> None:
    app_label, model, codename = SYSTEM_TASKS
    content_type = ContentType.objects.get_for_model(apps.get_model(app_label, model))
    Permission.objects.get_or_create(
        content_type=content_type,
        codename=codename,
        defaults={"name": "Can see and change the scheduler's own periodic tasks"},
    )


def ensure_roles(verbosity: int = 1, stdout=None, **_kwargs) -> None:
    """Create the role groups and set their permissions exactly (idempotent), saying what it
    changed in a group that already existed."""
    # Permissions of apps listed after this one are only created later in migrate's
    # post_migrate pass; create them all now so every role is complete on the first migrate.
    for app_config in apps.get_app_configs():
        create_permissions(app_config, verbosity=0)
    _ensure_system_tasks_permission()
    for role in ROLES:
        group, created = Group.objects.get_or_create(name=role)
        wanted = set(_resolve(ROLE_PERMISSIONS[role]))
        found = set(group.permissions.select_related("content_type"))
        if wanted == found:
            continue
        group.permissions.set(wanted)
        if not created and verbosity:
            (stdout or sys.stdout).write(_differences(role, wanted - found, found - wanted))


def _differences(role: str, granted: set[Permission], withdrawn: set[Permission]) -> str:
    def names(perms):
        return ", ".join(sorted(f"{p.content_type.app_label}.{p.codename}" for p in perms))

    lines = [f"Warning: role {role!r} differed from core/roles.py and was put right:"]
    if granted:
        lines.append(f"  granted {names(granted)}")
    if withdrawn:
        lines.append(f"  withdrawn {names(withdrawn)}")
    return "\n".join(lines) + "\n"
