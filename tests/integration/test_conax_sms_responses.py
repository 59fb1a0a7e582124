"""Conax SMS error handling: response files applied once; accepted, rejected (rolled back),
unknown and malformed lines; a malformed file; a request file the CAS refused; renewals."""

import hashlib
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from providers import batch
from providers.conax_sms import file_format as ff
from providers.conax_sms.files import PIPELINE
from providers.conax_sms.simulator import RESPONSE_DIR, UPLOAD_DIR
from providers.file_delivery import export, members, responses
from providers.models import ProvisioningRequest, TransferFile
from runs import services
from runs.models import ProcessRun, RunDefinition
from subscriptions.models import SubscriptionService
from tests.fixtures import out_files

Req = ProvisioningRequest


@pytest.fixture
def catalog(sms_catalog):  # this module's catalogue, where ``subscribe`` subscribes, is Conax SMS
    return sms_catalog


def process(provider):
    return batch.reconcile(batch.Selection(provider), trigger_name="process_provisioning_requests")


def sealed(lines: list[str]) -> bytes:
    """A response file with exactly these lines, header first, trailer added."""
    body = "".join(line + "\n" for line in lines).encode()
    return body + f"T|{len(lines) - 1}|{hashlib.sha256(body).hexdigest()}\n".encode()


def error_handling_run(provider) -> ProcessRun:
    definition, _ = RunDefinition.objects.get_or_create(
        name="Conax SMS error handling",
        defaults={"run_type": "conax_sms_error_handling", "provider": provider},
    )
    return services.execute(definition.pk, ProcessRun.Trigger.RUN_NOW)


def states(sub) -> list[tuple[str, str, str]]:
    return list(
        Req.objects.filter(subscription=sub).order_by("pk").values_list("command", "ca_id", "state")
    )


@pytest.fixture
def answered(sms, subscribe, conax_sms_simulator):
    """Three request files: the CAS answers the first (rejecting card B), a hand-made response
    answers the second (with an unknown and a malformed line), the third's answer is spoiled."""
    a = subscribe("BUNDLE_A", number="ZX-A")
    b = subscribe("AGRICULTURE", number="ZX-B")
    conax_sms_simulator.cas.reject_cards = {b.installed_items.get(kind="smartcard").ca_id}
    process(sms)
    export.export(PIPELINE, sms)
    conax_sms_simulator.cas.run_once()

    c = subscribe("BABY", number="ZX-C")
    process(sms)
    export.export(PIPELINE, sms)
    second = out_files(sms).last()
    # The CAS takes it; the answer below is written by hand.
    (Path(conax_sms_simulator.root) / UPLOAD_DIR / second.name).unlink()
    uids = list(members.requests_in(second).order_by("pk").values_list("uid", flat=True))
    name = ff.response_file_name(second.name)
    (Path(conax_sms_simulator.root) / RESPONSE_DIR / name).write_bytes(
        sealed(
            [
                f"H|{ff.RESPONSE_KIND}|{ff.VERSION}|{name}|{second.name}|2026-01-01T00:00:00",
                f"R|{uids[0]}|OK",
                f"R|{uuid.UUID(int=42)}|OK",
                "R|this line is not a response",
                f"R|{uids[1]}|OK",
            ]
        )
    )

    d = subscribe("RELIGION", number="ZX-D")
    process(sms)
    export.export(PIPELINE, sms)
    conax_sms_simulator.cas.corrupt = 1
    conax_sms_simulator.cas.run_once()
    return a, b, c, d


