"""Conax SMS response files as other systems write them, through the real SFTP/FTP servers: a
byte-order mark, CR LF line ends, trailing spaces and blank lines are read; a file that cannot
be applied is refused with its line and what was expected, its requests visibly waiting; the
corrected file sent again under the same name is applied; each run says what it did."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from providers import batch
from providers.conax_sms import file_format as ff
from providers.conax_sms.simulator import RESPONSE_DIR, Writer
from providers.file_delivery.layout import FormatError
from providers.models import ProvisioningRequest, TransferFile
from runs import services
from runs.models import ProcessRun, RunDefinition
from tests.fixtures import conax_sms_connection, out_files

Req = ProvisioningRequest
WAITING = "Waiting for Conax's answer: "


@pytest.fixture
def catalog(sms_catalog):  # this module's catalogue, where ``subscribe`` subscribes, is Conax SMS
    return sms_catalog


def api_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def run(provider, run_type: str) -> ProcessRun:
    definition, _ = RunDefinition.objects.get_or_create(
        name=run_type, defaults={"run_type": run_type, "provider": provider}
    )
    return services.execute(definition.pk, ProcessRun.Trigger.RUN_NOW)


def exported(sms, subscribe, count: int = 1) -> list:
    """``count`` subscriptions, their requests made and exported in one file."""
    subs = [subscribe("AGRICULTURE") for _ in range(count)]
    batch.reconcile(batch.Selection(sms), trigger_name="process_provisioning_requests")
    export_run = run(sms, "conax_sms_export_files")
    assert export_run.status == ProcessRun.Status.COMPLETED, export_run.message
    return subs


HABITS = {
    "byte-order mark": Writer(bom=True),
    "CR LF": Writer(line_end="\r\n"),
    "trailing spaces and blank lines": Writer(trailing_spaces="  \t", blank_lines=3),
    "Windows, checksum as written": Writer(bom=True, line_end="\r\n", checksum_as_written=True),
    "CR LF, checksum as written, no mark": Writer(line_end="\r\n", checksum_as_written=True),
}


@pytest.mark.parametrize("habit", HABITS, ids=list(HABITS))
def test_a_response_file_written_with_other_habits_is_applied(
    sms, subscribe, conax_sms_simulator, habit
):
    (sub,) = exported(sms, subscribe)
    conax_sms_simulator.cas.writer = HABITS[habit]
    (name,) = conax_sms_simulator.cas.run_once()
    on_server = (Path(conax_sms_simulator.root) / RESPONSE_DIR / name).read_bytes()
    assert (on_server.startswith(ff.BOM.encode()), b"\r\n" in on_server) == (
        HABITS[habit].bom,
        HABITS[habit].line_end == "\r\n",
    )

    answer_run = run(sms, "conax_sms_error_handling")

    assert answer_run.status == ProcessRun.Status.COMPLETED, list(answer_run.error_log.all())
    assert answer_run.message == "Answered 2 (accepted 2, rejected 0) from 1 response file."
    assert set(sub.provisioning_requests.values_list("state", flat=True)) == {Req.State.COMPLETED}
    assert sub.services.get().authorized
    assert (Path(conax_sms_simulator.root) / RESPONSE_DIR / "processed" / name).exists()


def test_over_ftp_too(sms, subscribe, conax_sms_simulator):
    sms.connection = conax_sms_connection(conax_sms_simulator, "ftp")
    sms.save()
    (sub,) = exported(sms, subscribe)
    conax_sms_simulator.cas.writer = Writer(bom=True, line_end="\r\n", blank_lines=1)
    conax_sms_simulator.cas.run_once()

    answer_run = run(sms, "conax_sms_error_handling")

    assert answer_run.message == "Answered 2 (accepted 2, rejected 0) from 1 response file."
    assert set(sub.provisioning_requests.values_list("state", flat=True)) == {Req.State.COMPLETED}


def test_a_spoiled_file_is_refused_visibly_and_the_corrected_one_applied(
    sms, subscribe, conax_sms_simulator, operator
):
    subs = exported(sms, subscribe, count=2)
    sent = out_files(sms).get()
    conax_sms_simulator.cas.writer = Writer(line_end="\r\n")
    conax_sms_simulator.cas.corrupt = 1  # cut short: the end of the trailer's checksum is lost
    (name,) = conax_sms_simulator.cas.run_once()

    refused_run = run(sms, "conax_sms_error_handling")

    # Refused whole, saying where and what was expected; nothing applied.
    assert refused_run.status == ProcessRun.Status.COMPLETED_WITH_ERRORS
    assert refused_run.message == (
        "Answered 0 (accepted 0, rejected 0) from 1 response file; 1 file refused; "
        "1 error (see the log)."
    )
    (error,) = refused_run.error_log.values_list("message", flat=True)
    until = timezone.localtime(sent.uploaded_at + timedelta(hours=24)).strftime("%Y-%m-%d %H:%M")
    assert error.startswith(
        f"Response file {name} was refused; nothing in it was applied: Line 6: the trailer's "
        "checksum '"
    )
    assert "' is not the SHA-256 of lines 1 to 5 (expected " in error
    assert error.endswith(
        f"The 4 requests of request file {sent.name} stay Pending, waiting for a corrected "
        f"{name} under the same name (until the answer deadline, {until})."
    )
    assert (Path(conax_sms_simulator.root) / RESPONSE_DIR / "failed" / name).exists()
    # The requests wait, and each says on what, on its page and in the API.
    requests = Req.objects.filter(subscription__in=subs)
    assert set(requests.values_list("state", flat=True)) == {Req.State.PENDING}
    first = requests.order_by("pk").first()
    assert first.last_error.startswith(f"{WAITING}its response file {name} was refused: Line 6: ")
    assert first.last_error.endswith(
        f"The next Error Handling run applies a corrected {name}; with no answer by {until} "
        "this request becomes Failed."
    )
    body = api_client(operator).get(f"/api/v1/requests/{first.pk}/").json()
    assert (body["state"], body["last_error"]) == ("pending", first.last_error)

    # The same spoiled bytes again (a move that was lost): refused again, said again.
    again = (Path(conax_sms_simulator.root) / RESPONSE_DIR / "failed" / name).read_bytes()
    (Path(conax_sms_simulator.root) / RESPONSE_DIR / name).write_bytes(again)
    unchanged = run(sms, "conax_sms_error_handling")
    (error,) = unchanged.error_log.values_list("message", flat=True)
    assert error.startswith(f"Response file {name} is unchanged and still refused: Line 6: ")

    # Conax sends the file again, whole, under the same name: a new attempt, applied.
    conax_sms_simulator.cas.resend(name)
    corrected = run(sms, "conax_sms_error_handling")

    assert corrected.status == ProcessRun.Status.COMPLETED, list(corrected.error_log.all())
    assert corrected.message == (
        "Answered 4 (accepted 4, rejected 0) from 1 response file, 1 of them sent again under "
        "the same name."
    )
    assert set(requests.values_list("state", "last_error")) == {(Req.State.COMPLETED, "")}
    assert all(sub.services.get().authorized for sub in subs)
    ledger = TransferFile.objects.get(direction="in", name=name)
    assert ledger.state == TransferFile.State.PROCESSED
    assert [(a["state"], a["process_run"]) for a in ledger.settings["attempts"]] == [
        ("malformed", refused_run.pk),
        ("processed", corrected.pk),
    ]
    sent.refresh_from_db()
    assert (sent.state, sent.message) == (TransferFile.State.ANSWERED, "")
    assert (Path(conax_sms_simulator.root) / RESPONSE_DIR / "processed" / name).exists()


def test_a_request_file_left_unanswered_still_fails_at_the_deadline(
    sms, subscribe, conax_sms_simulator
):
    """Waiting on a refused answer does not stop the deadline: past it the requests are
    Failed, with the deadline's reason in place of the waiting note."""
    (sub,) = exported(sms, subscribe)
    conax_sms_simulator.cas.corrupt = 1
    conax_sms_simulator.cas.run_once()
    run(sms, "conax_sms_error_handling")
    assert sub.provisioning_requests.filter(last_error__startswith=WAITING).count() == 2
    TransferFile.objects.filter(direction="out").update(
        uploaded_at=timezone.now() - timedelta(hours=25)
    )

    late = run(sms, "conax_sms_error_handling")

    assert late.message.startswith(
        "Answered 0 (accepted 0, rejected 0) from 0 response files; 2 unanswered past the "
        "deadline, now Failed"
    )
    failed = sub.provisioning_requests.all()
    assert set(failed.values_list("state", flat=True)) == {Req.State.FAILED}
    assert all(r.last_error.startswith("Conax did not answer within 24 hours") for r in failed)


