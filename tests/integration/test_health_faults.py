"""What a load balancer sees from /health/ready when the database or the broker goes away, on a
PostgreSQL cluster and a Redis server of the test's own behind a real gunicorn: 503 naming
what is down, while /health/live stays 200; ready again once they are back."""

import pytest
import requests

from tests import own_servers, workers

pytestmark = pytest.mark.faults


def health(api: str, which: str) -> tuple[int, dict]:
    answer = requests.get(f"{api}/health/{which}", timeout=30)
    return answer.status_code, answer.json()


def test_ready_says_which_dependency_is_down_and_live_stays_up(tmp_path):
    with own_servers.servers(tmp_path) as (postgres, redis):
        env = own_servers.environment(postgres, redis)
        own_servers.manage(env, "migrate", "--noinput")
        with own_servers.processes.web_server(tmp_path / "web.log", workers=1, env=env) as api:
            assert health(api, "ready") == (
                200,
                {"status": "ok", "checks": {"database": "ok", "broker": "ok"}},
            )

            postgres.stop()
            status, body = health(api, "ready")
            assert status == 503
            assert body["status"] == "unavailable"
            assert body["checks"]["database"].startswith("unreachable")
            assert body["checks"]["broker"] == "ok"
            assert health(api, "live") == (200, {"status": "ok"})

            postgres.start()
            workers.wait_until(
                lambda: health(api, "ready")[0] == 200, seconds=60, what="ready again"
            )

            redis.stop()
            status, body = health(api, "ready")
            assert status == 503
            assert body["checks"] == {"database": "ok", "broker": body["checks"]["broker"]}
            assert body["checks"]["broker"].startswith("unreachable")
            assert health(api, "live") == (200, {"status": "ok"})
