from django.apps import AppConfig


class BenchConfig(AppConfig):
    """The benchmark and its load generator: the ``bench`` and ``generate_load`` commands. It
    imports the product; nothing in the product imports it."""

    name = "bench"
