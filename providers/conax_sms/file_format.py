"""The layout of Conax SMS request and response files: the one module a deployment replaces.

Conax does not publish the layout of its SAS batch files, so this is ours, kept here and only
here: the shared pipeline (``files.py`` binds it to ``providers.file_delivery``) and the
simulator speak to the CAS through these functions. A deployment whose Conax expects another
layout replaces this module, keeping its names.

Files are UTF-8 text, one record per line, fields separated by ``|``, lines ending ``\\n``. Free
text (a message) is percent-encoded (spaces kept), so no ``|`` or line break can split a line.
We write exactly that; we read files as other systems write them too: with a byte-order mark,
CR LF line ends, trailing spaces, blank lines after the trailer (``_open``), the checksum of
the lines as we write them or of their bytes as written.

Request file ``CRM<provider id>_<file number>.req`` (uploaded as ``<name>.part`` and renamed,
so the CAS never reads half a file)::

    H|CONAX-SMS-REQUEST|1|<file name>|<created, ISO 8601 UTC>
    D|<line number>|<request uid>|<command>|<client id = smartcard CA ID>|<command fields …>
    T|<number of D lines>|<SHA-256 (hex) of every byte before the trailer line>

Command fields (dates ``YYYY-MM-DD``)::

    ADD_SUBSCRIPTION     service CA ID | start date | end date
    RENEW_SUBSCRIPTION   service CA ID | end date
    CANCEL_SUBSCRIPTION  service CA ID | end date
    CREATE_PAIRING       STB CA IDs (comma separated) | other card CA IDs | paired card CA ID
    SEND_MESSAGE         MAIL or BARK | sequence 1-255 | duration in seconds | text

Response file ``<request file stem>.rsp``, written by the CAS for each request file::

    H|CONAX-SMS-RESPONSE|1|<file name>|<request file name>|<created>
    R|<request uid>|OK
    R|<request uid>|ERROR|<error code>|<error description>
    F|<error code>|<error description>      (the whole request file was refused)
    T|<number of R and F lines>|<SHA-256 (hex) of every byte before the trailer line>

A request file holds at most the provider's *Maximum Number of Records in Each File* D lines,
each addressed to one client id.
"""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, unquote

from providers.file_delivery.layout import AnswerBatch, AnswerRecord, FormatError

VERSION = "1"
REQUEST_KIND = "CONAX-SMS-REQUEST"
RESPONSE_KIND = "CONAX-SMS-RESPONSE"
REQUEST_SUFFIX = ".req"
RESPONSE_SUFFIX = ".rsp"
PARTIAL_SUFFIX = ".part"
BOM = "\ufeff"

ADD = "ADD_SUBSCRIPTION"
RENEW = "RENEW_SUBSCRIPTION"
CANCEL = "CANCEL_SUBSCRIPTION"
PAIR = "CREATE_PAIRING"
MESSAGE = "SEND_MESSAGE"

# Command -> how many fields follow the client id.
FIELDS = {ADD: 3, RENEW: 2, CANCEL: 2, PAIR: 3, MESSAGE: 4}
# The request parameters a command's line is written from, so that the export reads only
# these for the commands that make up nearly every file; other commands get all of them.
LINE_KEYS = ("card_ca_id", "service_ca_id")
LINE_PARAMETERS = {ADD: LINE_KEYS, RENEW: LINE_KEYS, CANCEL: LINE_KEYS}


@dataclass(frozen=True)
class RequestRecord:
    uid: str
    command: str
    client_id: str
    fields: tuple[str, ...]


# --- Names ------------------------------------------------------------------------------------


def request_file_name(provider_id: int, number: int) -> str:
    return f"CRM{provider_id:03d}_{number:08d}{REQUEST_SUFFIX}"


def response_file_name(request_name: str) -> str:
    return request_name.removesuffix(REQUEST_SUFFIX) + RESPONSE_SUFFIX


def is_request_file(name: str) -> bool:
    return name.endswith(REQUEST_SUFFIX)


def is_response_file(name: str) -> bool:
    return name.endswith(RESPONSE_SUFFIX)


def answered_file_name(response_name: str) -> str:
    """The request file a response file answers, by name (for a file whose header cannot be
    read)."""
    return response_name.removesuffix(RESPONSE_SUFFIX) + REQUEST_SUFFIX


# --- Building request records from requests --------------------------------------------------


def _text(value) -> str:
    return quote(str(value), safe=" ")


def _clean(value) -> str:
    """An identifier or code: must not carry the separator or a line break."""
    text = str(value if value is not None else "")
    if any(c in text for c in "|\r\n"):
        raise FormatError(f"{text!r} cannot be written in a file field.")
    return text


