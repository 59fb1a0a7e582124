"""Conax SMS on the shared file-delivery pipeline (``providers.file_delivery``): its file
layout (``file_format``), its file server (``transport``), the end dates its lines carry, and
what an accepted Renew changes (``renewals.renewed``).

    export.export(PIPELINE, provider)                # what the Export request files run does
    responses.process_responses(PIPELINE, provider)  # what the Error Handling run does
    export.export_now(PIPELINE, provider)            # a utility's *process immediately*
"""

from datetime import date, datetime

from dateutil.relativedelta import relativedelta
from django.db.models import Case, F, JSONField, Value, When
from django.db.models.fields.json import KT

from catalogue.models import Provider
from providers import provider_settings, renewals
from providers.file_delivery.layout import AnswerBatch, Layout
from providers.file_delivery.pipeline import Pipeline

from . import file_format as ff
from . import transport

END_PERIODS = {
    ff.ADD: "add_end_period_months",
    ff.RENEW: "renew_end_period_months",
    ff.CANCEL: "cancel_end_period_months",
}


def dates_for(provider: Provider, today: date) -> dict[str, str]:
    """The start date and each command's end date for a file made ``today``."""
    dates = {"start": today.isoformat()}
    for command, parameter in END_PERIODS.items():
        months = int(provider_settings.parameter(provider, parameter))
        dates[command] = (today + relativedelta(months=months)).isoformat()
    return dates


class ConaxSMSLayout(Layout):
    def columns(self) -> tuple:
        # Only the parameters their line needs; all of them for the few commands that need
        # more.
        return (
            *(KT(f"parameters__{key}") for key in ff.LINE_KEYS),
            Case(
                When(command__in=list(ff.LINE_PARAMETERS), then=Value(None)),
                default=F("parameters"),
                output_field=JSONField(),
            ),
        )

    def context(self, provider: Provider, today: date) -> dict:
        return {"dates": dates_for(provider, today)}

    def batch_name(self, provider_id: int, number: int) -> str:
        return ff.request_file_name(provider_id, number)

    def render(self, rows: list[tuple], context: dict):
        return ff.request_lines(rows, context["dates"])

    def write(self, name: str, created: datetime, entries: list[str]) -> bytes:
        return ff.write_request_lines(name, created, entries)

    def checksum(self, payload: bytes) -> str:
        return ff.checksum(payload)

    def is_answer(self, name: str) -> bool:
        return ff.is_response_file(name)

    def parse_answers(self, payload: bytes) -> AnswerBatch:
        return ff.parse_response(payload)

    def answered_batch(self, answer_name: str) -> str:
        return ff.answered_file_name(answer_name)


PIPELINE = Pipeline(
    layout=ConaxSMSLayout(), connect=transport.connect, platform="Conax", accepted=renewals.renewed
)
