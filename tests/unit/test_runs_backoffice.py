"""The operators' back office for runs, as its users see it: the definition form and its errors,
the Submit / Cancel / Run now buttons and the Preview page, the process-run history, a run's page
with its progress JSON and its error log as CSV, and who may do what."""

import csv
import html
import io
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from catalogue.models import ProductCAId
from providers.answers import record_answer
from providers.models import ProvisioningRequest
from runs import services
from runs.models import ProcessRun, RunDefinition
from subscriptions.models import SubscriptionService
from tests.unit.test_backoffice import login, shown

Req = ProvisioningRequest


@pytest.fixture
def drifted(subscribe):
    """Three subscriptions whose services the provider lost (nothing pending for them)."""
    subs = [subscribe("BUNDLE_A"), subscribe("AGRICULTURE"), subscribe("BUNDLE_B")]
    for r in Req.objects.all():
        record_answer(r, accepted=True)
    SubscriptionService.objects.update(authorized=False)
    return subs


def make_definition(catalog, **fields) -> RunDefinition:
    values = {
        "name": "Nightly reset",
        "run_type": "reset_subscriptions",
        "provider": catalog.provider,
        "run_at": timezone.now() + timedelta(hours=1),
    }
    values.update(fields)
    return RunDefinition.objects.create(**values)


def form_data(catalog, **overrides) -> dict:
    later = timezone.localtime() + timedelta(hours=1)
    data = {
        "name": "Reset after the outage",
        "alternative_code": "RESET1",
        "provider": str(catalog.provider.pk),
        "run_type": "reset_subscriptions",
        "criteria-reset_subscriptions-created_from": "2020-01-01",
        "criteria-reset_subscriptions-created_to": "",
        "criteria-reset_subscriptions-subscription_types": ["RES"],
        "input-archive_requests-older_than_days": "90",
        "schedule": "once",
        "run_at_0": later.strftime("%Y-%m-%d"),
        "run_at_1": later.strftime("%H:%M:%S"),
        "every": "",
        "unit": "",
        "cron": "",
    }
    data.update(overrides)
    return data


def page(d: RunDefinition) -> str:
    return reverse("admin:runs_rundefinition_change", args=[d.pk])


def operate(d: RunDefinition, operation: str) -> str:
    return reverse("admin:runs_rundefinition_operate", args=[d.pk, operation])


def preview_url(d: RunDefinition) -> str:
    return reverse("admin:runs_rundefinition_preview", args=[d.pk])


def run_page(run: ProcessRun) -> str:
    return reverse("admin:runs_processrun_change", args=[run.pk])


def progress_url(run: ProcessRun) -> str:
    return reverse("admin:runs_processrun_progress", args=[run.pk])


def csv_url(run: ProcessRun) -> str:
    return reverse("admin:runs_processrun_errors_csv", args=[run.pk])


# --- The definition form ------------------------------------------------------------------------


