"""A provider type's use of the pipeline: what ``export`` and ``responses`` are given."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from providers.models import Provider

from .channel import Channel
from .layout import Layout


@dataclass(frozen=True)
class Pipeline:
    layout: Layout
    # Opens the provider's side (raises ``TransportError``).
    connect: Callable[[Provider], Channel]
    # Who answers, as the run's log and the requests' errors name it ("Conax").
    platform: str
    # What a batch as a whole, and an answer, are called in the runs' counts and summaries.
    noun: str = "file"
    answer_noun: str = "response file"
    # Extras once requests are accepted (the requests, with their operation and service).
    accepted: Callable[[list, datetime], None] | None = None
