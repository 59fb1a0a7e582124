"""EXSET SMS run types over TQUEUE: the shared file-delivery runs over its pipeline
(``providers.file_delivery.runs``).

- *Write TQUEUE entries*: every waiting request written as an entry, in batches of at most
  *Maximum number of entries in each batch*. The Process Provisioning Requests run already
  writes what each of its chunks made (the adapter's ``after_chunk``); this run writes the
  rest: utilities' and message runs' requests left for it, and what a run could not write
  when the SMS's database was down.
- *Read TQUEUE answers*: the SMS's outcomes applied (Done → Completed, Error → Rejected and
  rolled back), then what waited past the answer deadline failed; it counts what is still
  waiting.

Why two runs and not one that writes and then reads: they are needed at different moments.
Writing is mostly done by the processing run already, and a large write holds the provider's
export lock (exporters take turns) for as long as it takes — answers must not wait behind it,
nor the deadline's failures when the SMS's database is out of reach (the reading run still
fails what is overdue then, from our own records). Operators schedule the reader often and
the writer as a sweep, as they do Conax SMS's two runs; each keeps the shared pipeline's
tested recovery of a run that dies half-way.
"""

from providers.file_delivery import runs as file_runs

from .queue import PIPELINE

WRITE = file_runs.export_run_type(PIPELINE, code="exset_write_tqueue", name="Write TQUEUE entries")
READ = file_runs.answers_run_type(
    PIPELINE, code="exset_read_tqueue", name="Read TQUEUE answers", waiting=True
)