def test_operator_creates_a_reset_definition_through_the_add_form(operator, catalog):
    client = login(operator)
    add = reverse("admin:runs_rundefinition_add")
    response = client.get(add)
    assert response.status_code == 200
    body = response.content.decode()
    # The run type's own forms, and the provider -> run types map for the page's script.
    assert "Criteria — Reset Subscriptions" in body
    assert "Input settings — Archive requests" in body
    assert 'name="criteria-reset_subscriptions-created_from"' in body
    assert f'"{catalog.provider.pk}": ["reset_subscriptions", "archive_requests"]' in body

    response = client.post(add, form_data(catalog))
    assert response.status_code == 302, response.context["adminform"].form.errors
    d = RunDefinition.objects.get()
    assert (d.name, d.alternative_code, d.run_type, d.provider, d.state, d.created_by) == (
        "Reset after the outage",
        "RESET1",
        "reset_subscriptions",
        catalog.provider,
        "draft",
        operator,
    )
    assert d.criteria == {
        "created_from": "2020-01-01",
        "created_to": None,
        "subscription_types": ["RES"],
    }
    # The archive fields on the page are not this type's.
    assert d.input_settings == {"compare_with_platform": False}

    # The list: run type by name, schedule in words, no next run while a draft.
    response = client.get(reverse("admin:runs_rundefinition_changelist"))
    body = response.content.decode()
    assert "Reset after the outage" in body and "Reset Subscriptions" in body
    assert f"Once at {timezone.localtime(d.run_at):%Y-%m-%d %H:%M}" in body

    # Editing shows the stored criteria back in their fields.
    response = client.get(page(d))
    form = response.context["adminform"].form
    assert form["criteria-reset_subscriptions-created_from"].value() == "2020-01-01"
    assert form["criteria-reset_subscriptions-subscription_types"].value() == ["RES"]


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (
            {"schedule": "interval", "every": "5", "unit": "seconds"},
            "every",
            "Runs every few seconds would overlap; use at least 10 seconds.",
        ),
        (
            {
                "criteria-reset_subscriptions-created_from": "2026-05-01",
                "criteria-reset_subscriptions-created_to": "2026-04-01",
            },
            "criteria-reset_subscriptions-created_to",
            "The period ends before it starts.",
        ),
        (
            {"criteria-reset_subscriptions-created_from": "not a date"},
            "criteria-reset_subscriptions-created_from",
            "Enter a valid date.",
        ),
        (
            {"run_type": "process_provisioning_requests"},
            "run_type",
            "Generic does not offer Process Provisioning Requests (it offers: "
            "Reset Subscriptions, Archive requests).",
        ),
        (
            {"run_type": "archive_requests", "input-archive_requests-older_than_days": "0"},
            "input-archive_requests-older_than_days",
            "Ensure this value is greater than or equal to 1.",
        ),
        (
            {"schedule": "cron", "cron": "0 25 * * *"},
            "cron",
            "Not a valid cron expression: Invalid end range: 25 > 23.",
        ),
        ({"run_at_0": "", "run_at_1": ""}, "run_at", "Give the date and time to run at."),
    ],
)
def test_bad_input_is_shown_on_its_field(operator, catalog, overrides, field, message):
    response = login(operator).post(
        reverse("admin:runs_rundefinition_add"), form_data(catalog, **overrides)
    )
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors == {field: [message]}
    assert f"<li>{message}</li>" in response.content.decode().replace("&gt;", ">")
    assert not RunDefinition.objects.exists()


def test_an_archive_definition_keeps_its_input_settings(operator, catalog):
    data = form_data(
        catalog,
        name="Archive",
        alternative_code="",
        run_type="archive_requests",
        schedule="interval",
        every="1",
        unit="days",
        **{"input-archive_requests-older_than_days": "30"},
    )
    response = login(operator).post(reverse("admin:runs_rundefinition_add"), data)
    assert response.status_code == 302
    d = RunDefinition.objects.get()
    assert (d.criteria, d.input_settings, d.every, d.unit) == (
        {},
        {"older_than_days": 30},
        1,
        "days",
    )


# --- Submit, preview, cancel, run now ---------------------------------------------------------


