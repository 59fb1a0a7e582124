"""Actions while Redis is down or frozen: the action has committed, so the Web API says so (its
delivery cannot be woken now), and the request is delivered once Redis is back — by the
sweeper, on a worker that reconnected by itself. Redis on a port of the test's own."""

import pytest
import requests

from tests import own_servers, workers

pytestmark = [pytest.mark.worker, pytest.mark.faults]


def pending(postgres) -> int:
    return postgres.query(
        "SELECT count(*) FROM providers_provisioningrequest WHERE state <> 'completed'"
    )[0][0]


@pytest.fixture
def stack(request, platform, tmp_path):
    """The product on the test's own PostgreSQL and Redis: a worker with beat and a web
    server, with what the set-up made delivered already. The sweeper's period: one second,
    or ``request.param``."""
    sweep = getattr(request, "param", "1")
    with own_servers.servers(tmp_path) as (postgres, redis):
        env = own_servers.environment(postgres, redis, SWEEP_SECONDS=sweep, HEARTBEAT_SECONDS="1")
        world = own_servers.set_up(env, platform.url, count=2)
        worker = workers.start(tmp_path, beat=True, **env)
        logs = [tmp_path / "worker.log", tmp_path / "web.log", tmp_path / "redis.log"]
        try:
            with own_servers.processes.web_server(tmp_path / "web.log", workers=1, env=env) as api:
                workers.wait_until(
                    lambda: not pending(postgres), seconds=90, what="the set-up", logs=logs
                )
                yield {"api": api, "postgres": postgres, "redis": redis, "logs": logs, **world}
        finally:
            workers.stop(worker)


def acted_once_and_delivered(stack, platform, answer: dict) -> None:
    [made] = answer["requests"]
    postgres = stack["postgres"]
    # Committed: the service is stopped and its request waits, whatever Redis did.
    assert postgres.query(
        "SELECT state FROM providers_provisioningrequest WHERE uid = %s", [made["uid"]]
    ) == [("pending",)]
    workers.wait_until(
        lambda: not pending(postgres),
        seconds=90,
        what="the request delivered once Redis is back",
        logs=stack["logs"],
    )
    state = platform.state()
    assert state["applied"][made["uid"]] == 1
    assert set(state["applied"].values()) == {1}


def test_an_action_while_redis_is_down_succeeds_and_is_delivered_once_it_is_back(stack, platform):
    stack["redis"].stop()
    try:
        answer = own_servers.act(stack["api"], stack["token"], stack["services"][0], "stop")
    finally:
        stack["redis"].start()
    acted_once_and_delivered(stack, platform, answer)


def test_an_action_while_redis_is_frozen_answers_and_is_delivered_once_it_thaws(stack, platform):
    stack["redis"].freeze()
    try:
        # The guard: without timeouts on the way to Redis this call hangs as long as Redis.
        answer = own_servers.act(
            stack["api"], stack["token"], stack["services"][0], "stop", timeout=30
        )
    finally:
        stack["redis"].thaw()
    acted_once_and_delivered(stack, platform, answer)


def test_run_now_while_redis_is_frozen_answers_and_shows_the_run_did_not_start(stack):
    api, definition = stack["api"], stack["definition"]
    headers = {"Authorization": f"Token {stack['operator_token']}"}
    stack["redis"].freeze()
    try:
        # The guard: publishing the run's task would otherwise wait on Redis, retrying.
        answer = requests.post(
            f"{api}/api/v1/run-definitions/{definition}/run-now/", headers=headers, timeout=30
        )
    finally:
        stack["redis"].thaw()
    assert answer.status_code == 202, answer.text[:2000]
    runs = requests.get(
        f"{api}/api/v1/process-runs/?definition={definition}", headers=headers, timeout=30
    ).json()["results"]
    assert [(run["status"], run["trigger"]) for run in runs] == [("failed", "run_now")]
    assert "Not started: the task broker did not take the run" in runs[0]["message"]


@pytest.mark.parametrize("stack", ["3600"], indirect=True)  # no sweeper to make up for it
def test_after_a_redis_restart_the_next_action_wakes_delivery_at_once(stack, platform):
    """The web server's and the worker's connections to Redis died with it: the next wake-up
    reconnects rather than being lost."""
    api, token, services = stack["api"], stack["token"], stack["services"]
    first = own_servers.act(api, token, services[0], "stop")
    workers.wait_until(
        lambda: not pending(stack["postgres"]), seconds=60, what="delivery", logs=stack["logs"]
    )
    stack["redis"].stop()
    stack["redis"].start()
    second = own_servers.act(api, token, services[1], "stop")
    workers.wait_until(
        lambda: not pending(stack["postgres"]),
        seconds=60,
        what="delivery after the restart, woken by the action",
        logs=stack["logs"],
    )
    applied = platform.state()["applied"]
    assert applied[first["requests"][0]["uid"]] == applied[second["requests"][0]["uid"]] == 1
