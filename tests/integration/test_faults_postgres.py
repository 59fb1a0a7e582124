"""Workers survive a PostgreSQL restart: a real worker (with beat) on a cluster of the test's
own, the cluster restarted under it, and the worker goes on by itself — the next action's
request is delivered once, the heartbeat and the stale-run sweeper run again."""

import pytest

from tests import own_servers, workers

pytestmark = [pytest.mark.worker, pytest.mark.faults]


def requests_by_state(postgres) -> dict[str, int]:
    rows = postgres.query(
        "SELECT state, count(*) FROM providers_provisioningrequest GROUP BY state"
    )
    return dict(rows)


def beats(postgres) -> int:
    return sum(n for (n,) in postgres.query("SELECT beats FROM runs_workerheartbeat"))


STALE_RUN = """
from datetime import timedelta
from django.utils import timezone
from catalogue.models import Provider
from runs.models import ProcessRun, RunDefinition

definition = RunDefinition.objects.create(
    name="Reset all", run_type="reset_subscriptions", provider=Provider.objects.get(name=NAME)
)
run = ProcessRun.objects.create(
    definition=definition, trigger="run_now", heartbeat_at=timezone.now() - timedelta(hours=1)
)
print(run.pk)
"""


def test_after_a_postgresql_restart_the_worker_delivers_beats_and_sweeps_by_itself(
    platform, tmp_path
):
    with own_servers.servers(tmp_path) as (postgres, redis):
        env = own_servers.environment(
            postgres,
            redis,
            SWEEP_SECONDS="1",
            HEARTBEAT_SECONDS="1",
            PROVISIONING_LEASE_SECONDS="3",
            PROVISIONING_RETRY_SECONDS="1",
        )
        world = own_servers.set_up(env, platform.url, count=2)
        worker = workers.start(tmp_path, beat=True, **env)
        logs = [tmp_path / "worker.log", tmp_path / "web.log", postgres.log]
        try:
            with own_servers.processes.web_server(tmp_path / "web.log", workers=1, env=env) as api:
                # Before the restart: what the set-up made is delivered, the worker beats.
                workers.wait_until(
                    lambda: set(requests_by_state(postgres)) == {"completed"} and beats(postgres),
                    seconds=90,
                    what="the set-up's requests delivered and a heartbeat",
                    logs=logs,
                )
                postgres.restart()
                beaten = beats(postgres)
                before = requests_by_state(postgres)["completed"]

                answer = own_servers.act(api, world["token"], world["services"][0], "stop")
                [made] = answer["requests"]
                stale = own_servers.shell(env, f"NAME = {world['provider']!r}\n{STALE_RUN}")

                workers.wait_until(
                    lambda: requests_by_state(postgres) == {"completed": before + 1},
                    seconds=60,
                    what="the action's request delivered after the restart",
                    logs=logs,
                )
                workers.wait_until(
                    lambda: beats(postgres) > beaten,
                    seconds=30,
                    what="the heartbeat after the restart",
                    logs=logs,
                )
                workers.wait_until(
                    lambda: (
                        postgres.query(
                            "SELECT status FROM runs_processrun WHERE id = %s", [int(stale)]
                        )
                        == [("failed",)]
                    ),
                    seconds=30,
                    what="the stale run failed by the sweeper after the restart",
                    logs=logs,
                )
        finally:
            workers.stop(worker)

    state = platform.state()
    assert made["uid"] in state["applied"]
    assert len(state["applied"]) == before + 1  # the set-up's and the action's: nothing lost
    assert set(state["applied"].values()) == {1}  # nothing applied twice
