"""The reference connector: what a platform's side of the Generic Web API looks like.

It pulls Pending requests page by page, applies each to an in-memory platform (entitlements per
card, pairings), and answers. It applies a request id once however often it sees it, counts what
it received and applied per id, and can be told — over a small control port — to reject some
requests or to go offline. Tests and the demo run it as a real process over HTTP.
"""

import contextlib
import json
import logging
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

log = logging.getLogger(__name__)


class Platform:
    """An in-memory CA / OTT platform."""

    def __init__(self):
        self.lock = threading.Lock()
        self.entitlements: dict[str, set[str]] = defaultdict(set)
        self.pairings: dict[str, set[str]] = {}
        self.received: Counter = Counter()
        self.applied: Counter = Counter()
        self.answers: dict[str, dict] = {}
        self.reject_ca_ids: set[str] = set()
        self.reject_cards: set[str] = set()
        self.online = True
        self.delay_seconds = 0.0  # push: how long the platform takes to answer

    def take(self, request: dict) -> dict:
        """Apply one request (once per uid) and return the answer to send."""
        uid = request["uid"]
        with self.lock:
            self.received[uid] += 1
            if uid in self.answers:  # a duplicate: answer again, change nothing
                return self.answers[uid]
            answer = self._apply(request)
            self.answers[uid] = answer
            if answer["status"] == "ACCEPTED":
                self.applied[uid] += 1
            return answer

    def _apply(self, request: dict) -> dict:
        params = request["parameters"]
        card = params.get("card_ca_id") or request.get("card_ca_id") or ""
        ca_id = params.get("service_ca_id", "")
        command = request["command"]
        refused_package = command == "ACTIVATE_SERVICE" and ca_id in self.reject_ca_ids
        if refused_package or card in self.reject_cards:
            return {
                "request": request["uid"],
                "status": "REJECTED",
                "error_code": "REFUSED",
                "error_description": f"The platform refuses {ca_id or 'the request'} on {card}.",
            }
        if command == "ACTIVATE_SERVICE":
            self.entitlements[card].add(ca_id)
        elif command == "DEACTIVATE_SERVICE":
            self.entitlements[card].discard(ca_id)
        elif command in ("CREATE_PAIRING", "ADD_TO_EXISTING_PAIRING"):
            self._pair(command, params, card)
        return {"request": request["uid"], "status": "ACCEPTED"}

    def _pair(self, command: str, params: dict, card: str) -> None:
        """As a CAS pairs: devices paired anew leave any other pairing (one left empty is
        gone); a pairing added to is the one holding the paired card."""
        devices = {d["ca_id"] for d in params.get("devices", [])}
        anchor = params.get("paired_card_ca_id") or card
        if command == "ADD_TO_EXISTING_PAIRING":
            anchor = next((k for k, p in self.pairings.items() if anchor in p), anchor)
            devices |= self.pairings.get(anchor, {anchor})
        for key in list(self.pairings):
            self.pairings[key] -= devices
            if not self.pairings[key]:
                del self.pairings[key]
        self.pairings[anchor] = devices

    def state(self) -> dict:
        with self.lock:
            return {
                "online": self.online,
                "entitlements": {c: sorted(s) for c, s in self.entitlements.items() if s},
                "pairings": {c: sorted(s) for c, s in self.pairings.items()},
                "received": dict(self.received),
                "applied": dict(self.applied),
            }


