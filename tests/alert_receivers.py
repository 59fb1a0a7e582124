"""Where the tests' alerts arrive, as real servers on free ports of this machine: a webhook
endpoint reading Slack's JSON, and a mailbox speaking enough SMTP for Django's SMTP backend. A
worker in another process sends to them as it would to a chat service or a mail relay."""

import email
import email.message
import email.policy
import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Webhook:
    """A webhook endpoint: keeps what it is sent; answers ``status``."""

    def __init__(self):
        self.received: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                receiver.received.append(json.loads(self.rfile.read(length)))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/secret-path"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        """Each message's first line (``ALERT: …``, ``RECOVERED: …``)."""
        return [body["text"].splitlines()[0] for body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """An SMTP server that keeps every message (Python's own ``smtpd`` is gone from 3.12 on):
    greeting, EHLO, MAIL, RCPT, DATA and QUIT, no TLS and no authentication."""

    def __init__(self):
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        mailbox = self

        class Handler(socketserver.StreamRequestHandler):
            def say(self, *lines: str) -> None:
                self.wfile.write("".join(f"{line}\r\n" for line in lines).encode())

            def handle(self):
                self.say("220 test-mailbox ESMTP")
                recipients: list[str] = []
                while line := self.rfile.readline():
                    verb, _, argument = line.decode("ascii", "replace").strip().partition(" ")
                    verb = verb.upper()
                    if verb == "EHLO":
                        self.say("250-test-mailbox", "250 8BITMIME")
                    elif verb == "RCPT":
                        recipients.append(argument.partition(":")[2].strip().strip("<>"))
                        self.say("250 OK")
                    elif verb == "DATA":
                        self.say("354 End data with <CR><LF>.<CR><LF>")
                        mailbox.keep(recipients, self.rfile)
                        recipients = []
                        self.say("250 OK")
                    elif verb == "QUIT":
                        self.say("221 Bye")
                        return
                    else:  # HELO, MAIL, RSET, NOOP
                        self.say("250 OK")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def keep(self, recipients: list[str], stream) -> None:
        lines = []
        while (line := stream.readline()) not in (b".\r\n", b""):
            lines.append(line[1:] if line.startswith(b".") else line)  # a leading dot doubled
        message = email.message_from_bytes(b"".join(lines), policy=email.policy.default)
        self.messages.append((recipients, message))

    def subjects(self) -> list[str]:
        return [message["Subject"] for _, message in self.messages]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
