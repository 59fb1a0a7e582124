"""People in the back office: roles in the user list, roles defined in one place (core/roles.py)
and what `migrate` says when a role group was changed elsewhere, and the scheduler's own
periodic tasks kept to administrators."""

import io
import json
import re

import pytest
from celery import current_app
from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_beat.schedulers import ModelEntry

from catalogue.models import Provider
from core import roles
from runs import services
from runs.models import RunDefinition
from tests.fixtures import staff_user


def login(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password="pw-" + user.username)
    return client


def cells(response, column: str) -> list[str]:
    """The texts of one column of the back office's list, top to bottom."""
    html = response.content.decode()
    return [
        re.sub(r"<[^>]+>", "", cell).strip()
        for cell in re.findall(rf'<t[dh] class="field-{column}[^"]*">(.*?)</t[dh]>', html, re.S)
    ]


# --- The user list ----------------------------------------------------------------------------


@pytest.fixture
def people(administrator, operator, agent):
    both = staff_user("both", roles.AGENT)
    both.groups.add(Group.objects.get(name=roles.OPERATOR))
    User.objects.create_user("nobody", password="pw-nobody")
    return administrator


def test_the_user_list_shows_each_users_roles(people):
    response = login(people).get(reverse("admin:auth_user_changelist") + "?o=1")
    assert cells(response, "username") == ["administrator", "agent", "both", "nobody", "operator"]
    assert cells(response, "role_names") == [
        "administrator",
        "agent",
        "agent, operator",
        "—",
        "operator",
    ]


@pytest.mark.parametrize(
    ("role", "listed"),
    [
        ("operator", ["both", "operator"]),
        ("agent", ["agent", "both"]),
        ("administrator", ["administrator"]),
        ("none", ["nobody"]),
    ],
)
def test_the_user_list_filters_by_role(people, role, listed):
    response = login(people).get(reverse("admin:auth_user_changelist") + f"?o=1&role={role}")
    assert cells(response, "username") == listed


def test_the_user_lists_queries_do_not_grow_with_its_users(people, django_assert_max_num_queries):
    client = login(people)
    url = reverse("admin:auth_user_changelist")
    client.get(url)
    for n in range(20):
        staff_user(f"extra{n}", roles.AGENT)
    with django_assert_max_num_queries(12):
        response = client.get(url)
    assert len(cells(response, "username")) == 25


# --- Roles in one place -----------------------------------------------------------------------


def test_a_roles_page_is_read_only_and_says_where_its_permissions_come_from(administrator):
    client = login(administrator)
    role = Group.objects.get(name=roles.OPERATOR)
    before = set(role.permissions.all())
    url = reverse("admin:auth_group_change", args=[role.pk])
    page = client.get(url).content.decode()
    assert "defined in core/roles.py and set by every migrate" in page
    assert 'name="permissions"' not in page  # no widget to change them
    assert "<li>providers.retry_provisioningrequest: Can retry Failed provisioning requests" in page
    refused = client.post(url, {"name": "operator", "permissions": []})
    assert refused.status_code == 403
    assert client.post(reverse("admin:auth_group_delete", args=[role.pk])).status_code == 403
    role.refresh_from_db()
    assert set(role.permissions.all()) == before and role.name == "operator"


def test_other_groups_stay_the_administrators_to_edit(administrator):
    client = login(administrator)
    response = client.post(
        reverse("admin:auth_group_add"),
        {"name": "auditors", "permissions": [Permission.objects.get(codename="view_product").pk]},
    )
    assert response.status_code == 302
    group = Group.objects.get(name="auditors")
    assert client.get(reverse("admin:auth_group_change", args=[group.pk])).status_code == 200
    call_command("migrate", verbosity=1, stdout=io.StringIO())
    assert list(group.permissions.values_list("codename", flat=True)) == ["view_product"]


def test_bulk_delete_of_a_role_is_refused(administrator):
    client = login(administrator)
    role = Group.objects.get(name=roles.AGENT)
    url = reverse("admin:auth_group_changelist")
    chosen = {"action": "delete_selected", "_selected_action": [role.pk]}
    assert "<title>Cannot delete group" in client.post(url, chosen).content.decode()
    assert client.post(url, {**chosen, "post": "yes"}).status_code == 403
    assert Group.objects.filter(name=roles.AGENT).exists()


def test_migrate_names_what_it_puts_right_in_a_role_changed_elsewhere(db):
    # As an administrator in a shell (the back office refuses it): an operator may now add
    # products, and may no longer retry requests.
    operator = Group.objects.get(name=roles.OPERATOR)
    operator.permissions.add(Permission.objects.get(codename="add_product"))
    operator.permissions.remove(Permission.objects.get(codename="retry_provisioningrequest"))
    out = io.StringIO()
    call_command("migrate", verbosity=1, stdout=out)
    said = out.getvalue()
    assert "Warning: role 'operator' differed from core/roles.py and was put right:" in said
    assert "granted providers.retry_provisioningrequest" in said
    assert "withdrawn catalogue.add_product" in said
    assert "'agent'" not in said and "'administrator'" not in said
    codenames = set(operator.permissions.values_list("codename", flat=True))
    assert "retry_provisioningrequest" in codenames and "add_product" not in codenames
    again = io.StringIO()
    call_command("migrate", verbosity=1, stdout=again)
    assert "Warning" not in again.getvalue()  # nothing to put right, nothing said


