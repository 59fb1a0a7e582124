"""Answers /health/live and /health/ready before any other middleware: a probe comes by the
container's address, which ALLOWED_HOSTS need not name, and over plain HTTP, which
SECURE_SSL_REDIRECT would send elsewhere."""

from . import views

PROBES = {"/health/live": views.live, "/health/ready": views.ready}


class HealthMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        probe = PROBES.get(request.path_info)
        if probe is not None:
            return probe(request)
        return self.get_response(request)