def test_operator_submits_previews_cancels_and_runs_now(
    operator, catalog, drifted, django_capture_on_commit_callbacks
):
    client = login(operator)
    d = make_definition(catalog)

    response = client.get(page(d))
    body = response.content.decode()
    for button in ('value="Submit"', 'value="Run now"', ">Preview</a>"):
        assert button in body
    assert 'value="Cancel"' not in body  # a draft has no schedule to cancel

    response = client.post(operate(d, "submit"), follow=True)
    d.refresh_from_db()
    assert d.state == "submitted"
    task = PeriodicTask.objects.get()
    assert d.periodic_task == task and task.clocked.clocked_time == d.run_at
    next_run = f"{timezone.localtime(d.run_at):%Y-%m-%d %H:%M:%S %Z}"
    assert shown(response) == [
        (
            "success",
            f"Nightly reset is submitted: Once at {timezone.localtime(d.run_at):%Y-%m-%d %H:%M}; "
            f"next run {next_run}.",
        )
    ]
    assert 'value="Cancel"' in response.content.decode()
    assert next_run in client.get(reverse("admin:runs_rundefinition_changelist")).content.decode()

    # Submitting twice is refused by the service, and said so.
    response = client.post(operate(d, "submit"), follow=True)
    assert shown(response) == [
        ("error", "Nightly reset is Submitted; it cannot be submitted again.")
    ]

    # The preview: the drifted subscriptions with the requests a run would create. Writes nothing.
    before = Req.objects.count()
    response = client.get(preview_url(d))
    assert response.status_code == 200
    body = response.content.decode()
    assert "A preview writes nothing." in body
    assert [r.subscription for r in response.context["rows"]] == [s.number for s in drifted]
    for sub in drifted:
        assert sub.number in body
    assert "ACTIVATE_SERVICE" in body and "AF1" in body
    # Each request says why: what the subscription wants against what the provider holds.
    assert (
        '<span class="preview-reason">Activate AGRICULTURE: service Effective, not authorized '
        "at the provider</span>"
    ) in body
    assert Req.objects.count() == before
    assert not ProcessRun.objects.exists()

    response = client.post(operate(d, "cancel"), follow=True)
    d.refresh_from_db()
    assert d.state == "cancelled" and not PeriodicTask.objects.exists()
    assert shown(response) == [("success", "Nightly reset is cancelled: it will not run again.")]

    # Run now sends the task once the request's transaction commits.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(operate(d, "run_now"), follow=True)
    assert len(callbacks) == 1
    queued = ProcessRun.objects.get()
    assert shown(response) == [
        (
            "success",
            f"Nightly reset will run as soon as a worker is free; its process run #{queued.pk} "
            "appears below, Queued until a worker takes it.",
        )
    ]
    # The run is on the page at once, before any worker took it.
    body = response.content.decode()
    assert f'href="{run_page(queued)}">#{queued.pk}</a></td>\n        <td>Run now</td>' in body
    assert "<td>Queued</td>" in body
    # What the worker does with it: the same service, here in this process, on that row.
    run = services.execute(d.pk, ProcessRun.Trigger.RUN_NOW, run_id=queued.pk)
    assert (run.pk, run.status) == (queued.pk, "completed")
    # A task delivered twice runs once.
    assert services.execute(d.pk, ProcessRun.Trigger.RUN_NOW, run_id=queued.pk) is None
    assert ProcessRun.objects.count() == 1
    response = client.get(page(d))
    assert f'href="{run_page(run)}">#{run.pk}</a>' in response.content.decode()


def test_paging_through_the_preview(operator, catalog, drifted, monkeypatch):
    monkeypatch.setattr("runs.admin.PREVIEW_PAGE_SIZE", 2)
    client = login(operator)
    d = make_definition(catalog)
    first = client.get(preview_url(d))
    assert [r.subscription for r in first.context["rows"]] == [s.number for s in drifted[:2]]
    assert '<a href="?page=2">Next' in first.content.decode()
    second = client.get(preview_url(d) + "?page=2")
    assert [r.subscription for r in second.context["rows"]] == [drifted[2].number]
    body = second.content.decode()
    assert '<a href="?page=1">' in body and "?page=3" not in body


def test_service_errors_are_shown_as_messages(operator, catalog):
    client = login(operator)
    past = make_definition(catalog, run_at=timezone.now() - timedelta(minutes=5))
    response = client.post(operate(past, "submit"), follow=True)
    ((level, text),) = shown(response)
    assert level == "error" and text.endswith("which has passed; choose a later time.")
    response = client.post(operate(past, "cancel"), follow=True)
    assert shown(response) == [
        ("error", "Nightly reset is Draft; only a submitted definition can be cancelled.")
    ]
    archive = make_definition(catalog, name="Archive", run_type="archive_requests")
    response = client.get(preview_url(archive), follow=True)
    assert shown(response) == [
        ("error", "Archive requests has no preview: it changes no subscription.")
    ]
    # A definition gone wrong behind the form's back: Run now says what is wrong.
    RunDefinition.objects.filter(pk=past.pk).update(run_type="process_provisioning_requests")
    response = client.post(operate(past, "run_now"), follow=True)
    assert shown(response) == [
        (
            "error",
            "Nightly reset cannot run: run type: Generic does not offer Process Provisioning "
            "Requests (it offers: Reset Subscriptions, Archive requests).",
        )
    ]


