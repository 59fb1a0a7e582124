"""The domain signal every subscription action sends.

``action_performed`` is sent *inside* the action's transaction, once per action, with an
``ActionChange`` that says exactly what changed. Receivers (the provisioning engine) write their
provisioning requests in that same transaction, so the requests exist if and only if the state
change commits; a receiver that raises rolls the whole action back.
"""

from dataclasses import dataclass, field

from django.dispatch import Signal

action_performed = Signal()


@dataclass
class ActionChange:
    action: str
    subscription: "object"
    services_on: list = field(default_factory=list)
    services_off: list = field(default_factory=list)
    items_added: list = field(default_factory=list)
    items_removed: list = field(default_factory=list)
    performed_by: "object | None" = None
    reason: str = ""
    # Filled in by the receivers, inside the action's transaction: the provisioning requests
    # the change made (so the caller can show them without looking for them).
    request_ids: list = field(default_factory=list)
    # The batch providers whose processing run, not this action, makes the requests (names).
    deferred_to: list = field(default_factory=list)

    def summary(self) -> dict:
        """The change as plain ids, for the audit trail."""
        return {
            "services_on": [s.pk for s in self.services_on],
            "services_off": [s.pk for s in self.services_off],
            "items_added": [i.pk for i in self.items_added],
            "items_removed": [i.pk for i in self.items_removed],
        }

    @property
    def provisioning(self) -> str:
        """What the change did at the providers, in a sentence: a saved change that reaches no
        platform must not read like a done one."""
        made = len(self.request_ids)
        if made:
            return f"{made} provisioning {'request' if made == 1 else 'requests'} made."
        if self.deferred_to:
            return (
                f"{', '.join(self.deferred_to)} gets it with its next processing run "
                "(no provisioning request yet)."
            )
        return "No provider was changed: no provisioning request was made."

    @property
    def is_empty(self) -> bool:
        return not (self.services_on or self.services_off or self.items_added or self.items_removed)
