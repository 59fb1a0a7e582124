from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "providers"

    def ready(self) -> None:
        # Connects the engine to the subscription actions' domain signal.
        from . import engine  # noqa: F401