def test_editing_a_submitted_definition_reschedules_it(operator, catalog):
    client = login(operator)
    d = services.submit(make_definition(catalog))
    later = timezone.localtime() + timedelta(days=2)
    data = form_data(
        catalog,
        name=d.name,
        alternative_code="",
        run_at_0=later.strftime("%Y-%m-%d"),
        run_at_1="03:00:00",
    )
    response = client.post(page(d), data, follow=True)
    assert response.status_code == 200
    d.refresh_from_db()
    task = PeriodicTask.objects.get()
    assert task == d.periodic_task
    assert timezone.localtime(task.clocked.clocked_time).strftime("%Y-%m-%d %H:%M") == (
        f"{later:%Y-%m-%d} 03:00"
    )
    assert ("info", f"Nightly reset is rescheduled: Once at {later:%Y-%m-%d} 03:00.") in shown(
        response
    )

    # Every hour instead: the clocked schedule goes, an interval comes.
    data.update(schedule="interval", every="1", unit="hours", run_at_0="", run_at_1="")
    client.post(page(d), data)
    task = PeriodicTask.objects.get()
    assert (task.clocked, task.interval.every, task.interval.period) == (None, 1, "hours")

    # A moment that has passed is refused for a submitted definition.
    past = timezone.localtime() - timedelta(hours=1)
    data.update(
        schedule="once", run_at_0=past.strftime("%Y-%m-%d"), run_at_1=past.strftime("%H:%M")
    )
    response = client.post(page(d), data)
    assert response.context["adminform"].form.errors == {
        "run_at": ["This moment has passed; choose a later time."]
    }


def test_a_definition_that_has_run_is_not_deleted(operator, catalog):
    client = login(operator)
    d = make_definition(catalog)
    ProcessRun.objects.create(definition=d, trigger="run_now", status="completed")
    delete = reverse("admin:runs_rundefinition_delete", args=[d.pk])
    response = client.post(delete, {"post": "yes"})
    assert response.status_code == 200
    assert "1 process run(s) in its history; cancel it instead." in response.content.decode()
    assert RunDefinition.objects.filter(pk=d.pk).exists()

    fresh = services.submit(make_definition(catalog, name="Fresh"))
    client.post(reverse("admin:runs_rundefinition_delete", args=[fresh.pk]), {"post": "yes"})
    assert not RunDefinition.objects.filter(pk=fresh.pk).exists()
    assert not PeriodicTask.objects.exists()  # its schedule went with it


# --- Process runs ------------------------------------------------------------------------------


@pytest.fixture
def finished_run(catalog, drifted):
    """A reset run that created 4 requests and logged one error (AF1 has no CA ID)."""
    ProductCAId.objects.filter(ca_id="AF1").delete()
    run = services.execute(make_definition(catalog).pk, ProcessRun.Trigger.RUN_NOW)
    assert (run.status, run.created, run.errors) == ("completed_with_errors", 4, 1)
    return run


def test_the_run_page_shows_counts_requests_and_errors(operator, finished_run, drifted):
    client = login(operator)
    ids = list(finished_run.requests.values_list("pk", flat=True))
    Req.objects.filter(pk=ids[0]).update(state="completed")
    Req.objects.filter(pk=ids[1]).update(state="rejected")

    response = client.get(run_page(finished_run))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Completed with errors" in body
    assert "Examined 3 subscriptions; created 4 requests: 4 activations (100%) · 1 error" in body
    assert (
        "Examined 3 subscriptions; created 4 requests: 4 activations; 1 error (see the log)."
        in (body)
    )
    assert '<th scope="row">Activations</th><td id="run-count-activate">4</td>' in body
    assert response.context["progress"]["requests"] == {
        "pending": 2,
        "completed": 1,
        "rejected": 1,
        "failed": 0,
        "superseded": 0,
        "archived": 0,
    }
    assert "AGRICULTURE has no CA ID at provider Generic." in body
    sub_url = reverse("admin:subscriptions_subscription_change", args=[drifted[1].pk])
    assert f'<a href="{sub_url}">{drifted[1].number}</a>' in body
    requests_url = (
        reverse("admin:providers_provisioningrequest_changelist")
        + f"?process_run__id__exact={finished_run.pk}"
    )
    assert requests_url in body
    # No live script on a finished run's page.
    assert 'data-running="0"' in body

    # The requests list accepts the run's filter and lists exactly its requests.
    other = Req.objects.exclude(process_run=finished_run).first()
    assert other is not None
    response = client.get(requests_url)
    assert response.status_code == 200
    assert sorted(r.pk for r in response.context["cl"].result_list) == sorted(ids)
    response = client.get(requests_url + "&state__exact=pending")
    assert response.context["cl"].result_count == 2