def test_response_files_update_states_roll_back_and_log(sms, conax_sms_simulator, answered):
    a, b, c, d = answered
    files = list(out_files(sms))

    run = error_handling_run(sms)

    C, R, P = Req.State.COMPLETED, Req.State.REJECTED, Req.State.PENDING
    assert states(a) == [
        ("CREATE_PAIRING", "", C),
        ("ADD_SUBSCRIPTION", "GFA1", C),
        ("ADD_SUBSCRIPTION", "EFA2", C),
    ]
    assert list(a.services.values_list("authorized", flat=True)) == [True]
    assert a.services.get().authorization_date is not None
    assert set(a.installed_items.values_list("initialized", flat=True)) == {True}
    # Card B is blocked at the CAS: both requests rejected with its error, the activation
    # rolled back through the action layer, the devices left not initialized.
    assert states(b) == [("CREATE_PAIRING", "", R), ("ADD_SUBSCRIPTION", "AF1", R)]
    rejected = Req.objects.get(subscription=b, command="ADD_SUBSCRIPTION")
    assert rejected.error_code == "CARD_BLOCKED"
    assert "is blocked" in rejected.last_error
    service = b.services.get()
    assert (service.state, service.authorized) == (SubscriptionService.State.NOT_EFFECTIVE, False)
    assert b.events.filter(action="provisioning_rollback").exists()
    assert set(b.installed_items.values_list("initialized", flat=True)) == {False}
    assert states(c) == [("CREATE_PAIRING", "", C), ("ADD_SUBSCRIPTION", "BFB2", C)]
    # The spoiled answer is not applied: D waits.
    assert states(d) == [("CREATE_PAIRING", "", P), ("ADD_SUBSCRIPTION", "RFB1", P)]

    assert run.status == ProcessRun.Status.COMPLETED_WITH_ERRORS
    assert run.examined == 7  # answers applied
    assert run.message == (
        "Answered 7 (accepted 5, rejected 2) from 3 response files; 1 file refused; "
        "5 errors (see the log)."
    )
    log = list(run.error_log.values_list("subscription__number", "message"))
    second = ff.response_file_name(files[1].name)
    third = ff.response_file_name(files[2].name)
    assert log == [
        (
            "ZX-B",
            f"CREATE_PAIRING {log_uid(b, 'CREATE_PAIRING')} rejected by Conax: "
            f"CARD_BLOCKED Card {card(b)} is blocked.",
        ),
        (
            "ZX-B",
            f"ADD_SUBSCRIPTION {log_uid(b, 'ADD_SUBSCRIPTION')} rejected by Conax: "
            f"CARD_BLOCKED Card {card(b)} is blocked.",
        ),
        (None, f"{second}: the answer for {uuid.UUID(int=42)} matches no request of Conax SMS."),
        (
            None,
            f"{second} line 4: expected 'R|<uid>|OK', 'R|<uid>|ERROR|<code>|<description>' or "
            "'F|<code>|<description>', found 'R|this line is not a response'",
        ),
        (None, refused_text(conax_sms_simulator, third, files[2])),
    ]
    # D's requests wait for a corrected third file, and say so.
    for request in Req.objects.filter(subscription=d):
        assert request.last_error.startswith(
            f"Waiting for Conax's answer: its response file {third} was refused: Line 4: "
        )

    out = Path(conax_sms_simulator.root) / RESPONSE_DIR
    assert sorted(p.name for p in (out / "processed").iterdir()) == sorted(
        ff.response_file_name(f.name) for f in files[:2]
    )
    assert [p.name for p in (out / "failed").iterdir()] == [third]
    assert not [p for p in out.iterdir() if p.is_file()]
    assert [f.state for f in out_files(sms)] == [
        TransferFile.State.ANSWERED,
        TransferFile.State.ANSWERED,
        TransferFile.State.UPLOADED,
    ]

    # Each file is applied once: the next run finds nothing, and a processing run plans
    # nothing for what was answered (B's service is off and not authorized).
    again = error_handling_run(sms)
    assert (again.status, again.examined, again.errors) == (ProcessRun.Status.COMPLETED, 0, 0)
    assert process(sms).requests_created == 0


def refused_text(simulator, name: str, sent: TransferFile, records: int = 2) -> str:
    """What the run logs about a response file the CAS cut short (``corrupt``)."""
    spoiled = (Path(simulator.root) / RESPONSE_DIR / "failed" / name).read_bytes()
    lines = spoiled.decode().split("\n")
    whole = hashlib.sha256("".join(line + "\n" for line in lines[:-1]).encode()).hexdigest()
    until = timezone.localtime(sent.uploaded_at + timedelta(hours=24)).strftime("%Y-%m-%d %H:%M")
    return (
        f"Response file {name} was refused; nothing in it was applied: Line {len(lines)}: the "
        f"trailer's checksum {lines[-1].split('|')[2]!r} is not the SHA-256 of lines 1 to "
        f"{len(lines) - 1} (expected {whole}, over LF-ended lines without trailing spaces, or "
        f"the SHA-256 of their bytes as written). The {records} requests of request file "
        f"{sent.name} stay Pending, waiting for a corrected {name} under the same name (until "
        f"the answer deadline, {until})."
    )


def card(sub) -> str:
    return sub.installed_items.get(kind="smartcard").ca_id


