"""Loaded by pytest before Django settings (``-p tests.pytest_env``).

On the embedded default, tasks sent during the tests go to a broker folder of this test
session's own, never into the development broker in var/broker.
"""

import os
import tempfile

if not (os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL")):
    os.environ.setdefault("CELERY_BROKER_DIR", tempfile.mkdtemp(prefix="crm-test-broker-"))
