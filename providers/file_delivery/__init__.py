"""File delivery: one pipeline for batch providers whose requests travel as batches — files
on a server (Conax SMS), or entries in a queue table (EXSET's TQUEUE).

- ``export.export(pipeline, provider)``: the requests due, Express first, in batches of at most
  *Maximum Number of Records in Each File*; each batch staged, recorded (a ``TransferFile``
  holding its request ids, ``members``), then published — delivered exactly once.
- ``responses.process_responses(pipeline, provider)``: each answer read back and applied once
  through ``providers.answers.record_answers`` (rejections rolled back by the actions), per-file
  outcomes in the ledger and the run's log; then what waited past the answer deadline fails
  (``deadline``).
- ``runs``: the operators' runs over a pipeline — the export run and the answers (error
  handling) run, with their counts and summaries; ``runs.export_at_end`` exports at the end of
  a run that made requests, ``export.export_now`` after a utility (*process immediately*).

How a provider plugs in (Conax SMS: ``providers/conax_sms/files.py`` and ``runs.py``):

1. **Layout** — a ``layout.Layout`` subclass: the columns its entries need, how a batch of rows
   renders and is written (a file's bytes, or queue rows), its batch names, and how its answers
   are recognised and parsed into an ``AnswerBatch``.
2. **Channel** — ``connect(provider) -> channel.Channel``: stage / publish / staged, answers /
   fetch / archive. A file server wraps its ``FileServer`` in ``channel.FileChannel``; a database
   queue (EXSET's TQUEUE, ``providers/exset/tqueue.py``) implements ``Channel`` itself.
3. **Pipeline** — ``pipeline.Pipeline(layout, connect, platform, accepted=…, noun=…,
   answer_noun=…)``: one module-level value; ``platform`` names who answers in logs and errors,
   the nouns name its batches and answers in the runs' summaries ("file", "response file"), and
   ``sent_noun`` / ``sent_verb`` / ``sending`` what the answer deadline's reasons say was sent.
4. **Run types** — ``runs.export_run_type(PIPELINE, code=…, name=…)`` and
   ``runs.answers_run_type(PIPELINE, code=…, name=…)``, listed by the adapter's
   ``run_types()`` beside its own; its utilities call ``export.export_now(PIPELINE, provider)``.
   A provider may also deliver as the processing run goes: its adapter's ``after_chunk`` calls
   ``runs.export_at_end`` (EXSET SMS).
"""
