"""Security headers: a Content-Security-Policy on every HTML page, no-sniff, frame-deny and a
referrer policy everywhere, HSTS in production, and pages that still work under the CSP."""

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.http import HttpResponseBase
from django.test import Client
from playwright.sync_api import ConsoleMessage, Page, expect, sync_playwright

from tests.factories import PASSWORD, UserFactory
from tests.live_server import run_python, running_gunicorn
from tests.test_admin_browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, open_first_page
from tests.test_settings import PRODUCTION_ENV

EXPECTED_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def assert_common_headers(response: HttpResponseBase) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_the_policy_is_the_documented_one() -> None:
    assert settings.CONTENT_SECURITY_POLICY == EXPECTED_CSP


@pytest.mark.django_db
def test_landing_page_has_csp_and_the_common_headers(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == EXPECTED_CSP
    assert_common_headers(response)
    # No inline style or script for the policy to block.
    assert b"<style" not in response.content
    assert b"<script" not in response.content


@pytest.mark.django_db
def test_admin_login_has_csp_and_the_common_headers(client: Client) -> None:
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == EXPECTED_CSP
    assert_common_headers(response)


@pytest.mark.django_db
def test_swagger_ui_has_csp_and_loads_its_script_from_this_origin(client: Client) -> None:
    page = client.get("/api/docs/")
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"] == EXPECTED_CSP
    assert b"cdn.jsdelivr.net" not in page.content
    assert b"<script>" not in page.content
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200
    assert script.headers["Content-Type"].startswith("application/javascript")


@pytest.mark.django_db
def test_api_response_has_the_common_headers_and_no_csp(client: Client) -> None:
    response = client.get("/api/posts/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert_common_headers(response)
    assert "Content-Security-Policy" not in response.headers
    # HSTS is for production over HTTPS only.
    assert "Strict-Transport-Security" not in response.headers


HSTS_PROBE = """
import json, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
import django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="postline.example.com")
https = client.get("/healthz", headers={"X-Forwarded-Proto": "https"})
plain = client.get("/api/posts/")
print(json.dumps({"https": dict(https.headers), "plain_status": plain.status_code, "plain": dict(plain.headers)}))
"""


def test_production_sends_hsts_over_https_and_redirects_plain_http() -> None:
    result = run_python("-c", HSTS_PROBE, env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert answers["https"]["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert answers["https"]["X-Content-Type-Options"] == "nosniff"
    assert answers["https"]["X-Frame-Options"] == "DENY"
    assert answers["plain_status"] == 301
    assert answers["plain"]["Location"] == "https://postline.example.com/api/posts/"


# --- the pages in a real browser, under both server models ------------------------------------


def collect_csp_violations(page: Page) -> list[str]:
    violations: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(f"{page.url}: {message.text}")

    page.on("console", on_console)
    return violations


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: apt-get install -y chromium")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("server_mode", ["wsgi", "asgi"])
def test_landing_admin_and_swagger_ui_work_in_chromium_under_the_csp(tmp_path: Path, server_mode: str) -> None:
    """Static files (WhiteNoise, under WSGI and ASGI), the admin's scripts, its
    session and messages, and Swagger UI all work, and the browser reports no CSP violation."""
    staff = UserFactory.create(email="staff.member@example.com", name="Staff Member", is_staff=True, is_superuser=True)
    UserFactory.create_batch(3)

    with running_gunicorn(tmp_path, env={"SERVER_MODE": server_mode}) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            violations = collect_csp_violations(page)

            open_first_page(page, f"{server.base_url}/")
            # The stylesheet from the static files applied.
            assert page.evaluate("getComputedStyle(document.body).maxWidth") == "672px"

            page.goto(f"{server.base_url}/admin/login/")
            page.fill("#id_username", "staff.member@example.com")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            expect(page.locator("#content h1")).to_have_text("Users and posts")
            page.goto(f"{server.base_url}/admin/users/user/")
            expect(page.locator("#result_list tbody tr")).to_have_count(4)
            # The admin's own JavaScript runs: "select all" ticks every row.
            page.check("#action-toggle")
            expect(page.locator("input[name=_selected_action]:checked")).to_have_count(4)
            # A bulk action: the session and the message it leaves survive the redirect.
            page.uncheck(f"input[name=_selected_action][value='{staff.pk}']")
            page.select_option("select[name=action]", "deactivate_users")
            page.click("button[name=index]")
            expect(page.locator("ul.messagelist")).to_contain_text("Deactivated 3 users.")
            page.goto(f"{server.base_url}/admin/posts/post/")
            expect(page.locator("#changelist")).to_be_visible()

            page.goto(f"{server.base_url}/api/docs/")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("Postline API")
            expect(page.locator(".opblock-tag-section").first).to_be_visible()

            assert violations == []
        finally:
            browser.close()
