"""Under /api/, refused before the request goes any further, in the one error shape: a body
larger than ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (413, by its Content-Length, before it is read) and
a query parameter holding a control character (400, like the body's: ``api_parsers``)."""

from django.conf import settings

from .api_errors import error_response
from .api_parsers import CONTROL, CONTROL_MESSAGE, printable

API_PREFIX = "/api/"


def _content_length(request) -> int:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0


class ApiInputMiddleware:
    """Under /api/: a body too large (413) or a query parameter with a control character (400)
    is refused before the request goes any further."""

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
        return self.get_response(request)