def log_uid(sub, command) -> str:
    return str(Req.objects.get(subscription=sub, command=command).uid)


def test_a_response_file_seen_before_is_only_moved(sms, subscribe, conax_sms_simulator):
    subscribe("AGRICULTURE")
    process(sms)
    export.export(PIPELINE, sms)
    conax_sms_simulator.cas.run_once()
    (name,) = [p.name for p in (Path(conax_sms_simulator.root) / RESPONSE_DIR).iterdir()]
    data = (Path(conax_sms_simulator.root) / RESPONSE_DIR / name).read_bytes()
    responses.process_responses(PIPELINE, sms)
    # The CAS (or a lost move) puts the same file back: it is not applied again.
    (Path(conax_sms_simulator.root) / RESPONSE_DIR / name).write_bytes(data)

    result = responses.process_responses(PIPELINE, sms)

    assert (result.completed, result.problems) == (0, [])
    assert TransferFile.objects.filter(direction="in", name=name).count() == 1
    assert not (Path(conax_sms_simulator.root) / RESPONSE_DIR / name).exists()


def test_a_refused_request_file_goes_out_again(sms, subscribe, conax_sms_simulator):
    subscribe("AGRICULTURE", number="ZX-F")
    process(sms)
    export.export(PIPELINE, sms)
    first = out_files(sms).get()
    on_server = Path(conax_sms_simulator.root) / UPLOAD_DIR / first.name
    on_server.write_bytes(on_server.read_bytes().replace(b"AF1", b"AF2"))  # damaged on the way
    conax_sms_simulator.cas.run_once()

    result = responses.process_responses(PIPELINE, sms)

    first.refresh_from_db()
    assert first.state == TransferFile.State.REJECTED
    assert first.message.startswith("FILE_INVALID: Line 4: the trailer's checksum ")
    assert result.problems == [
        (
            None,
            f"Conax refused request file {first.name} ({first.message}); its 2 Pending "
            "requests go in the next export.",
        )
    ]
    assert not conax_sms_simulator.cas.received

    export.export(PIPELINE, sms)
    conax_sms_simulator.cas.run_once()
    responses.process_responses(PIPELINE, sms)

    assert set(Req.objects.values_list("state", flat=True)) == {Req.State.COMPLETED}
    assert out_files(sms).last().state == TransferFile.State.ANSWERED
    assert len(conax_sms_simulator.cas.received) == 2


def test_an_accepted_renewal_moves_the_authorization_date(sms, subscribe, conax_sms_simulator):
    sub = subscribe("AGRICULTURE", number="ZX-REN")
    long_ago = timezone.now() - timedelta(days=70)
    sub.services.update(authorized=True, authorization_date=long_ago)
    sub.installed_items.update(initialized=True)
    process(sms)
    assert states(sub) == [("RENEW_SUBSCRIPTION", "AF1", Req.State.PENDING)]
    export.export(PIPELINE, sms)
    conax_sms_simulator.cas.run_once()

    responses.process_responses(PIPELINE, sms)

    assert states(sub) == [("RENEW_SUBSCRIPTION", "AF1", Req.State.COMPLETED)]
    service = sub.services.get()
    assert service.authorized
    assert service.authorization_date > timezone.now() - timedelta(minutes=1)
    assert process(sms).requests_created == 0  # not due again for a month
    assert conax_sms_simulator.cas.entitlements[card(sub)]["AF1"]


def test_a_silent_cas_leaves_the_requests_pending_and_nothing_is_sent_twice(
    sms, subscribe, conax_sms_simulator
):
    subscribe("AGRICULTURE")
    process(sms)
    conax_sms_simulator.cas.silent = True
    export.export(PIPELINE, sms)
    conax_sms_simulator.cas.run_once()

    run = error_handling_run(sms)

    assert (run.status, run.examined, run.errors) == (ProcessRun.Status.COMPLETED, 0, 0)
    assert set(Req.objects.values_list("state", flat=True)) == {Req.State.PENDING}
    assert export.export(PIPELINE, sms).uploaded == []  # the file is up: nothing goes twice
    assert process(sms).requests_created == 0

    conax_sms_simulator.cas.silent = False  # the CAS wakes up and answers
    conax_sms_simulator.cas.run_once()
    assert error_handling_run(sms).examined == 2
    assert set(Req.objects.values_list("state", flat=True)) == {Req.State.COMPLETED}
