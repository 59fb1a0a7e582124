"""Errors of delivery, apart from the registry so that modules the registry needs can raise them."""


class TransportError(Exception):
    """Delivery failed. The engine retries with backoff unless ``permanent`` (a request the
    platform will never take as it is), which makes the request Failed at once. ``kind`` names
    what failed when the raiser knows it better than the cause can tell
    (``providers.failure_kinds``: "auth", "secret", "unavailable", "protocol")."""

    def __init__(self, message: str, *, permanent: bool = False, kind: str = ""):
        super().__init__(message)
        self.permanent = permanent
        self.kind = kind