def test_the_progress_json(operator, finished_run):
    data = login(operator).get(progress_url(finished_run)).json()
    assert {k: data[k] for k in ("status", "total", "examined", "created", "errors")} == {
        "status": "completed_with_errors",
        "total": 3,
        "examined": 3,
        "created": 4,
        "errors": 1,
    }
    assert data["eta_seconds"] is None and data["running"] is False
    assert data["message"] == (
        "Examined 3 subscriptions; created 4 requests: 4 activations; 1 error (see the log)."
    )
    assert data["requests"] == {
        "pending": 4,
        "completed": 0,
        "rejected": 0,
        "failed": 0,
        "superseded": 0,
        "archived": 0,
    }


def test_a_running_run_has_an_eta(operator, catalog):
    run = ProcessRun.objects.create(
        definition=make_definition(catalog), trigger="schedule", total=10, examined=4, created=2
    )
    ProcessRun.objects.filter(pk=run.pk).update(started_at=timezone.now() - timedelta(seconds=8))
    client = login(operator)
    data = client.get(progress_url(run)).json()
    assert (data["status"], data["running"], data["percent"]) == ("running", True, 40)
    assert 11 <= data["eta_seconds"] <= 13  # 8 s for 4, so about 12 s for the 6 left
    assert data["summary"].startswith(
        "Examined 4 of 10 subscriptions; created 2 requests (40%) · 0 errors · "
    )
    body = client.get(run_page(run)).content.decode()
    assert 'data-running="1"' in body
    assert 'id="run-summary">Examined 4 of 10 subscriptions; created 2 requests (40%)' in body


def test_the_error_log_downloads_as_csv(operator, finished_run, drifted):
    finished_run.error_log.create(message="Second problem, no subscription")
    response = login(operator).get(csv_url(finished_run))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f"process-run-{finished_run.pk}-errors.csv" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["subscription", "message", "time"]
    assert [r[:2] for r in rows[1:]] == [
        [drifted[1].number, "AGRICULTURE has no CA ID at provider Generic."],
        ["", "Second problem, no subscription"],
    ]
    assert rows[1][2].startswith(str(timezone.now().year))


def test_history_filters(operator, catalog, finished_run):
    other = make_definition(catalog, name="Other")
    ProcessRun.objects.create(definition=other, trigger="schedule", status="failed")
    client = login(operator)
    history = reverse("admin:runs_processrun_changelist")
    response = client.get(history)
    assert response.context["cl"].result_count == 2
    body = response.content.decode()
    assert "3 / 3" in body and "Completed with errors" in body
    for query, expected in [
        (f"definition__id__exact={other.pk}", "failed"),
        ("status__exact=completed_with_errors", "completed_with_errors"),
        ("trigger__exact=run_now", "completed_with_errors"),
    ]:
        response = client.get(f"{history}?{query}")
        assert [r.status for r in response.context["cl"].result_list] == [expected], query
    today = timezone.localdate()
    response = client.get(
        f"{history}?started_at__year={today.year}&started_at__month={today.month}"
        f"&started_at__day={today.day}"
    )
    assert response.context["cl"].result_count == 2


# --- Who may do what ----------------------------------------------------------------------------