# --- The scheduler's own periodic tasks ---------------------------------------------------------


@pytest.fixture
def scheduled(catalog):
    """The scheduler's own tasks as beat puts them into the table, and a submitted run
    definition's task."""
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        ModelEntry.from_entry(name, app=current_app, **entry)
    definition = RunDefinition.objects.create(
        name="Nightly reset",
        run_type="reset_subscriptions",
        provider=Provider.objects.get(name=catalog.provider.name),
        schedule=RunDefinition.Schedule.INTERVAL,
        every=1,
        unit="days",
    )
    services.submit(definition)
    definition.refresh_from_db()
    return definition.periodic_task


def system_task() -> PeriodicTask:
    return PeriodicTask.objects.get(name="worker-heartbeat")


def test_operators_list_only_run_definitions_tasks(scheduled, operator, administrator):
    url = reverse("admin:django_celery_beat_periodictask_changelist") + "?o=1"
    assert cells(login(operator).get(url), "name") == [scheduled.name]
    seen = cells(login(administrator).get(url), "name")
    assert set(settings.CELERY_BEAT_SCHEDULE) | {scheduled.name} == set(seen)


def test_operators_may_not_open_change_or_delete_a_system_task(scheduled, operator):
    client = login(operator)
    heartbeat = system_task()
    change = reverse("admin:django_celery_beat_periodictask_change", args=[heartbeat.pk])
    delete = reverse("admin:django_celery_beat_periodictask_delete", args=[heartbeat.pk])
    assert client.get(change).status_code == 403
    assert client.post(change, {"name": "worker-heartbeat", "enabled": ""}).status_code == 403
    assert client.post(delete, {"post": "yes"}).status_code == 403
    heartbeat.refresh_from_db()
    assert heartbeat.enabled


def test_operators_still_manage_run_definitions_tasks(scheduled, operator):
    client = login(operator)
    change = reverse("admin:django_celery_beat_periodictask_change", args=[scheduled.pk])
    assert client.get(change).status_code == 200
    delete = reverse("admin:django_celery_beat_periodictask_delete", args=[scheduled.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 302
    assert not PeriodicTask.objects.filter(pk=scheduled.pk).exists()


def task_form(name: str, task: str, interval: IntervalSchedule) -> dict:
    return {
        "name": name,
        "regtask": task,
        "task": "",
        "enabled": "on",
        "interval": interval.pk,
        "args": json.dumps([1]),
        "kwargs": "{}",
        "description": "",
        "queue": "",
        "exchange": "",
        "routing_key": "",
        "headers": "{}",
        "priority": "",
        "expires": "",
        "expire_seconds": "",
        "start_time_0": "",
        "start_time_1": "",
    }


def test_an_operator_cannot_schedule_a_system_task(scheduled, operator):
    interval = system_task().interval
    response = login(operator).post(
        reverse("admin:django_celery_beat_periodictask_add"),
        task_form("my sweeper", "providers.tasks.sweep", interval),
    )
    assert response.status_code == 200
    assert "Only administrators schedule other tasks than run definitions" in (
        response.content.decode()
    )
    assert not PeriodicTask.objects.filter(name="my sweeper").exists()


def test_an_administrator_edits_a_system_task(scheduled, administrator):
    heartbeat = system_task()
    client = login(administrator)
    change = reverse("admin:django_celery_beat_periodictask_change", args=[heartbeat.pk])
    assert client.get(change).status_code == 200
    form = task_form("worker-heartbeat", "runs.tasks.heartbeat", heartbeat.interval)
    form.update(args=heartbeat.args, enabled="")
    assert client.post(change, form).status_code == 302
    heartbeat.refresh_from_db()
    assert not heartbeat.enabled


def test_a_schedule_system_tasks_use_is_read_only_to_operators(scheduled, operator):
    client = login(operator)
    interval = system_task().interval
    change = reverse("admin:django_celery_beat_intervalschedule_change", args=[interval.pk])
    page = client.get(change)
    assert page.status_code == 200 and "worker-heartbeat" not in page.content.decode()
    assert client.post(change, {"every": 3600, "period": "seconds"}).status_code == 403
    url = reverse("admin:django_celery_beat_intervalschedule_changelist")
    chosen = {"action": "delete_selected", "_selected_action": [interval.pk]}
    assert "<title>Cannot delete" in client.post(url, chosen).content.decode()
    assert client.post(url, {**chosen, "post": "yes"}).status_code == 403
    interval.refresh_from_db()
    assert system_task().interval == interval