def record_for(uid: str, command: str, parameters: dict, dates: dict[str, str]) -> RequestRecord:
    """One D line for a request. ``dates``: ``start`` and the end date of each command."""
    p = parameters
    if command in (ADD, RENEW, CANCEL):
        fields = [p["service_ca_id"]]
        if command == ADD:
            fields.append(dates["start"])
        fields.append(dates[command])
        client = p["card_ca_id"]
    elif command == PAIR:
        devices = p.get("devices", [])
        cards = [d["ca_id"] for d in devices if d["kind"] == "smartcard"]
        boxes = [d["ca_id"] for d in devices if d["kind"] != "smartcard"]
        paired = p.get("paired_card_ca_id", "")
        client = cards[0] if cards else paired
        fields = [",".join(boxes), ",".join(cards[1:]), paired]
    elif command == MESSAGE:
        client = p["card_ca_id"]
        fields = [p["message_type"], p["sequence"], p["duration_seconds"], _text(p["text"])]
    else:
        raise FormatError(f"Conax SMS files carry no command {command!r}.")
    if not client:
        # Every line is addressed to a client id; the CAS would refuse the whole file.
        raise FormatError(f"{command} has no smartcard CA ID to address it to.")
    return RequestRecord(_clean(uid), command, _clean(client), tuple(_clean(f) for f in fields))


def request_line(number: int, uid: str, command: str, parameters: dict, dates) -> str:
    """D line ``number`` (no line break) for a request. Raises ``FormatError``, or
    ``KeyError`` for a missing parameter."""
    r = record_for(uid, command, parameters, dates)
    return "|".join(["D", str(number), r.uid, r.command, r.client_id, *r.fields])


def request_lines(rows, dates) -> tuple[list[str], list[int], list[tuple[int, str]]]:
    """A file's D lines from rows ``(id, uid, command, card CA ID, service CA ID,
    parameters)`` — the ``LINE_KEYS`` parameters read one by one and ``parameters`` None for
    the ``LINE_PARAMETERS`` commands, all the parameters (a dict or JSON text) for the others.
    Returns (lines, ids written, (id, why not) for the rows that cannot be written); the lines
    are numbered in order, skipping those. The loop every exported request goes through: the
    entitlement lines are made here in one step each."""
    lines: list[str] = []
    written: list[int] = []
    bad: list[tuple[int, str]] = []
    tails = {ADD: f"{dates['start']}|{dates[ADD]}", RENEW: dates[RENEW], CANCEL: dates[CANCEL]}
    separators = {command: 4 + FIELDS[command] for command in tails}
    for pk, uid, command, card, service, parameters in rows:
        number = len(lines) + 1
        if parameters is None:
            line = f"D|{number}|{uid}|{command}|{card}|{service}|{tails[command]}"
            # Right when every field is there and none carries a separator or a line break;
            # anything else takes the careful path, which says what is wrong.
            if (
                card
                and service is not None
                and line.count("|") == separators[command]
                and "\n" not in line
                and "\r" not in line
            ):
                lines.append(line)
                written.append(pk)
                continue
            parameters = {"card_ca_id": card, "service_ca_id": service}
        elif isinstance(parameters, str):
            parameters = json.loads(parameters)
        try:
            lines.append(request_line(number, uid, command, parameters, dates))
        except (FormatError, KeyError, TypeError) as exc:
            bad.append((pk, f"Cannot be written in a Conax SMS file: {exc!r}"))
        else:
            written.append(pk)
    return lines, written, bad


def message_text(record: RequestRecord) -> str:
    return unquote(record.fields[3])


# --- Writing and reading ----------------------------------------------------------------------


def _seal(lines: list[str]) -> bytes:
    body = "".join(line + "\n" for line in lines).encode()
    count = len(lines) - 1  # the header is not a record
    digest = hashlib.sha256(body).hexdigest()
    return body + f"T|{count}|{digest}\n".encode()


def checksum(data: bytes) -> str:
    """The checksum a file's trailer carries (of the whole file, trailer included: for the
    ledger, so two uploads of the same bytes are recognized)."""
    return hashlib.sha256(data).hexdigest()


def write_request_lines(name: str, created: datetime, lines: list[str]) -> bytes:
    """A request file from its D lines (``request_line``), numbered from 1 in order."""
    body = "\n".join([f"H|{REQUEST_KIND}|{VERSION}|{name}|{created.isoformat()}", *lines])
    data = (body + "\n").encode()
    return data + f"T|{len(lines)}|{hashlib.sha256(data).hexdigest()}\n".encode()


def _found(line: str) -> str:
    return repr(line[:120]) if line else "an empty line"


