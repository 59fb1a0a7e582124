"""gunicorn's settings for the web server, read from the working directory by every start:
the Dockerfile's, docker-compose's and the benchmark's (``bench.processes.web_server``).

Sync worker processes, one per core unless ``WEB_CONCURRENCY`` says otherwise. A request is
CPU work in Python with short waits on PostgreSQL, so a process per core keeps the cores busy;
on the benchmark's two cores a third process only took turns with the other two, and every
real-time action cost about a tenth more CPU (context switches, cold caches), and a tenth
fewer actions went through per second.
"""

import os

wsgi_app = "crm_provisioning.wsgi"
workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)
# No control socket (gunicornc): nothing here uses one, and every gunicorn of a user on one
# machine would listen at the same default path ($HOME/.gunicorn/gunicorn.ctl), the bench's
# two servers included.
control_socket_disable = True
