import json
from datetime import timedelta

import requests
from django.utils import timezone
from django.utils.timesince import timesince

from providers import env_secrets, registry
from providers.extensions import Health
from providers.models import ConnectorToken, ProvisioningRequest

from .forms import GenericConnection, GenericParameters

Op = ProvisioningRequest.Operation
# Far above any answer about one request; a larger one is refused, not read.
MAX_ANSWER_BYTES = 1 << 20
# A connector polls every few seconds; one silent this long is taken as not polling.
SILENT_CONNECTOR = timedelta(minutes=5)


class GenericAdapter(registry.Adapter):
    """Any platform through a generic Web API (seed 004), real-time with reset runs.

    *Pull* (the default, as in the seed): the platform's connector takes Pending requests over
    our Web API (*Get Pending*) and posts each answer (*Send Response*). *Push*: a worker POSTs
    each request, with its uid, to the connector's URL and reads the answer from the reply.
    """

    code = "generic"
    name = "Generic (Web API)"
    model = registry.HYBRID
    connection_form = GenericConnection
    parameters_form = GenericParameters
    commands = {
        Op.ACTIVATE: "ACTIVATE_SERVICE",
        Op.DEACTIVATE: "DEACTIVATE_SERVICE",
        Op.CREATE_PAIRING: "CREATE_PAIRING",
        Op.ADD_TO_PAIRING: "ADD_TO_EXISTING_PAIRING",
    }

    @classmethod
    def run_types(cls):
        return ("reset_subscriptions", "archive_requests")

    @classmethod
    def utilities(cls):
        return ("reset_subscription",)

    @classmethod
    def api_urls(cls) -> list:
        from . import urls

        return urls.urlpatterns

    _sessions: dict[int, requests.Session] = {}  # one pooled HTTP session per provider

    @property
    def delivery(self) -> str:
        mode = (self.provider.connection or {}).get("mode", "pull")
        return registry.PUSH if mode == "push" else registry.PULL

    def _session(self) -> requests.Session:
        session = self._sessions.get(self.provider.pk)
        if session is None:
            session = self._sessions[self.provider.pk] = requests.Session()
        token_env = self.provider.connection.get("token_env")
        if token_env:
            token = env_secrets.read(token_env, "bearer token")
            session.headers["Authorization"] = f"Bearer {token}"
        else:
            session.headers.pop("Authorization", None)
        return session

    def check(self) -> Health:
        """Pull: when the connector last called (its tokens' last use, to the minute). Push: no
        call is made to the connector for a check, since it would act on what it receives."""
        if self.delivery == registry.PUSH:
            return Health(None, f"No check: {self.provider.name} pushes to the connector.")
        last = (
            ConnectorToken.objects.filter(provider=self.provider, last_used_at__isnull=False)
            .order_by("-last_used_at")
            .values_list("last_used_at", flat=True)
            .first()
        )
        if last is None:
            return Health(None, f"No check: the connector of {self.provider.name} never called.")
        now = timezone.now()
        ago = "just now"
        if now - last >= timedelta(minutes=1):
            ago = timesince(last, now).replace("\xa0", " ") + " ago"
        return Health(
            now - last <= SILENT_CONNECTOR,
            f"The connector of {self.provider.name} last called {ago}.",
        )

    def send(self, request) -> registry.Answer:
        body = {
            "uid": str(request.uid),
            "command": request.command,
            "priority": "EXPRESS" if request.priority == request.Priority.EXPRESS else "NORMAL",
            "card_ca_id": request.installed_item.ca_id if request.installed_item_id else None,
            "parameters": request.parameters,
        }
        timeout = self.provider.connection.get("timeout_seconds", 10)
        try:
            with self._session().post(
                self.provider.connection["push_url"], json=body, timeout=timeout, stream=True
            ) as reply:
                content = _content(reply)
        except requests.RequestException as exc:
            raise registry.TransportError(f"{type(exc).__name__}: {exc}") from exc
        text = content.decode("utf-8", "replace")[:300]
        if reply.status_code >= 500:
            raise registry.TransportError(f"HTTP {reply.status_code} from the connector")
        if reply.status_code >= 400:
            raise registry.TransportError(
                f"HTTP {reply.status_code} from the connector: {text}", permanent=True
            )
        try:
            answer = json.loads(content)
            accepted = answer["status"] == "ACCEPTED"
        except (ValueError, KeyError, TypeError) as exc:
            raise registry.TransportError(
                f"Unreadable answer from the connector: {text}", permanent=True
            ) from exc
        return registry.Answer(
            accepted=accepted,
            error_code=str(answer.get("error_code", ""))[:60],
            error_description=str(answer.get("error_description", "")),
            response=answer,
        )


def _content(reply: requests.Response) -> bytes:
    """The reply's body, refused unread (permanently: it will never fit) when it is over
    ``MAX_ANSWER_BYTES``."""
    length = reply.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > MAX_ANSWER_BYTES:
        raise _oversized(f"{length} bytes announced")
    content = bytearray()
    for chunk in reply.iter_content(64 * 1024):
        content += chunk
        if len(content) > MAX_ANSWER_BYTES:
            raise _oversized("sent without a length")
    return bytes(content)


def _oversized(detail: str) -> registry.TransportError:
    return registry.TransportError(
        f"Refused the connector's answer: over {MAX_ANSWER_BYTES} bytes ({detail}), never read",
        permanent=True,
    )
