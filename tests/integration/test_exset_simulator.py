"""The EXSET SMS simulator over a real SMS database (an SQLite file, a PostgreSQL and a MariaDB
database):
entries written as TQUEUE rows go New -> Under Processing -> Done or Error, lowest priority
first; its control endpoint shows what each card holds and makes it go down, slow or refuse;
each entry is applied once, across a restart too."""

import itertools
import json
import re
import subprocess
import sys
import time
import uuid

import pytest
import requests

from providers.exset import tqueue
from providers.exset.simulator import Simulator

_sequence = itertools.count(1)


def connect(url: str) -> tqueue.Database:
    return tqueue.open_database(url, "TQUEUE")


def insert(db, command: str, params: dict | str, *, priority=5, card=None) -> str:
    """One entry as our side writes it (the subscription column from the parameters); its
    entry_id."""
    entry_id = str(uuid.uuid4())
    names = ", ".join(db.column(c) for c in tqueue.WRITTEN)
    db.execute(
        f"INSERT INTO {db.table} ({names}) VALUES ({', '.join(['%s'] * len(tqueue.WRITTEN))})",
        (
            entry_id,
            "EXSET-TEST-1",
            next(_sequence),
            priority,
            command,
            params.get("subscription") if isinstance(params, dict) else None,
            card,
            params if isinstance(params, str) else json.dumps(params),
            "2026-01-01 10:00:00",
        ),
    )
    db.conn.commit()
    return entry_id


def rows(db) -> dict[str, tuple]:
    """entry_id -> (status, error_code, error_text, processed_at is set)."""
    q = db.column
    cursor = db.execute(
        f"SELECT {q('entry_id')}, {q('status')}, {q('error_code')}, {q('error_text')}, "
        f"{q('processed_at')} FROM {db.table} ORDER BY {q('sequence')}"
    )
    found = {r[0]: (r[1], r[2], r[3], r[4] is not None) for r in cursor.fetchall()}
    db.conn.commit()  # a fresh snapshot next time, and no transaction left open
    return found


def processed_order(db) -> list[str]:
    q = db.column
    cursor = db.execute(f"SELECT {q('entry_id')} FROM {db.table} ORDER BY {q('processed_at')}")
    order = [r[0] for r in cursor.fetchall()]
    db.conn.commit()
    return order