def _open(data: bytes, kind: str) -> tuple[list[str], list[str]]:
    """(header fields, body lines) of a sealed file, its trailer checked.

    Read as other systems write text files: a UTF-8 byte-order mark, CR LF line ends, spaces or
    tabs at the end of a line, blank lines after the trailer and a trailer without a line break
    are all accepted. The trailer's checksum may be of the lines before it as we write them (no
    mark, LF ends, no trailing spaces) or of their bytes as written (with or without the mark):
    either proves that the records arrived whole. Line numbers in errors are the file's own."""
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise FormatError(
            f"Line {line}: expected UTF-8 text, found the byte 0x{data[exc.start]:02x}."
        ) from None
    marked = text.startswith(BOM)
    written = text.removeprefix(BOM).split("\n")
    lines = [line.rstrip(" \t\r") for line in written]
    while lines and not lines[-1]:
        lines.pop()
    header_layout = f"H|{kind}|{VERSION}|…"
    if not lines:
        raise FormatError(f"Line 1: expected the header {header_layout!r}, found an empty file.")
    header = lines[0].split("|")
    if header[:3] != ["H", kind, VERSION]:
        raise FormatError(
            f"Line 1: expected the header {header_layout!r}, found {_found(lines[0])}."
        )
    last = len(lines)
    trailer = lines[-1].split("|")
    if last < 2 or len(trailer) != 3 or trailer[0] != "T":
        raise FormatError(
            f"Line {last}, the last: expected the trailer 'T|<number of records>|<SHA-256>', "
            f"found {_found(lines[-1]) if last > 1 else 'the header'} (is the file cut short?)."
        )
    body = lines[1:-1]
    if trailer[1] != str(len(body)):
        raise FormatError(
            f"Line {last}: the trailer counts {trailer[1]} records; lines 2 to {last - 1} "
            f"hold {len(body)}."
        )
    sealed = "".join(line + "\n" for line in lines[:-1]).encode()
    expected = hashlib.sha256(sealed).hexdigest()
    if trailer[2].lower() != expected:
        as_written = "\n".join(written[: last - 1]).encode() + b"\n"
        digests = {hashlib.sha256(as_written).hexdigest()}
        if marked:
            digests.add(hashlib.sha256(BOM.encode() + as_written).hexdigest())
        if trailer[2].lower() not in digests:
            raise FormatError(
                f"Line {last}: the trailer's checksum {trailer[2]!r} is not the SHA-256 of lines 1 "
                f"to {last - 1} (expected {expected}, over LF-ended lines without trailing "
                "spaces, or the SHA-256 of their bytes as written)."
            )
    return header, body


def parse_request(data: bytes) -> tuple[str, list[RequestRecord]]:
    """(file name, records); raises FormatError on the first thing wrong (the CAS refuses the
    whole file)."""
    header, body = _open(data, REQUEST_KIND)
    if len(header) != 5:
        raise FormatError(
            f"Line 1: expected the header 'H|{REQUEST_KIND}|{VERSION}|<file name>|<created>' "
            f"(5 fields), found {len(header)} fields."
        )
    records = []
    for number, line in enumerate(body, start=1):
        parts = line.split("|")
        if len(parts) < 5 or parts[0] != "D" or parts[1] != str(number):
            raise FormatError(
                f"Line {number + 1}: expected detail record 'D|{number}|<uid>|<command>|"
                f"<client id>|…', found {_found(line)}."
            )
        command = parts[3]
        if command not in FIELDS:
            raise FormatError(f"Line {number + 1}: unknown command {command!r}.")
        if len(parts) != 5 + FIELDS[command]:
            raise FormatError(
                f"Line {number + 1}: expected {5 + FIELDS[command]} fields for {command}, "
                f"found {len(parts)}."
            )
        records.append(RequestRecord(parts[2], command, parts[4], tuple(parts[5:])))
    return header[3], records


def write_response(
    name: str,
    request_name: str,
    created: datetime,
    records: Iterable[AnswerRecord],
    file_error: tuple[str, str] | None = None,
) -> bytes:
    lines = [f"H|{RESPONSE_KIND}|{VERSION}|{name}|{request_name}|{created.isoformat()}"]
    if file_error is not None:
        lines.append("|".join(["F", _clean(file_error[0]), _text(file_error[1])]))
    for r in records:
        if r.accepted:
            lines.append(f"R|{r.uid}|OK")
        else:
            lines.append(
                "|".join(["R", r.uid, "ERROR", _clean(r.error_code), _text(r.error_description)])
            )
    return _seal(lines)


def parse_response(data: bytes) -> AnswerBatch:
    """A response file's records; a malformed line is listed in ``line_errors`` and the others
    still count. Raises FormatError when the file as a whole cannot be trusted (header,
    trailer, count or checksum wrong)."""
    header, body = _open(data, RESPONSE_KIND)
    if len(header) != 6:
        raise FormatError(
            f"Line 1: expected the header 'H|{RESPONSE_KIND}|{VERSION}|<file name>|<request "
            f"file name>|<created>' (6 fields), found {len(header)} fields."
        )
    parsed = AnswerBatch(name=header[3], request_name=header[4])
    for number, line in enumerate(body, start=2):
        parts = line.split("|")
        if parts[0] == "F" and len(parts) == 3:
            parsed.file_error = (parts[1], unquote(parts[2]))
        elif parts[0] == "R" and len(parts) == 3 and parts[2] == "OK" and parts[1]:
            parsed.records.append(AnswerRecord(parts[1], True))
        elif parts[0] == "R" and len(parts) == 5 and parts[2] == "ERROR" and parts[1]:
            parsed.records.append(AnswerRecord(parts[1], False, parts[3], unquote(parts[4])))
        else:
            parsed.line_errors.append(
                (
                    number,
                    "expected 'R|<uid>|OK', 'R|<uid>|ERROR|<code>|<description>' or "
                    f"'F|<code>|<description>', found {_found(line)}",
                )
            )
    return parsed
