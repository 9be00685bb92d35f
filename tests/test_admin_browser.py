"""The admin and the browsable API in a real browser: Debian's Chromium, driven by Playwright,
against a live gunicorn.

A member of staff logs in, finds a user by the beginning of their email, opens them, goes back
and deactivates them with the bulk action. A person opens a profile and a post list and gets
DRF's browsable API, with no script refused by the Content-Security-Policy. Needs `apt-get
install chromium` and the pip package `playwright` (never `playwright install`: the system
Chromium is used).
"""

import time
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, expect, sync_playwright

from tests.factories import PASSWORD, PostFactory, UserFactory
from tests.live_server import running_gunicorn
from users.models import User

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: apt-get install -y chromium"),
    pytest.mark.django_db(transaction=True),
]


def open_first_page(page: Page, url: str) -> None:
    """The first navigation, retried while the browser's network service reports the server
    unreachable (seen once on a cold Chromium start, with gunicorn already answering /readyz)."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        try:
            page.goto(url)
        except PlaywrightError as error:
            if "ERR_CONNECTION_REFUSED" not in str(error) or time.monotonic() > deadline:
                raise
            page.wait_for_timeout(200)
        else:
            return


def test_staff_find_a_user_and_deactivate_them_in_the_browser(tmp_path: Path) -> None:
    UserFactory.create(email="staff.member@example.com", name="Staff Member", is_staff=True, is_superuser=True)
    target = UserFactory.create(email="Target.Person@example.com", name="Target Person")
    UserFactory.create_batch(5)
    screenshot = tmp_path / "admin.png"

    with running_gunicorn(tmp_path) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 720})
            page.set_default_timeout(TIMEOUT_MS)

            open_first_page(page, f"{server.base_url}/admin/login/")
            expect(page.locator("#site-name")).to_contain_text("Postline administration")
            page.fill("#id_username", "STAFF.member@example.com")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            expect(page.locator("#content h1")).to_have_text("Users and posts")

            page.goto(f"{server.base_url}/admin/users/user/")
            page.fill("#searchbar", "target.pers")
            page.press("#searchbar", "Enter")
            expect(page.locator("#result_list tbody tr")).to_have_count(1)
            page.click("#result_list a:text('Target.Person@example.com')")
            expect(page.locator(".field-email .readonly")).to_have_text("Target.Person@example.com")
            expect(page.locator(".field-posts_link a")).to_have_text("0 posts")

            page.go_back()
            page.check(f"input[name=_selected_action][value='{target.pk}']")
            page.select_option("select[name=action]", "deactivate_users")
            page.click("button[name=index]")
            expect(page.locator("ul.messagelist")).to_contain_text("Deactivated 1 user.")
            expect(page.locator("#result_list tbody tr .field-is_active img")).to_have_attribute("alt", "False")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()

    assert not User.objects.get(pk=target.pk).is_active
    assert screenshot.exists()
    assert screenshot.stat().st_size > 0
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_browser_gets_the_browsable_api_for_a_profile_and_a_post_list(tmp_path: Path) -> None:
    post = PostFactory.create(title="Read in a browser")
    with running_gunicorn(tmp_path) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            refused: list[str] = []  # what the Content-Security-Policy blocked, or a file not found
            page.on(
                "console",
                lambda message: refused.append(message.text)
                if message.type == "error" and "Failed to load resource" not in message.text
                else None,
            )
            page.on(
                "response",
                lambda answer: refused.append(answer.url)
                if answer.status >= 400 and not answer.url.endswith("/favicon.ico")
                else None,
            )
            open_first_page(page, f"{server.base_url}/api/users/{post.author_id}/")
            expect(page.locator(".response-info")).to_contain_text(post.author.name)
            expect(page.locator("a[href*='/api-auth/login/']")).to_have_count(1)
            page.goto(f"{server.base_url}/api/posts/")
            expect(page.locator(".response-info")).to_contain_text("Read in a browser")
        finally:
            browser.close()
    assert refused == []
