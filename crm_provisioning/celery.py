"""The Celery application: configured from Django settings (``CELERY_*``)."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_provisioning.settings")

app = Celery("crm_provisioning")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_broken_connections(sender=None, **kwargs) -> None:
    """Before and after every task, what Django does around every web request: close a
    connection that failed (a restarted PostgreSQL) or outlived ``CONN_MAX_AGE``, and check
    the next one before use. A worker reuses its connection across tasks (settings:
    ``CELERY_DB_REUSE_MAX``), and without this one broken connection failed every later task
    of the process until it was restarted by hand."""
    if sender is not None and getattr(sender.request, "is_eager", False):
        return  # run inside the caller, on the caller's connection and transaction
    from django.db import close_old_connections

    close_old_connections()
