"""What the browser tests share: the Content Security Policy every page must satisfy, and
the violations Chromium reports."""

from __future__ import annotations

import django
from django.conf import settings
from playwright.sync_api import ConsoleMessage, Page, Route

# The test settings' SECURE_CSP as the header Django 6 writes it.
POLICY = "; ".join(
    f"{directive} {' '.join(values)}" for directive, values in settings.SECURE_CSP.items()
)


def csp_violations(page: Page) -> list[str]:
    """The Content Security Policy violations Chromium reports on ``page`` from now on
    (the list fills as it browses): its console messages and the documents' events."""
    violations: list[str] = []

    def report(text: str) -> None:
        violations.append(text)

    def console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            report(message.text)

    page.on("console", console)
    page.expose_function("celerySaViolation", report)
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', (event) => celerySaViolation("
        "`${event.violatedDirective} blocked ${event.blockedURI || 'inline'} in "
        "${event.sourceFile || document.URL}:${event.lineNumber}`))"
    )
    if django.VERSION < (6, 0):
        page.route("**/*", with_policy)
    return violations


def with_policy(route: Route) -> None:
    """Django 5.2 sends no Content Security Policy: the same policy, added to each page."""
    if route.request.resource_type != "document":
        route.continue_()
        return
    response = route.fetch()
    route.fulfill(
        response=response, headers={**response.headers, "content-security-policy": POLICY}
    )