def test_the_export_run_says_what_it_exported(sms, subscribe, conax_sms_simulator, operator):
    exported(sms, subscribe, count=3)  # a pairing and an Add each
    export_run = ProcessRun.objects.get(definition__run_type="conax_sms_export_files")

    assert export_run.message == "Exported 6 records in 1 file."
    assert export_run.counts == {"records": 6, "files": 1, "failed": 0}
    body = api_client(operator).get(f"/api/v1/process-runs/{export_run.pk}/").json()
    assert body["summary"] == "Exported 6 records in 1 file"
    assert body["counts"] == [
        {"key": "records", "label": "Records exported", "value": 6},
        {"key": "files", "label": "Files exported", "value": 1},
        {"key": "failed", "label": "Could not be written", "value": 0},
    ]


# --- The reader's verdicts, line by line -----------------------------------------------------


def response(*records: str, count: int | None = None, digest: str | None = None) -> bytes:
    lines = [f"H|{ff.RESPONSE_KIND}|1|CRM001_00000001.rsp|CRM001_00000001.req|2026-01-01", *records]
    body = "".join(line + "\n" for line in lines).encode()
    n = len(records) if count is None else count
    return body + f"T|{n}|{digest or ff.checksum(body)}\n".encode()


UID = "6f1c2a9e-0b7d-4c1e-9f3a-2d4b5c6e7f80"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "Line 1: expected the header 'H|CONAX-SMS-RESPONSE|1|\u2026', found an empty file."),
        (
            response(f"R|{UID}|OK").replace(b"H|CONAX-SMS-RESPONSE", b"H|CONAX-SMS-REQUEST"),
            "Line 1: expected the header 'H|CONAX-SMS-RESPONSE|1|\u2026', found "
            "'H|CONAX-SMS-REQUEST|1|CRM001_00000001.rsp|CRM001_00000001.req|2026-01-01'.",
        ),
        (
            response(f"R|{UID}|OK", count=2),
            "Line 3: the trailer counts 2 records; lines 2 to 2 hold 1.",
        ),
        (
            response(f"R|{UID}|OK")[:-69],  # the trailer line lost
            f"Line 2, the last: expected the trailer 'T|<number of records>|<SHA-256>', found "
            f"'R|{UID}|OK' (is the file cut short?).",
        ),
        (
            response(f"R|{UID}|OK").replace(b"OK", b"\xff"),
            "Line 2: expected UTF-8 text, found the byte 0xff.",
        ),
    ],
    ids=["empty", "a request header", "miscounted", "no trailer", "not UTF-8"],
)
def test_a_file_that_cannot_be_trusted_is_refused_saying_where_and_what_was_expected(data, error):
    with pytest.raises(FormatError) as refused:
        ff.parse_response(data)
    assert str(refused.value) == error


