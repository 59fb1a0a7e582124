"""The shared file-delivery runs name a provider's batches and answers by its pipeline's nouns:
a queue provider's runs say "batch" where Conax SMS's say "file"."""

from dataclasses import replace

from providers.conax_sms.files import PIPELINE
from providers.file_delivery import runs

QUEUE = replace(PIPELINE, noun=("batch", "batches"), answer_noun=("answer", "answers"))


def test_the_export_run_counts_batches_by_the_pipeline_noun():
    run_type = runs.export_run_type(QUEUE, code="queue_export", name="Export requests")

    assert (run_type.code, run_type.name) == ("queue_export", "Export requests")
    assert dict(run_type.counts)["files"] == "Batches exported"
    counts = {"records": 7, "files": 1, "failed": 2}
    assert run_type.summary(counts) == "Exported 7 records in 1 batch; 2 could not be written"


def test_the_answers_run_counts_answers_by_the_pipeline_noun():
    run_type = runs.answers_run_type(QUEUE, code="queue_answers", name="Read answers")

    labels = dict(run_type.counts)
    assert (labels["files"], labels["refused"]) == ("Answers read", "Answers refused")
    counts = {
        "answered": 3,
        "accepted": 2,
        "rejected": 1,
        "files": 2,
        "refused": 1,
        "resent": 0,
        "expired": 0,
    }
    assert run_type.summary(counts) == (
        "Answered 3 (accepted 2, rejected 1) from 2 answers; 1 batch refused"
    )
