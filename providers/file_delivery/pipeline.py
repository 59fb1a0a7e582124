"""A provider type's use of the pipeline: what ``export`` and ``responses`` are given."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from catalogue.models import Provider

from .channel import Channel
from .layout import Layout


@dataclass(frozen=True)
class Pipeline:
    layout: Layout
    # Opens the provider's side (raises ``TransportError``).
    connect: Callable[[Provider], Channel]
    # Who answers, as the run's log and the requests' errors name it ("Conax").
    platform: str
    # (singular, plural) in the runs' counts and summaries: what the channel carries as a whole
    # (a batch; and a refused answer, "1 file refused"), and an answer.
    noun: tuple[str, str] = ("file", "files")
    answer_noun: tuple[str, str] = ("response file", "response files")
    # How the answer deadline's reasons name a delivered batch, its delivery and the moment
    # it happened: "… within 24 hours of request file F being uploaded", "… of the upload".
    sent_noun: str = "request file"
    sent_verb: str = "uploaded"
    sending: str = "the upload"
    # Extras once requests are accepted (the requests, with their operation and service).
    accepted: Callable[[list, datetime], None] | None = None
