"""Signing in to the back office through its log-in page, as a user does."""

from django.urls import reverse


def log_in(page, live_server, user, next_url: str | None = None) -> None:
    """Sign ``user`` in (password ``pw-<username>``) and wait on ``next_url``, the index if None."""
    next_url = next_url or reverse("admin:index")
    page.goto(f"{live_server.url}{reverse('admin:login')}?next={next_url}")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "pw-" + user.username)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}{next_url}")