def wait_for(check, timeout: float = 15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s: {check()!r}")


def answered(connection, *entry_ids) -> dict[str, tuple]:
    """The entries' rows once none of them is New or Under Processing."""

    def check():
        found = rows(connection)
        if all(found[e][0] in ("Done", "Error") for e in entry_ids):
            return {e: found[e][:3] for e in entry_ids}
        return None

    return wait_for(check)


def state(sim: Simulator, card: str | None = None) -> dict:
    params = {"card": card} if card else {}
    response = requests.get(f"{sim.url}/control/state", params=params, timeout=5)
    response.raise_for_status()
    return response.json()


def control(sim: Simulator, what: str, **params) -> dict:
    response = requests.post(f"{sim.url}/control/{what}", params=params, timeout=5)
    response.raise_for_status()
    return response.json()


@pytest.fixture
def sms(exset_simulator, tqueue_url):
    """A connection of the test's own to the SMS database (our side's)."""
    connection = connect(tqueue_url)
    yield connection
    connection.close()


def add(sms, card: str, service: str, *, priority=5, subscription="ZX-EXS-T1") -> str:
    return insert(
        sms,
        "ADD_SUBSCRIPTION",
        {
            "subscription": subscription,
            "distributor": "MAIN",
            "service_ca_id": service,
            "card_ca_id": card,
        },
        priority=priority,
        card=card,
    )


def test_entries_go_new_under_processing_done_express_first(exset_simulator, sms):
    sim = exset_simulator
    assert control(sim, "down")["down"] is True
    normal_1 = add(sms, "EX-C1", "GFA1")
    normal_2 = add(sms, "EX-C1", "EFA2")
    express = add(sms, "EX-C2", "AF1", priority=1)
    time.sleep(0.3)  # down: nothing is taken
    assert {s for s, *_ in rows(sms).values()} == {"New"}
    assert state(sim)["counts"]["arrivals"] == 0

    control(sim, "slow", seconds="0.4")
    control(sim, "up")
    # Taken together (committed), then answered one by one while slow.
    wait_for(lambda: {s for s, *_ in rows(sms).values()} == {"Under Processing"})
    wait_for(lambda: rows(sms)[express][0] == "Done" and rows(sms)[normal_2][0] != "Done")
    assert answered(sms, normal_1, normal_2, express) == {
        e: ("Done", None, None) for e in (normal_1, normal_2, express)
    }
    assert all(processed for *_, processed in rows(sms).values())
    assert processed_order(sms) == [express, normal_1, normal_2]
    counts = state(sim)["counts"]
    assert (counts["entries"], counts["arrivals"], counts["done"], counts["error"]) == (3, 3, 3, 0)


def test_state_shows_what_each_card_holds_and_the_broadcasts_apart(exset_simulator, sms):
    sim = exset_simulator
    fingerprint = {"window_type": "overlay", "position_x": 10, "position_y": 20}
    entries = [
        add(sms, "EX-C1", "GFA1"),
        add(sms, "EX-C1", "EFA2"),
        insert(
            sms,
            "PAIR_UNPAIR_DEVICE_RECEIVER",
            {"action": "PAIR", "card_ca_id": "EX-C1", "decoder_ca_id": "EX-D1"},
            card="EX-C1",
        ),
        insert(
            sms,
            "ADD_INDIVIDUAL_INFOCAS_MESSAGE",
            {
                "card_ca_id": "EX-C1",
                "message": "Your bill is ready.",
                "duration_minutes": 5,
                "interval_minutes": 1,
                "communication": "CQ-7",
            },
            card="EX-C1",
        ),
        insert(
            sms,
            "ADD_INDIVIDUAL_FINGERPRINT_MESSAGE",
            {"card_ca_id": "EX-C1", "fingerprint": fingerprint},
            card="EX-C1",
        ),
        insert(
            sms,
            "RENEW_SUBSCRIPTION",
            {"card_ca_id": "EX-C1", "service_ca_id": "GFA1", "distributor": "MAIN"},
            card="EX-C1",
        ),
        insert(
            sms,
            "REMOVE_SUBSCRIPTION",
            {"card_ca_id": "EX-C1", "service_ca_id": "EFA2", "distributor": "MAIN"},
            card="EX-C1",
        ),
        insert(
            sms,
            "ADD_BROADCAST_INFOCAS_MESSAGE",
            {"message": "Maintenance tonight.", "duration_minutes": 10, "interval_minutes": 2},
        ),
        insert(
            sms,
            "ADD_BROADCAST_FINGERPRINT_MESSAGE",
            {"fingerprint": fingerprint, "service_ca_id": "GFA1"},
        ),
        add(sms, "EX-C2", "AF1"),
        insert(
            sms,
            "RECALL_SUBSCRIPTION",
            {"card_ca_id": "EX-C2", "distributors": ["MAIN"], "service_ca_ids": ["AF1"]},
            card="EX-C2",
        ),
        insert(
            sms,
            "CHANGE_DEVICE",
            {"subscription": "ZX-EXS-T1", "replaced_ca_id": "EX-C2", "new_ca_id": "EX-C3"},
            card="EX-C2",
        ),
    ]
    assert set(answered(sms, *entries).values()) == {("Done", None, None)}

    card = state(sim, "EX-C1")["state"]
    assert sorted(card["entitlements"]) == ["GFA1"]
    assert card["entitlements"]["GFA1"]["renewed_at"]
    assert card["decoder"] == "EX-D1"
    assert [(m["message"], m["communication"]) for m in card["infocas"]] == [
        ("Your bill is ready.", "CQ-7")
    ]
    assert [f["fingerprint"] for f in card["fingerprints"]] == [fingerprint]

    whole = state(sim)
    assert "EX-C2" not in whole["cards"]  # changed for EX-C3, which holds what it held
    moved = whole["cards"]["EX-C3"]
    assert (sorted(moved["entitlements"]), moved["replaced_ca_id"]) == (["AF1"], "EX-C2")
    assert [r["service_ca_ids"] for r in moved["recalls"]] == [["AF1"]]
    assert [m["message"] for m in whole["broadcasts"]["infocas"]] == ["Maintenance tonight."]
    assert [f["cards"] for f in whole["broadcasts"]["fingerprints"]] == [["EX-C1"]]
    counts = whole["counts"]
    assert {k: counts[k] for k in ("cards", "entitlements", "paired", "infocas")} == {
        "cards": 2,
        "entitlements": 2,
        "paired": 1,
        "infocas": 1,
    }
    assert (counts["broadcast_fingerprints"], counts["done"]) == (1, len(entries))


def test_what_the_sms_refuses_is_answered_error_and_changes_nothing(exset_simulator, sms):
    sim = exset_simulator
    held = add(sms, "EX-C1", "GFA1")
    answered(sms, held)
    other = add(sms, "EX-C9", "AF1", subscription="ZX-EXS-T2")
    answered(sms, other)
    before = state(sim)["cards"]
    refused = {
        insert(sms, "REMOVE_SUBSCRIPTION", {"card_ca_id": "EX-NONE", "service_ca_id": "GFA1"}): (
            "UNKNOWN_CARD",
            "Card EX-NONE is unknown to the SMS.",
        ),
        insert(sms, "SET_PIN", {"card_ca_id": "EX-C1"}): (
            "UNKNOWN_COMMAND",
            "Unknown command 'SET_PIN'.",
        ),
        insert(sms, "ADD_SUBSCRIPTION", {"card_ca_id": "EX-C1"}): (
            "INVALID_PARAMETERS",
            "Parameter 'service_ca_id' is missing or empty.",
        ),
        insert(sms, "ADD_SUBSCRIPTION", "not json"): (
            "INVALID_PARAMETERS",
            "The entry's parameters are not a JSON object.",
        ),
        insert(sms, "PAIR_UNPAIR_DEVICE_RECEIVER", {"action": "UNPAIR", "card_ca_id": "EX-C1"}): (
            "NOT_PAIRED",
            "Card EX-C1 is paired with no decoder.",
        ),
        insert(
            sms,
            "CHANGE_DEVICE",
            {"subscription": "ZX-EXS-T1", "replaced_ca_id": "EX-C1", "new_ca_id": "EX-C9"},
        ): ("CARD_IN_USE", "Card EX-C9 holds services of subscription ZX-EXS-T2."),
    }
    # Removing what a card does not hold changes nothing and is Done, as at Conax.
    not_held = insert(sms, "REMOVE_SUBSCRIPTION", {"card_ca_id": "EX-C1", "service_ca_id": "X"})

    found = answered(sms, *refused, not_held)
    assert found == {
        **{e: ("Error", *why) for e, why in refused.items()},
        not_held: ("Done", None, None),
    }
    assert state(sim)["cards"] == before


def test_reject_controls_answer_error_for_a_share_or_for_cards(exset_simulator, sms):
    sim = exset_simulator
    assert control(sim, "reject", cards="EX-C2")["reject_cards"] == ["EX-C2"]
    blocked, passed = add(sms, "EX-C2", "GFA1"), add(sms, "EX-C1", "GFA1")
    assert answered(sms, blocked, passed) == {
        blocked: ("Error", "CARD_BLOCKED", "Card EX-C2 is blocked in the SMS."),
        passed: ("Done", None, None),
    }
    assert state(sim, "EX-C2")["state"] is None

    control(sim, "reject", share="1")
    everything = add(sms, "EX-C1", "EFA2")
    assert answered(sms, everything)[everything] == (
        "Error",
        "REJECTED",
        "The SMS rejected the entry (simulated rejection of 100%).",
    )

    control(sim, "reject", share="0.5")
    half = [add(sms, f"EX-H{n}", "GFA1") for n in range(20)]
    outcomes = [status for status, *_ in answered(sms, *half).values()]
    assert 0 < outcomes.count("Error") < 20

    assert control(sim, "reject", share="0")["reject_share"] == 0
    fine = add(sms, "EX-C2", "EFA2")
    assert answered(sms, fine)[fine][0] == "Done"
    bad = requests.post(f"{sim.url}/control/reject", params={"share": "2"}, timeout=5)
    assert (bad.status_code, bad.text) == (400, "share=2: give 0 to 1.")


def test_reset_forgets_everything(exset_simulator, sms):
    sim = exset_simulator
    control(sim, "slow", seconds="0.01")
    answered(sms, add(sms, "EX-C1", "GFA1"))
    assert control(sim, "reset") == {
        "down": False,
        "slow_seconds": 0.0,
        "reject_share": 0.0,
        "reject_cards": [],
    }
    whole = state(sim)
    assert (whole["cards"], whole["received"], whole["counts"]["arrivals"]) == ({}, {}, 0)


def test_each_entry_is_applied_once_across_a_restart_and_a_repeat(tqueue_url, tmp_path):
    state_file = tmp_path / "sms-state.json"
    sim = Simulator(tqueue_url, state_file=state_file).start()
    sms = connect(tqueue_url)
    try:
        answered(sms, add(sms, "EX-C1", "GFA1"))
        control(sim, "slow", seconds="0.3")
        messages = [
            insert(
                sms,
                "ADD_INDIVIDUAL_INFOCAS_MESSAGE",
                {
                    "card_ca_id": "EX-C1",
                    "message": f"Message {n}",
                    "duration_minutes": 1,
                    "interval_minutes": 1,
                },
                card="EX-C1",
            )
            for n in range(4)
        ]
        wait_for(lambda: rows(sms)[messages[0]][0] == "Done")
        sim.stop()  # the rest are left Under Processing
        left = [e for e in messages if rows(sms)[e][0] == "Under Processing"]
        assert left

        sim = Simulator(tqueue_url, state_file=state_file).start()
        assert set(answered(sms, *messages).values()) == {("Done", None, None)}
        card = state(sim, "EX-C1")["state"]
        assert [m["message"] for m in card["infocas"]] == [f"Message {n}" for n in range(4)]
        assert {e: state(sim)["received"][e] for e in messages} == dict.fromkeys(messages, 1)

        # Set back to New (as if written again): answered as before, not applied again.
        q = sms.column
        sms.execute(
            f"UPDATE {sms.table} SET {q('status')} = 'New', {q('processed_at')} = NULL "
            f"WHERE {q('entry_id')} = %s",
            (messages[0],),
        )
        sms.conn.commit()
        assert answered(sms, messages[0])[messages[0]] == ("Done", None, None)
        whole = state(sim)
        assert whole["received"][messages[0]] == 2
        assert whole["counts"]["repeated"] == 1
        assert len(whole["cards"]["EX-C1"]["infocas"]) == 4
    finally:
        sim.stop()
        sms.close()


def test_a_password_inside_the_url_is_refused_without_showing_it():
    with pytest.raises(ValueError, match="holds a password") as refused:
        Simulator("postgresql://exset:s3cret@127.0.0.1:5432/sms").start()
    assert "s3cret" not in str(refused.value)


def test_command_line_serves_the_control_endpoint(tmp_path):
    url = f"sqlite:///{tmp_path / 'exset' / 'tqueue.sqlite3'}"
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "cas_simulator",
            "exset",
            "--database-url",
            url,
            "--control-port",
            "0",
            "--interval",
            "0.1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "control http" not in "".join(lines):
            lines.append(process.stdout.readline())
        line = "".join(lines)
        found = re.search(r"control (http://127\.0\.0\.1:\d+)/control/state", line)
        assert found, line
        assert f"EXSET SMS simulator on {url} (table TQUEUE)" in line
        sms = connect(url)
        entry = add(sms, "EX-C1", "GFA1")
        assert answered(sms, entry)[entry] == ("Done", None, None)
        sms.close()
        held = requests.get(f"{found[1]}/control/state", params={"card": "EX-C1"}, timeout=5)
        assert list(held.json()["state"]["entitlements"]) == ["GFA1"]
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


@pytest.mark.parametrize("tqueue_url", ["postgresql"], indirect=True)
def test_a_lost_connection_is_taken_up_again_without_applying_twice(exset_simulator, sms):
    sim = exset_simulator
    control(sim, "slow", seconds="0.3")
    entries = [add(sms, "EX-C1", service) for service in ("GFA1", "EFA2", "RFB1", "BFB2")]
    wait_for(lambda: rows(sms)[entries[0]][0] == "Done")
    # The SMS's connection is cut while it holds entries Under Processing.
    cursor = sms.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    assert cursor.fetchall() == [(True,)]
    sms.conn.commit()

    assert set(answered(sms, *entries).values()) == {("Done", None, None)}
    whole = state(sim)
    assert sorted(whole["cards"]["EX-C1"]["entitlements"]) == ["BFB2", "EFA2", "GFA1", "RFB1"]
    assert {e: whole["received"][e] for e in entries} == dict.fromkeys(entries, 1)
