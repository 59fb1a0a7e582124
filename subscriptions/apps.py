from django.apps import AppConfig
from django.db.models.signals import post_migrate


class SubscriptionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "subscriptions"

    def ready(self) -> None:
        from core.roles import ensure_roles

        post_migrate.connect(ensure_roles, sender=self, dispatch_uid="ensure_roles")