def test_agents_see_runs_read_only(agent, catalog, finished_run):
    client = login(agent)
    d = finished_run.definition
    assert client.get(reverse("admin:runs_rundefinition_changelist")).status_code == 200
    response = client.get(page(d))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Nightly reset" in body and "Reset Subscriptions" in body
    assert "Created from: -" in body  # the criteria, shown as text
    for button in ('value="Submit"', 'value="Run now"', ">Preview</a>", 'name="_save"'):
        assert button not in body
    assert client.get(reverse("admin:runs_rundefinition_add")).status_code == 403
    assert client.post(page(d), {"name": "Renamed"}).status_code == 403
    for operation in ("submit", "cancel", "run_now"):
        assert client.post(operate(d, operation)).status_code == 403
    assert client.get(preview_url(d)).status_code == 403
    delete = reverse("admin:runs_rundefinition_delete", args=[d.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    d.refresh_from_db()
    assert d.name == "Nightly reset" and d.state == "draft"

    # Runs: the history, the page, its progress and its errors.
    for url in (
        reverse("admin:runs_processrun_changelist"),
        run_page(finished_run),
        progress_url(finished_run),
        csv_url(finished_run),
    ):
        assert client.get(url).status_code == 200, url


def test_nobody_writes_a_process_run_by_hand(administrator, finished_run):
    client = login(administrator)
    assert client.get(reverse("admin:runs_processrun_add")).status_code == 403
    delete = reverse("admin:runs_processrun_delete", args=[finished_run.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert 'name="_save"' not in client.get(run_page(finished_run)).content.decode()


def test_anonymous_is_sent_to_the_login_page(client, finished_run):
    d = finished_run.definition
    for url in (
        reverse("admin:runs_rundefinition_changelist"),
        page(d),
        preview_url(d),
        run_page(finished_run),
        progress_url(finished_run),
        csv_url(finished_run),
    ):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    response = client.post(operate(d, "run_now"))
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert not ProcessRun.objects.exclude(pk=finished_run.pk).exists()


def test_progress_needs_the_view_permission(finished_run):
    User.objects.create_user("staff", password="pw-staff", is_staff=True)
    client = login(User.objects.get(username="staff"))
    assert client.get(progress_url(finished_run)).status_code == 403
    assert client.get(csv_url(finished_run)).status_code == 403


def test_each_run_type_is_listed_once_by_a_name_that_tells_it_apart(operator, catalog):
    client = login(operator)
    body = client.get(reverse("admin:runs_rundefinition_add")).content.decode()
    select = re.search(r'<select name="run_type".*?</select>', body, re.S).group(0)
    names = [html.unescape(n) for n in re.findall(r'<option value="\w+".*?>(.*?)</option>', select)]
    assert len(names) == len(set(names))
    assert "Mail & Bark Messages (Conax Contego SMS Services)" in names
    assert "Mail & Bark Messages (Conax Contego Web Services)" in names
    assert "Reset Subscriptions" in names  # a name no other type has stays as it is

    body = client.get(reverse("admin:runs_rundefinition_changelist")).content.decode()
    assert html.unescape(body).count("Mail & Bark Messages (Conax Contego SMS Services)") == 1


def test_the_preview_puts_totals_first_and_downloads_as_csv(operator, catalog, drifted):
    client = login(operator)
    d = make_definition(catalog)
    rows = services.preview(d, limit=100)[0]
    wanted = [(row.subscription, r["command"]) for row in rows for r in row.what]

    body = client.get(preview_url(d)).content.decode()
    assert body.index('id="preview-totals"') < body.index('id="preview"')
    assert f"This page: 3 subscriptions, {len(wanted)} requests (" in body
    customer = drifted[0].account
    assert f'<td class="preview-customer">{customer.number} {customer.name}</td>' in body

    response = client.get(reverse("admin:runs_rundefinition_preview_csv", args=[d.pk]))
    assert response["Content-Disposition"] == (
        f'attachment; filename="run-definition-{d.pk}-preview.csv"'
    )
    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert lines[0] == ["subscription", "customer", "command", "reason", "parameters"]
    assert [(line[0], line[2]) for line in lines[1:]] == wanted
    customer = drifted[0].account
    assert {line[1] for line in lines[1:]} == {f"{customer.number} {customer.name}"}
    assert {line[3] for line in lines[1:]} == {
        f"Activate {code}: service Effective, not authorized at the provider"
        for code in ("BUNDLE_A", "AGRICULTURE", "BUNDLE_B")
    }
    assert all("=" in line[4] for line in lines[1:])
    assert not ProcessRun.objects.exists()  # a preview writes nothing

    archive = make_definition(
        catalog, name="Archive", run_type="archive_requests", input_settings={"older_than_days": 30}
    )
    response = client.get(
        reverse("admin:runs_rundefinition_preview_csv", args=[archive.pk]), follow=True
    )
    assert shown(response) == [
        (
            "error",
            "Archive cannot be previewed: Archive requests has no preview: it changes no "
            "subscription.",
        )
    ]
