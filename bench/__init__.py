"""The benchmark (``python manage.py bench``): the product's figures at scale, each beside its
floor — the same work done by hand-written SQL or raw I/O in the same run — so a figure says
both how fast we are and how far from the best this machine allows.

``report`` holds the figures and prints / writes them; ``figures``, ``realtime``, ``pages``
(the back-office pages) and ``conax_sms`` measure; ``processes`` starts the real parts (a web
server, Celery workers) against the benchmark's database; ``load`` (``python manage.py
generate_load``) and ``conax_sms_requests`` write its data straight into the tables. A Django
app of its own so its commands register; it imports the product, and the product never imports it.
"""
