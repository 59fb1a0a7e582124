"""A provider's history: who changed what, in the back office's *History* page of the provider.

Every change of a provider, through the back office or the Web API, is one admin ``LogEntry``
with the person and a message naming each changed setting with its old and new value (an
endpoint, or the name of a secret's variable — never a secret, which is not stored).
"""

from django.contrib.admin.models import ADDITION, CHANGE, LogEntry

from catalogue.models import Provider

FIELDS = ("name", "type", "enabled", "external_system_id", "connection", "parameters")


def snapshot(provider: Provider) -> dict:
    """The values whose changes are recorded."""
    return {field: getattr(provider, field) for field in FIELDS}


def initial(form) -> dict:
    """The values an admin form of the provider started from."""
    values = {**form.initial, "external_system_id": form.initial.get("external_system")}
    return {field: values.get(field) for field in FIELDS}


def changes(before: dict | None, after: dict) -> list[str]:
    """Each changed value, as ``connection.endpoint_url: 'old' → 'new'`` (on a creation,
    ``before`` None: each value set, as ``connection.endpoint_url: 'new'``)."""
    said = []

    def say(label: str, old, new) -> None:
        if before is None:
            if new not in (None, "", {}):
                said.append(f"{label}: {new!r}")
        elif old != new:
            said.append(f"{label}: {old!r} → {new!r}")

    for field in FIELDS:
        old, new = (before or {}).get(field), after.get(field)
        if field in ("connection", "parameters"):
            old, new = old or {}, new or {}
            for key in sorted(set(old) | set(new)):
                say(f"{field}.{key}", old.get(key), new.get(key))
        else:
            say(field.removesuffix("_id"), old, new)
    return said


def message(before: dict | None, after: dict) -> str:
    """The history's words for a creation (``before`` None) or a change."""
    said = changes(before, after)
    if not said:
        return "No fields changed."
    return f"{'Added' if before is None else 'Changed'} {'; '.join(said)}."


def record(user, provider: Provider, before: dict | None) -> None:
    """Log the provider's creation (``before`` None) or its change by ``user``."""
    after = snapshot(provider)
    if before is not None and not changes(before, after):
        return
    flag = ADDITION if before is None else CHANGE
    text = message(before, after)
    LogEntry.objects.log_actions(user.pk, [provider], flag, change_message=text, single_object=True)
