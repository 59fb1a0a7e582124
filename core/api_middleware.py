"""Under /api/, every error is in the one error shape (``api_errors``):

- refused before the request goes any further: a body larger than
  ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (413, by its Content-Length, before it is read) and a query
  parameter or a looked-up header (a token, an Idempotency-Key) holding a control character
  (400, like the body's: ``api_parsers``);
- Django's own error pages (no such path, a server error, a host it does not serve; with DEBUG,
  its debug pages) answered as JSON instead. DRF's answers are left as they are.

414 and 431 never reach Django: the web server (gunicorn, runserver) answers them itself.
"""

from http import HTTPStatus

from django.conf import settings
from rest_framework.response import Response

from .api_errors import error_response
from .api_parsers import CONTROL, CONTROL_MESSAGE, printable

API_PREFIX = "/api/"
# Headers whose value is looked up in the database (a token, an idempotency key).
LOOKUP_HEADERS = (
    ("Authorization", "HTTP_AUTHORIZATION"),
    ("Idempotency-Key", "HTTP_IDEMPOTENCY_KEY"),
)
# Django's error pages under /api/, by status: (code, message); others by their status' phrase.
DJANGO_ERRORS = {
    400: ("bad_request", "The request is malformed."),
    403: ("permission_denied", "You may not do this."),
    404: ("not_found", "Nothing at {path}: see /api/schema/ for the API."),
    405: ("method_not_allowed", "Method {method} is not allowed here."),
    500: ("server_error", "A server error occurred; it has been logged."),
}


def _content_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


def _as_error_shape(request, response):
    """Django's HTML error page as the error shape, its status (and Allow header) kept."""
    status = response.status_code
    code, message = DJANGO_ERRORS.get(status, ("error", HTTPStatus(status).phrase + "."))
    shaped = error_response(status, code, message.format(path=request.path, method=request.method))
    if response.has_header("Allow"):
        shaped["Allow"] = response["Allow"]
    return shaped


def _refusal(request):
    """413 for a body too large, 400 for a control character where it is looked up; or None."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is not None and _content_length(request) > limit:
        return error_response(413, "too_large", f"The request body is larger than {limit} bytes.")
    found = {
        header: [CONTROL_MESSAGE]
        for header, key in LOOKUP_HEADERS
        if CONTROL.search(request.META.get(key, ""))
    }
    if request.META.get("QUERY_STRING"):
        found.update(
            (printable(name), [CONTROL_MESSAGE])
            for name, values in request.GET.lists()
            if CONTROL.search(name) or any(CONTROL.search(v) for v in values)
        )
    if found:
        first = next(iter(found))
        return error_response(400, "invalid", f"{first}: {CONTROL_MESSAGE}", fields=found)
    return None


def _django_error_page(response) -> bool:
    return (
        response.status_code >= 400
        and not isinstance(response, Response)  # DRF's: in the error shape already
        and not response.get("Content-Type", "").startswith("application/json")
    )


class ApiMiddleware:
    """Under /api/: a body too large (413) or a control character (400) is refused first;
    Django's own error pages come back in the error shape."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        refusal = _refusal(request)
        if refusal is not None:
            return refusal
        response = self.get_response(request)
        if _django_error_page(response):
            return _as_error_shape(request, response)
        return response
