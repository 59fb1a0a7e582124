"""Loaded by the back office's autodiscovery after every app's own admin (this app is listed
last): our overrides of Django's user and group admin and of django-celery-beat's."""

from . import people_admin, scheduler_admin

__all__ = ["people_admin", "scheduler_admin"]
