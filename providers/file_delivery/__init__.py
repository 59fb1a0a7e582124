"""File delivery: one pipeline for batch providers whose requests travel as batches — files
on a server (Conax SMS), or entries in a queue table (EXSET's TQUEUE).

- ``export.export(pipeline, provider)``: the requests due, Express first, in batches of at most
  *Maximum Number of Records in Each File*; each batch staged, recorded (a ``TransferFile``
  holding its request ids, ``members``), then published — delivered exactly once.
- ``responses.process_responses(pipeline, provider)``: each answer read back and applied once
  through ``providers.answers.record_answers`` (rejections rolled back by the actions), per-file
  outcomes in the ledger and the run's log; then what waited past the answer deadline fails
  (``deadline``).

A provider type brings a ``pipeline.Pipeline``: its ``layout.Layout`` (entries and answers),
its ``connect(provider) -> channel.Channel`` (stage / publish / staged, answers / fetch /
archive; ``channel.FileChannel`` for a file server), the platform's name for its messages, and
its ``accepted`` extras.
"""