def test_a_blank_line_inside_the_records_is_a_line_error_and_the_rest_counts():
    parsed = ff.parse_response(response(f"R|{UID}|OK", "   ", f"R|{UID}|ERROR|E1|Bad%20card"))
    assert [(r.uid, r.accepted, r.error_description) for r in parsed.records] == [
        (UID, True, ""),
        (UID, False, "Bad card"),
    ]
    assert parsed.line_errors == [
        (
            3,
            "expected 'R|<uid>|OK', 'R|<uid>|ERROR|<code>|<description>' or "
            "'F|<code>|<description>', found an empty line",
        )
    ]


def test_the_trailer_checksum_may_be_of_either_form_but_not_of_something_else():
    windows = Writer(bom=True, line_end="\r\n", trailing_spaces=" ", checksum_as_written=True)
    data = response(f"R|{UID}|OK")
    assert ff.parse_response(windows.write(data)).records == ff.parse_response(data).records
    assert ff.parse_response(Writer(line_end="\r\n").write(data)).records  # as we write it
    tampered = windows.write(data).replace(b"|OK", b"|NO")
    with pytest.raises(FormatError, match=r"^Line 3: the trailer's checksum '"):
        ff.parse_response(tampered)


def test_a_corrected_version_of_an_applied_file_applies_what_it_adds(
    sms, subscribe, conax_sms_simulator
):
    """A file applied with an unreadable line, sent again corrected under the same name: the
    answer it lacked is applied; what it had is not applied twice."""
    (sub,) = exported(sms, subscribe)
    conax_sms_simulator.cas.run_once()
    folder = Path(conax_sms_simulator.root) / RESPONSE_DIR
    (name,) = [p.name for p in folder.iterdir() if p.is_file()]
    whole = conax_sms_simulator.cas.answers[name].decode().split("\n")
    header, good, lost = whole[0], whole[1], whole[2]
    damaged = response_lines([header, good, lost.replace("|OK", "|O K")])
    (folder / name).write_bytes(damaged)

    first = run(sms, "conax_sms_error_handling")
    assert first.message == (
        "Answered 1 (accepted 1, rejected 0) from 1 response file; 1 error (see the log)."
    )
    assert sub.provisioning_requests.filter(state=Req.State.PENDING).count() == 1

    conax_sms_simulator.cas.resend(name)
    second = run(sms, "conax_sms_error_handling")

    assert second.status == ProcessRun.Status.COMPLETED, list(second.error_log.all())
    assert set(sub.provisioning_requests.values_list("state", flat=True)) == {Req.State.COMPLETED}
    assert second.message == (
        "Answered 1 (accepted 1, rejected 0) from 1 response file, 1 of them sent again under "
        "the same name."
    )
    ledger = TransferFile.objects.get(direction="in", name=name)
    assert [a["state"] for a in ledger.settings["attempts"]] == ["processed", "processed"]
    assert ledger.checksum == ff.checksum(conax_sms_simulator.cas.answers[name])


def response_lines(lines: list[str]) -> bytes:
    body = "".join(line + "\n" for line in lines).encode()
    return body + f"T|{len(lines) - 1}|{ff.checksum(body)}\n".encode()