class GenericConnector:
    def __init__(self, base_url: str, token: str, platform: Platform, *, page_size: int = 1000):
        self.pending_url = base_url.rstrip("/") + "/api/v1/generic/pending/"
        self.responses_url = base_url.rstrip("/") + "/api/v1/generic/responses/"
        self.platform = platform
        self.page_size = page_size
        # One session to read, one to answer: a page is answered while the next is read.
        self.session, self.answering = requests.Session(), requests.Session()
        for session in (self.session, self.answering):
            session.headers["Authorization"] = f"Token {token}"
        self.unsent: dict[str, dict] = {}  # answers not yet acknowledged by the server

    def poll_once(self) -> int:
        """Pull every Pending request, apply, answer. Returns how many were taken.

        A page's answers are sent while the next page is read (the cursor allows it: what is
        answered meanwhile only leaves the pages behind the cursor), one call at a time and in
        order. Answers the server has not acknowledged stay in ``unsent`` and go first on the
        next poll, so a failure loses nothing; answering one twice is harmless."""
        if not self.platform.online:
            return 0
        self._flush()
        taken, url, params = 0, self.pending_url, {"page_size": self.page_size}
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="answers") as sender:
            sending: Future | None = None
            try:
                while url:
                    response = self.session.get(url, params=params, timeout=30)
                    response.raise_for_status()
                    page = response.json()
                    answers = [self.platform.take(request) for request in page["results"]]
                    for answer in answers:
                        self.unsent[answer["request"]] = answer
                    taken += len(answers)
                    if sending is not None:
                        self._acknowledge(sending.result())
                    sending = sender.submit(self._send, answers) if answers else None
                    url, params = page["next"], None
            except BaseException:
                if sending is not None:  # what it did still counts; its failure is not ours
                    with contextlib.suppress(Exception):
                        self._acknowledge(sending.result())
                raise
            if sending is not None:
                self._acknowledge(sending.result())
        return taken

    def _flush(self) -> None:
        while self.unsent:
            self._acknowledge(self._send(list(self.unsent.values())[:1000]))

    def _acknowledge(self, uids: list[str]) -> None:
        for uid in uids:
            self.unsent.pop(uid, None)

    def _send(self, batch: list[dict]) -> list[str]:
        """Post answers (up to 1000); returns the uids done with: acknowledged, or moot."""
        done: list[str] = []
        while batch:
            response = self.answering.post(
                self.responses_url, json={"responses": batch}, timeout=60
            )
            if response.status_code == 409:
                # Someone else answered differently; ours is moot. Log it, drop it (the
                # message names its request), and send the others again.
                message = response.json()["error"]["message"]
                log.warning("Conflict: %s", message)
                moot = next((a for a in batch if a["request"] in message), batch[0])
                done.append(moot["request"])
                batch = [a for a in batch if a is not moot]
                continue
            response.raise_for_status()
            done += [answer["request"] for answer in batch]
            break
        return done

    def run(self, interval: float, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.poll_once()
            except requests.RequestException as exc:
                log.warning("Poll failed, will retry: %s", exc)
            stop.wait(interval)


def connector_server(platform: Platform, port: int) -> ThreadingHTTPServer:
    """The connector's own HTTP side.

    - ``POST /requests``: push mode — one request in, its answer out (503 while offline).
    - ``GET /state``: entitlements, pairings, and what was received and applied per uid.
    - ``POST /offline``, ``/online``; ``/reject {"ca_ids": [...], "cards": [...]}`` makes the
      platform refuse to activate those CA IDs and refuse anything for those cards;
      ``/slow {"seconds": n}`` makes the answer to each pushed request take that long.
    """

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, body: dict, status: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/state":
                self._reply(platform.state())
            else:
                self._reply({"error": "not found"}, 404)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path == "/requests":
                return self._take(body)
            with platform.lock:
                if self.path == "/offline":
                    platform.online = False
                elif self.path == "/online":
                    platform.online = True
                elif self.path == "/reject":
                    platform.reject_ca_ids = set(body.get("ca_ids", []))
                    platform.reject_cards = set(body.get("cards", []))
                elif self.path == "/slow":
                    platform.delay_seconds = float(body.get("seconds", 0))
                else:
                    return self._reply({"error": "not found"}, 404)
            self._reply({"ok": True})

        def _take(self, request: dict) -> None:
            if not platform.online:
                return self._reply({"error": "platform offline"}, 503)
            answer = platform.take(request)
            if platform.delay_seconds:
                # Applied, but the answer is slow to come back: the window in which a sender
                # may die having sent a request that is already done.
                time.sleep(platform.delay_seconds)
            self._reply(answer)

        def log_message(self, format, *args):  # quiet: the connector logs what matters
            pass

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def serve(base_url: str | None, token: str, *, interval: float, port: int | None) -> None:
    """Run until interrupted: poll ``base_url`` every ``interval`` seconds (pull mode) and/or
    serve pushed requests and the control endpoints on ``port``."""
    platform = Platform()
    stop = threading.Event()
    server = None
    if port:
        server = connector_server(platform, port)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        if base_url:
            GenericConnector(base_url, token, platform).run(interval, stop)
        else:
            stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if server:
            server.shutdown()
