"""The Web API's one request body parser: JSON, nested at most ``MAX_DEPTH`` deep, with no
control characters.

- JSON nested deeper is refused (400) before it is parsed: Python's parser would recurse until
  it failed, and every later step that walks the data would recurse as deep.
- A control character (other than tab, newline and carriage return) in any string or key is
  refused (400) naming where it is: PostgreSQL cannot store NUL, and none belongs in a code, a
  number or a line of text sent on to a CA system (XML 1.0 cannot even carry them). The query
  string and the looked-up headers get the same check (``core.api_middleware``).
"""

import json
import re
from itertools import accumulate

from django.conf import settings
from rest_framework import exceptions, parsers
from rest_framework.utils import json as drf_json

MAX_DEPTH = 100
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
CONTROL_MESSAGE = "No control character is allowed here (tab, newline and carriage return are)."

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# Only these can put a control character into a parsed JSON string (a raw one is invalid JSON).
_CONTROL_SPELLINGS = ("\\u00", "\\b", "\\f", "\x7f")


def too_deep(text: str) -> bool:
    """Whether JSON text nests arrays and objects deeper than MAX_DEPTH, found without parsing
    it: outside strings, the running count of openers less closers."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False  # the common case: too few brackets to nest that deep
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > MAX_DEPTH


def printable(name: str) -> str:
    return CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode(), name)


def control_characters(data) -> dict[str, list[str]]:
    """Each string (value or key) in parsed JSON holding a control character, by its path."""
    found: dict[str, list[str]] = {}
    pending = [("", data)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, str):
            if CONTROL.search(value):
                found[where or "non_field_errors"] = [CONTROL_MESSAGE]
        elif isinstance(value, dict):
            for key, item in value.items():
                name = f"{where}.{printable(key)}" if where else printable(key)
                if CONTROL.search(key):
                    found[name] = [CONTROL_MESSAGE]
                else:
                    pending.append((name, item))
        elif isinstance(value, list):
            pending.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
    return dict(sorted(found.items()))


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with a nesting limit and no control characters."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = stream.read().decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        if too_deep(text):
            raise exceptions.ParseError(
                f"JSON parse error - nested more than {MAX_DEPTH} arrays and objects deep."
            )
        try:
            data = json.loads(text, parse_constant=drf_json.strict_constant)
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        if any(spelling in text for spelling in _CONTROL_SPELLINGS):
            found = control_characters(data)
            if found:
                raise exceptions.ValidationError(found)
        return data
