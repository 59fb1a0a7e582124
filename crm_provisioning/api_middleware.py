"""Under /api/, every error is in the one error shape (``api_errors``):

- refused before the request goes any further: a body larger than
  ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (413, by its Content-Length, before it is read) and a query
  parameter holding a control character (400, like the body's: ``api_parsers``);
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


class ApiMiddleware:
    """Under /api/: a body too large (413) or a query parameter with a control character (400)
    is refused first; Django's own error pages come back in the error shape."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith(API_PREFIX):
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            if limit is not None and _content_length(request) > limit:
                return error_response(
                    413, "too_large", f"The request body is larger than {limit} bytes."
                )
            if request.META.get("QUERY_STRING"):
                found = {
                    printable(name): [CONTROL_MESSAGE]
                    for name, values in request.GET.lists()
                    if CONTROL.search(name) or any(CONTROL.search(v) for v in values)
                }
                if found:
                    first = next(iter(found))
                    return error_response(
                        400, "invalid", f"{first}: {CONTROL_MESSAGE}", fields=found
                    )
            response = self.get_response(request)
            if (
                response.status_code >= 400
                and not isinstance(response, Response)
                and not response.get("Content-Type", "").startswith("application/json")
            ):
                return _as_error_shape(request, response)
            return response
        return self.get_response(request)
