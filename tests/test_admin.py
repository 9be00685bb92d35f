"""The admin: a fixed number of queries per page, index-served search, writes through services."""

import json
import re
from collections.abc import Iterator
from io import StringIO

import pytest
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from posts.models import Post
from project.http import admin as project_admin
from tests.conftest import client_for, planner_without_seqscans
from tests.factories import PASSWORD, PostFactory, UserFactory
from users import admin as users_admin
from users import rules, selectors
from users.models import AuthToken, User
from users.tokens import token_issue

USERS_URL = "/admin/users/user/"
TOKENS_URL = "/admin/users/authtoken/"
POSTS_URL = "/admin/posts/post/"


@pytest.fixture
def staff_user(db: None) -> User:
    return UserFactory.create(is_staff=True, is_superuser=True, email="boss@example.com", name="The Boss")


@pytest.fixture
def staff_client(client: Client, staff_user: User) -> Client:
    client.force_login(staff_user)
    return client


def text(response) -> str:
    return response.content.decode()


def change_data(user: User, **overrides: object) -> dict[str, object]:
    """Every field of the user change form, as the browser would post it unchanged."""
    data: dict[str, object] = {
        "name": user.name,
        "metadata": json.dumps(user.metadata),
        "is_active": "on" if user.is_active else "",
        "is_staff": "on" if user.is_staff else "",
        "is_superuser": "on" if user.is_superuser else "",
        "groups": [],
        "user_permissions": [],
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value != ""}


# --- staff only, branding -----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_admin_is_for_staff_only(client: Client) -> None:
    assert client.get(USERS_URL).status_code == 302
    client.force_login(UserFactory.create())
    response = client.get(USERS_URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_login_page_carries_the_postline_branding_and_a_link_home(client: Client) -> None:
    page = text(client.get("/admin/login/"))
    assert "Postline administration" in page
    assert '<a class="postline-home" href="/">' in page
    assert "<title>Log in | Postline admin</title>" in page


def test_staff_can_log_in_with_their_email(client: Client, staff_user: User) -> None:
    response = client.post("/admin/login/?next=/admin/", {"username": "BOSS@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert "Users and posts" in text(client.get("/admin/"))


# --- a fixed number of queries, whatever the number of rows ---------------------------------------

# session, staff user, table estimate, capped count, the page
CHANGELIST_QUERIES = 5


@pytest.mark.parametrize("authors", [3, 9])
def test_users_changelist_runs_a_fixed_number_of_queries(staff_client, django_assert_num_queries, authors) -> None:
    for author in UserFactory.create_batch(authors):
        PostFactory.create_batch(3, author=author)
    UserFactory.create_batch(10 * authors)
    with django_assert_num_queries(CHANGELIST_QUERIES):
        response = staff_client.get(USERS_URL)
    assert response.status_code == 200
    assert f"{11 * authors + 1} users" in text(response)


@pytest.mark.parametrize("authors", [3, 9])
def test_posts_changelist_runs_a_fixed_number_of_queries(staff_client, django_assert_num_queries, authors) -> None:
    for author in UserFactory.create_batch(authors):
        PostFactory.create_batch(10, author=author)
    with django_assert_num_queries(CHANGELIST_QUERIES):
        response = staff_client.get(POSTS_URL)
    assert response.status_code == 200
    assert f"{10 * authors} posts" in text(response)
    # Each row of the page links to its author (loaded in the same query).
    assert len(re.findall(r'href="/admin/users/user/\d+/change/"', text(response))) == min(10 * authors, 50)


@pytest.mark.parametrize("posts", [2, 40])
def test_user_change_form_runs_a_fixed_number_of_queries(staff_client, django_assert_num_queries, posts) -> None:
    author = UserFactory.create()
    PostFactory.create_batch(posts, author=author)
    ContentType.objects.clear_cache()  # cached per process: clear it for the same count in any order
    # session, staff, the user, their groups, their permissions, content type, group choices,
    # permission choices (with their content types); the post count is a column of the user
    with django_assert_num_queries(8):
        response = staff_client.get(f"{USERS_URL}{author.pk}/change/")
    assert response.status_code == 200


def test_post_change_form_runs_a_fixed_number_of_queries(staff_client, django_assert_num_queries) -> None:
    post = PostFactory.create()
    ContentType.objects.clear_cache()
    # session, staff, the post with its author, content type
    with django_assert_num_queries(4):
        response = staff_client.get(f"{POSTS_URL}{post.pk}/change/")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "query",
    ["?is_active__exact=0", "?is_staff__exact=1", "?q=user1"],
)
def test_filtered_users_changelist_runs_a_fixed_number_of_queries(staff_client, django_assert_num_queries, query):
    UserFactory.create_batch(12, is_active=False)
    # session, staff, the planner's estimate (EXPLAIN), capped count, the page
    with django_assert_num_queries(CHANGELIST_QUERIES):
        assert staff_client.get(USERS_URL + query).status_code == 200


# --- counting: an estimate, a capped count, never COUNT(*) of the table ----------------------------


def count_queries(queries: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in queries.captured_queries if "COUNT(" in query["sql"].upper()]


def test_unfiltered_changelist_shows_postgresqls_estimate_without_counting(staff_client, monkeypatch) -> None:
    monkeypatch.setattr(project_admin, "ESTIMATE_ABOVE", 10)
    UserFactory.create_batch(30)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE users")
    with CaptureQueriesContext(connection) as queries:
        page = text(staff_client.get(USERS_URL))
    assert count_queries(queries) == []
    assert "about 31 users" in page


def test_filtered_changelist_shows_the_planners_estimate_without_counting(staff_client, monkeypatch) -> None:
    monkeypatch.setattr(project_admin, "ESTIMATE_ABOVE", 10)
    author = UserFactory.create()
    PostFactory.create_batch(30, author=author)
    PostFactory.create_batch(3)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE posts")
    with CaptureQueriesContext(connection) as queries:
        page = text(staff_client.get(f"{POSTS_URL}?author__id__exact={author.pk}"))
    assert count_queries(queries) == []
    assert re.search(r"about \d+ posts", page)


def test_filtered_count_stops_at_the_cap(staff_client, monkeypatch) -> None:
    monkeypatch.setattr(project_admin, "EXACT_COUNT_CAP", 20)
    author = UserFactory.create()
    PostFactory.create_batch(30, author=author)
    with CaptureQueriesContext(connection) as queries:
        page = text(staff_client.get(f"{POSTS_URL}?author__id__exact={author.pk}"))
    assert "20+ posts" in page
    [count] = count_queries(queries)
    assert "LIMIT 21" in count


def test_row_checkboxes_are_djangos(staff_client, staff_user) -> None:
    page = text(staff_client.get(USERS_URL))
    assert (
        f'<input type="checkbox" name="_selected_action" value="{staff_user.pk}" class="action-select" '
        f'aria-label="Select this object for an action - {staff_user.email}">'
    ) in page
    assert '<input type="checkbox" id="action-toggle"' in page


def test_page_links_stop_at_the_cap(db: None, monkeypatch) -> None:
    monkeypatch.setattr(project_admin, "ESTIMATE_ABOVE", 10)
    monkeypatch.setattr(project_admin, "EXACT_COUNT_CAP", 50)
    UserFactory.create_batch(120)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE users")
    paginator = project_admin.EstimatedCountPaginator(User.objects.order_by("-id"), 20)
    assert paginator.count == 120
    assert paginator.estimated
    assert paginator.num_pages == 3


# --- search, served by an index ---------------------------------------------------------------------


def test_search_matches_an_email_prefix_whatever_its_case(staff_client) -> None:
    UserFactory.create(email="Ada.Lovelace@example.com")
    UserFactory.create(email="bada@example.com")
    UserFactory.create(email="ada_x@example.com")
    page = text(staff_client.get(USERS_URL, {"q": "  ADA.lo "}))
    assert "Ada.Lovelace@example.com" in page
    assert "bada@example.com" not in page
    assert "1 user" in page
    # LIKE's wildcards in a term are literal characters.
    assert "Ada.Lovelace@example.com" not in text(staff_client.get(USERS_URL, {"q": "ada_"}))
    assert "0 users" in text(staff_client.get(USERS_URL, {"q": "%"}))


def test_search_by_id_finds_the_user(staff_client) -> None:
    user = UserFactory.create(email="numbers@example.com")
    assert "numbers@example.com" in text(staff_client.get(USERS_URL, {"q": str(user.pk)}))
    assert staff_client.get(USERS_URL, {"q": "9" * 40}).status_code == 200
    assert staff_client.get(USERS_URL, {"q": "\u00b2"}).status_code == 200  # a digit int() refuses
    assert staff_client.get(POSTS_URL, {"q": "\u00b2"}).status_code == 200
    for url in (USERS_URL, POSTS_URL):
        assert staff_client.get(url, {"q": "nul\x00byte"}).status_code == 200


def test_post_search_is_full_text(staff_client) -> None:
    PostFactory.create(title="Scaling PostgreSQL indexes", body="B-trees and GIN.")
    PostFactory.create(title="Gardening", body="Tomatoes.")
    page = text(staff_client.get(POSTS_URL, {"q": "postgresql"}))
    assert "Scaling PostgreSQL indexes" in page
    assert "Gardening" not in page


def test_post_search_for_an_absent_word_finds_nothing(staff_client) -> None:
    PostFactory.create_batch(3, title="Gardening")
    page = text(staff_client.get(POSTS_URL, {"q": "quantum"}))
    assert "0 posts" in page


def test_post_search_by_id(staff_client) -> None:
    post = PostFactory.create(title="Findable by number")
    assert "Findable by number" in text(staff_client.get(POSTS_URL, {"q": str(post.pk)}))


def test_post_search_lists_the_newest_matches_up_to_the_limit(staff_client, monkeypatch) -> None:
    from posts import admin as posts_admin  # noqa: PLC0415

    monkeypatch.setattr(posts_admin, "SEARCH_RESULTS_LIMIT", 2)
    for number in ("one", "two", "three"):
        PostFactory.create(title=f"Compost {number}")
    page = text(staff_client.get(POSTS_URL, {"q": "compost"}))
    assert "Showing the newest 2 matching posts." in page
    assert "Compost three" in page
    assert "Compost two" in page
    assert "Compost one" not in page


def test_a_common_search_term_walks_the_index_and_shows_an_estimate(staff_client, monkeypatch) -> None:
    """When the GIN index cannot list every match in time, the page reads the newest posts
    and checks each, and nothing counts the matches."""
    from posts import admin as posts_admin  # noqa: PLC0415

    monkeypatch.setattr(posts_admin.search, "newest_ids", lambda found, limit: None)
    PostFactory.create(title="Scaling PostgreSQL")
    PostFactory.create(title="Gardening")
    with CaptureQueriesContext(connection) as queries:
        page = text(staff_client.get(POSTS_URL, {"q": "postgresql"}))
    assert count_queries(queries) == []
    assert re.search(r"about \d+ post", page)
    assert "Scaling PostgreSQL" in page
    assert "Gardening" not in page


def test_a_word_the_statistics_call_common_skips_the_index_probe(staff_client) -> None:
    PostFactory.create_batch(40, title="Gardening tips")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE posts")
    PostFactory.create_batch(2, title="Scaling PostgreSQL")  # unknown to the statistics
    with CaptureQueriesContext(connection) as queries:
        common = text(staff_client.get(POSTS_URL, {"q": "gardening"}))
    assert not any("enable_indexscan" in query["sql"] for query in queries.captured_queries)
    assert count_queries(queries) == []
    assert re.search(r"about \d+ posts", common)
    with CaptureQueriesContext(connection) as queries:
        rare = text(staff_client.get(POSTS_URL, {"q": "postgresql"}))
    assert any("enable_indexscan" in query["sql"] for query in queries.captured_queries)
    assert "2 posts" in rare


def test_searches_the_index_cannot_serve_skip_the_probe(staff_client) -> None:
    PostFactory.create(title="Gardening tips")
    PostFactory.create(title="Scaling PostgreSQL")
    with CaptureQueriesContext(connection) as queries:
        page = text(staff_client.get(POSTS_URL, {"q": "-gardening"}))
    assert not any("enable_indexscan" in query["sql"] for query in queries.captured_queries)
    assert "Scaling PostgreSQL" in page
    assert "Gardening tips" not in page
    # Stop words only: PostgreSQL's full-text search matches nothing, and no query is run for it.
    assert "0 posts" in text(staff_client.get(POSTS_URL, {"q": "the"}))


def test_a_search_page_over_its_time_limit_is_stopped(staff_client, monkeypatch) -> None:
    from posts import admin as posts_admin  # noqa: PLC0415

    monkeypatch.setattr(posts_admin, "SEARCH_PAGE_TIMEOUT_MS", 50)
    monkeypatch.setattr(
        posts_admin.PostAdmin,
        "get_search_results",
        lambda self, request, queryset, term: (queryset.extra(where=["(SELECT pg_sleep(1)) IS NULL"]), False),
    )
    PostFactory.create()
    response = staff_client.get(POSTS_URL, {"q": "slow"}, follow=True)
    assert "That search took too long and was stopped" in text(response)
    # The connection is usable afterwards.
    assert Post.objects.count() == 1


@pytest.fixture
def many_users_no_seqscan(db: None) -> Iterator[None]:
    # Emails that grow with the ids, as in the seeded data.
    User.objects.bulk_create(UserFactory.build(email=f"member{i}@example.com") for i in range(3000))
    UserFactory.create(email="Rare.Person@example.org")
    with planner_without_seqscans("users"):
        yield


def admin_search(term: str) -> str:
    """The plan of the users changelist's page query for a search term."""
    model_admin = admin.site.get_model_admin(User)
    request = RequestFactory().get(USERS_URL)
    queryset, _ = model_admin.get_search_results(request, User.objects.order_by("-id"), term)
    return queryset[:100].explain()


def test_email_prefix_search_uses_a_lower_email_index(many_users_no_seqscan) -> None:
    plan = admin_search("rare.p")
    assert "users_email_like_idx" in plan or "users_email_ci_unique" in plan, plan
    assert "Index Cond" in plan


def test_the_pattern_index_serves_the_search_under_any_collation(many_users_no_seqscan) -> None:
    """Only under the "C" collation can the unique lower(email) index serve LIKE; without it
    (dropped inside this test's transaction) the text_pattern_ops index must."""
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX users_email_ci_unique")
    plan = admin_search("RARE.p")
    assert "users_email_like_idx" in plan, plan
    assert "Index Cond" in plan


def test_search_results_come_in_the_pattern_index_order(staff_client, many_users_no_seqscan) -> None:
    """The page query of a search reads its rows in order from users_email_like_idx: no sort of
    every match, and no walk of the primary key filtering on emails."""
    with CaptureQueriesContext(connection) as queries:
        page = text(staff_client.get(USERS_URL, {"q": "MEMBER1"}))
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {queries.captured_queries[-1]['sql']}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan using users_email_like_idx" in plan, plan
    assert "users_pkey" not in plan, plan
    emails = re.findall(r">(member1\d*@example\.com)</a>", page)
    assert len(emails) == 50
    assert emails == sorted(emails)


# --- bulk actions go through users.services ----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_deactivate_action_hides_the_user_and_revokes_tokens(client: Client) -> None:
    staff = UserFactory.create(is_staff=True, is_superuser=True)
    client.force_login(staff)
    user = UserFactory.create()
    token_issue(user=user)
    api = client_for(UserFactory.create())
    assert api.get(f"/api/users/{user.pk}/").status_code == 200  # now cached

    response = client.post(USERS_URL, {"action": "deactivate_users", "_selected_action": [user.pk]}, follow=True)
    assert "Deactivated 1 user." in text(response)
    user.refresh_from_db()
    assert not user.is_active
    assert not AuthToken.objects.filter(user=user).exists()
    assert api.get(f"/api/users/{user.pk}/").status_code == 404

    response = client.post(USERS_URL, {"action": "activate_users", "_selected_action": [user.pk]}, follow=True)
    assert "Activated 1 user." in text(response)
    assert api.get(f"/api/users/{user.pk}/").status_code == 200


def test_staff_cannot_deactivate_themselves(staff_client, staff_user) -> None:
    other = UserFactory.create()
    response = staff_client.post(
        USERS_URL, {"action": "deactivate_users", "_selected_action": [staff_user.pk, other.pk]}, follow=True
    )
    assert "You cannot deactivate your own account" in text(response)
    assert User.objects.get(pk=staff_user.pk).is_active
    assert not User.objects.get(pk=other.pk).is_active


def test_bulk_actions_refuse_more_than_the_limit(staff_client, monkeypatch) -> None:
    monkeypatch.setattr(users_admin, "BULK_ACTION_LIMIT", 2)
    users = UserFactory.create_batch(3)
    response = staff_client.post(
        USERS_URL, {"action": "deactivate_users", "_selected_action": [user.pk for user in users]}, follow=True
    )
    assert "At most 2 users at a time" in text(response)
    assert User.objects.filter(is_active=False).count() == 0


def test_users_cannot_be_deleted_in_the_admin(staff_client) -> None:
    user = UserFactory.create()
    assert staff_client.get(f"{USERS_URL}{user.pk}/delete/").status_code == 403
    assert "delete_selected" not in text(staff_client.get(USERS_URL))


# --- the change form: metadata, services, links ---------------------------------------------------


def test_metadata_is_shown_pretty_printed(staff_client) -> None:
    user = UserFactory.create(metadata={"plan": "pro", "tags": ["a", "b"]})
    page = text(staff_client.get(f"{USERS_URL}{user.pk}/change/"))
    assert "{\n  &quot;plan&quot;: &quot;pro&quot;,\n  &quot;tags&quot;: [\n    &quot;a&quot;," in page


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ("{not json", "Enter a valid JSON."),
        ("[1, 2]", "Must be a JSON object."),
        ('{"score": NaN}', "Enter a valid JSON."),
        (json.dumps({f"k{i}": i for i in range(51)}), "At most 50 keys."),
        (json.dumps({"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}), "Nested at most 5 levels deep."),
        (json.dumps({"a": "x\u0000y"}), "Null characters are not allowed."),
        (json.dumps({"a": "x" * 5000}), "At most 4096 bytes as JSON."),
        ('{"a": "\\ud800"}', "Lone surrogates are not allowed."),
    ],
)
def test_metadata_is_validated_like_the_api(staff_client, metadata: str, error: str) -> None:
    user = UserFactory.create(metadata={"plan": "free"})
    response = staff_client.post(f"{USERS_URL}{user.pk}/change/", change_data(user, metadata=metadata))
    assert response.status_code == 200
    assert error in text(response)
    user.refresh_from_db()
    assert user.metadata == {"plan": "free"}


def test_metadata_limits_are_the_apis(staff_client, monkeypatch) -> None:
    """users.rules holds the limits: the form's check and its help text follow them."""
    monkeypatch.setattr(rules, "METADATA_MAX_KEYS", 2)
    user = UserFactory.create(metadata={"plan": "free"})
    response = staff_client.post(
        f"{USERS_URL}{user.pk}/change/", change_data(user, metadata='{"a": 1, "b": 2, "c": 3}')
    )
    assert response.status_code == 200
    assert "At most 2 keys." in text(response)
    assert f"A JSON object ({rules.METADATA_LIMITS}). Empty means {{}}." in text(response)
    user.refresh_from_db()
    assert user.metadata == {"plan": "free"}


def test_empty_metadata_means_an_empty_object(staff_client) -> None:
    user = UserFactory.create(metadata={"plan": "free"})
    response = staff_client.post(f"{USERS_URL}{user.pk}/change/", change_data(user, metadata="  "))
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.metadata == {}


@pytest.mark.django_db(transaction=True)
def test_editing_a_user_goes_through_the_services(client: Client) -> None:
    client.force_login(UserFactory.create(is_staff=True, is_superuser=True))
    user = UserFactory.create(name="Before", metadata={"plan": "free"})
    token_issue(user=user)
    api = client_for(UserFactory.create())
    assert api.get(f"/api/users/{user.pk}/").json()["name"] == "Before"  # now cached

    data = change_data(user, name="After", metadata='{\n  "plan": "pro"\n}')
    assert client.post(f"{USERS_URL}{user.pk}/change/", data).status_code == 302
    profile = api.get(f"/api/users/{user.pk}/").json()
    assert (profile["name"], profile["metadata"]) == ("After", {"plan": "pro"})

    data = change_data(User.objects.get(pk=user.pk), is_active="", is_staff="on")
    assert client.post(f"{USERS_URL}{user.pk}/change/", data).status_code == 302
    user.refresh_from_db()
    assert (user.is_active, user.is_staff) == (False, True)
    assert not AuthToken.objects.filter(user=user).exists()
    assert api.get(f"/api/users/{user.pk}/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_an_admin_edit_invalidates_the_cached_profile_and_list(client: Client, django_assert_num_queries) -> None:
    client.force_login(UserFactory.create(is_staff=True, is_superuser=True))
    user = UserFactory.create(metadata={"plan": "free"})
    api = APIClient()
    profile = f"/api/users/{user.pk}/"
    with django_assert_num_queries(2):
        assert api.get(profile).json()["metadata"] == {"plan": "free"}
        assert api.get("/api/users/").status_code == 200
    with django_assert_num_queries(0):  # both cached
        assert api.get(profile).status_code == api.get("/api/users/").status_code == 200

    data = change_data(user, name="Edited", metadata='{"plan": "pro"}')
    assert client.post(f"{USERS_URL}{user.pk}/change/", data).status_code == 302
    with django_assert_num_queries(2):  # both computed again
        assert api.get(profile).json()["metadata"] == {"plan": "pro"}
        assert api.get("/api/users/").json()["results"][0]["name"] == "Edited"


def test_user_page_shows_the_post_count_linked_to_their_posts(staff_client) -> None:
    author = UserFactory.create()
    PostFactory.create_batch(3, author=author, title="Mine")
    PostFactory.create(title="Someone else's")
    page = text(staff_client.get(f"{USERS_URL}{author.pk}/change/"))
    link = f"{POSTS_URL}?author__id__exact={author.pk}"
    assert f'<a href="{link}">3 posts</a>' in page
    posts_page = text(staff_client.get(link))
    assert posts_page.count(">Mine</a>") == 3
    assert "Someone else" not in posts_page


def test_post_page_links_to_its_author(staff_client) -> None:
    post = PostFactory.create()
    page = text(staff_client.get(f"{POSTS_URL}{post.pk}/change/"))
    assert f'<a href="{USERS_URL}{post.author_id}/change/">{post.author.email}</a>' in page


def test_adding_a_user_validates_the_password_and_the_email(staff_client) -> None:
    UserFactory.create(email="taken@example.com")
    form = {"email": "TAKEN@example.com", "name": "X", "password1": "123", "password2": "123"}
    page = text(staff_client.post(f"{USERS_URL}add/", form))
    assert "A user with this email already exists." in page
    assert "This password is too short." in page
    form = {"email": "new@example.com", "name": "New", "password1": "lunar-orbit-1969", "password2": "lunar-orbit-1969"}
    assert staff_client.post(f"{USERS_URL}add/", form).status_code == 302
    user = User.objects.get(email="new@example.com")
    assert user.check_password("lunar-orbit-1969")
    assert not user.is_staff


def test_adding_a_user_refuses_an_email_taken_in_another_case(staff_client) -> None:
    UserFactory.create(email="Grace.Hopper@example.com")
    form = {
        "email": "grace.HOPPER@Example.COM",
        "name": "G",
        "password1": "lunar-orbit-1969",
        "password2": "lunar-orbit-1969",
    }
    response = staff_client.post(f"{USERS_URL}add/", form)
    assert response.status_code == 200
    assert "A user with this email already exists." in text(response)
    assert list(User.objects.order_by("id").values_list("email", flat=True)) == [
        "boss@example.com",
        "Grace.Hopper@example.com",
    ]


def test_adding_a_user_normalises_the_email_like_sign_up(staff_client) -> None:
    form = {
        "email": " New.User@EXAMPLE.Com ",
        "name": "New",
        "password1": "lunar-orbit-1969",
        "password2": "lunar-orbit-1969",
    }
    response = staff_client.post(f"{USERS_URL}add/", form, follow=True)
    assert "New.User@example.com" in text(response)
    assert User.objects.filter(email="New.User@example.com").exists()


# --- posts: writes go through posts.services --------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_post_add_edit_and_delete_go_through_the_services(client: Client) -> None:
    client.force_login(UserFactory.create(is_staff=True, is_superuser=True))
    author = UserFactory.create()
    api = client_for(UserFactory.create())
    assert api.get("/api/posts/").json()["results"] == []  # now cached

    response = client.post(f"{POSTS_URL}add/", {"author": author.pk, "title": "From the admin", "body": "Hello"})
    assert response.status_code == 302
    post = Post.objects.get()
    assert api.get("/api/posts/").json()["results"][0]["title"] == "From the admin"
    assert api.get(f"/api/posts/{post.pk}/").status_code == 200  # now cached

    response = client.post(f"{POSTS_URL}{post.pk}/change/", {"title": "Edited", "body": "Hello"})
    assert response.status_code == 302
    assert api.get(f"/api/posts/{post.pk}/").json()["title"] == "Edited"

    assert client.post(f"{POSTS_URL}{post.pk}/delete/", {"post": "yes"}).status_code == 302
    assert api.get(f"/api/posts/{post.pk}/").status_code == 404
    assert api.get("/api/posts/").json()["results"] == []


@pytest.mark.django_db(transaction=True)
def test_bulk_delete_of_posts_invalidates_caches(client: Client) -> None:
    client.force_login(UserFactory.create(is_staff=True, is_superuser=True))
    posts = PostFactory.create_batch(3)
    api = client_for(UserFactory.create())
    assert len(api.get("/api/posts/").json()["results"]) == 3
    selected = [post.pk for post in posts[:2]]
    response = client.post(POSTS_URL, {"action": "delete_selected", "_selected_action": selected, "post": "yes"})
    assert response.status_code == 302
    assert [post["id"] for post in api.get("/api/posts/").json()["results"]] == [posts[2].pk]
    for pk in selected:
        assert api.get(f"/api/posts/{pk}/").status_code == 404


def test_bulk_delete_refuses_more_than_the_limit(staff_client, monkeypatch) -> None:
    from posts import admin as posts_admin  # noqa: PLC0415

    monkeypatch.setattr(posts_admin, "BULK_DELETE_LIMIT", 2)
    posts = PostFactory.create_batch(3)
    response = staff_client.post(
        POSTS_URL, {"action": "delete_selected", "_selected_action": [post.pk for post in posts]}, follow=True
    )
    assert "At most 2 posts at a time" in text(response)
    assert Post.objects.count() == 3


# --- the token admin -------------------------------------------------------------------------------


def test_token_admin_searches_by_email_prefix(staff_client, django_assert_num_queries) -> None:
    for user in UserFactory.create_batch(5):
        token_issue(user=user)
    token, _ = token_issue(user=UserFactory.create(email="findme@example.com"))
    with django_assert_num_queries(CHANGELIST_QUERIES):
        assert staff_client.get(TOKENS_URL).status_code == 200
    page = text(staff_client.get(TOKENS_URL, {"q": "FINDME"}))
    assert "findme@example.com" in page
    assert "1 auth token" in page
    assert token.digest not in page  # nothing on the page signs anyone in
    assert staff_client.get(f"{TOKENS_URL}add/").status_code == 403


# --- manage.py createstaff -------------------------------------------------------------------------


@pytest.fixture
def staff_env(monkeypatch) -> dict[str, str]:
    values = {
        "DJANGO_STAFF_EMAIL": "ops@example.com",
        "DJANGO_STAFF_PASSWORD": "quiet-harbour-lantern",
        "DJANGO_STAFF_NAME": "Ops",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.mark.django_db
def test_createstaff_creates_a_superuser_from_the_environment(staff_env, capsys) -> None:
    call_command("createstaff")
    user = User.objects.get(email="ops@example.com")
    assert (user.is_staff, user.is_superuser, user.is_active, user.name) == (True, True, True, "Ops")
    assert user.check_password("quiet-harbour-lantern")
    assert "created staff user ops@example.com" in capsys.readouterr().out


@pytest.mark.django_db
def test_createstaff_is_idempotent_and_updates(staff_env, monkeypatch, capsys) -> None:
    call_command("createstaff")
    call_command("createstaff")
    assert "unchanged" in capsys.readouterr().out
    user = User.objects.get()
    user.is_active = user.is_staff = False
    user.save()
    monkeypatch.setenv("DJANGO_STAFF_EMAIL", "OPS@example.com")
    monkeypatch.setenv("DJANGO_STAFF_PASSWORD", "another-quiet-harbour")
    monkeypatch.setenv("DJANGO_STAFF_NAME", "Operations")
    call_command("createstaff")
    assert "updated staff user ops@example.com" in capsys.readouterr().out
    user = User.objects.get()
    assert (user.is_staff, user.is_superuser, user.is_active, user.name) == (True, True, True, "Operations")
    assert user.check_password("another-quiet-harbour")


@pytest.mark.django_db
def test_createstaff_normalises_the_email_like_sign_up(staff_env, monkeypatch, api_client) -> None:
    typed = "  Ops.Team@EXAMPLE.Com "
    body = {"email": typed, "name": "Ops", "password": staff_env["DJANGO_STAFF_PASSWORD"]}
    assert api_client.post("/api/users/", body, format="json").status_code == 201
    signed_up = User.objects.get().email
    User.objects.all().delete()
    monkeypatch.setenv("DJANGO_STAFF_EMAIL", typed)
    call_command("createstaff")
    assert User.objects.get().email == signed_up == "Ops.Team@example.com"


@pytest.mark.django_db
def test_createstaff_takes_over_the_account_whose_email_differs_only_in_case(staff_env, capsys) -> None:
    UserFactory.create(email="Ops@Example.com", name="Ops")
    call_command("createstaff")
    user = User.objects.get()
    assert (user.email, user.is_staff, user.is_superuser) == ("Ops@Example.com", True, True)
    assert "updated staff user Ops@Example.com" in capsys.readouterr().out


@pytest.mark.django_db
def test_createstaff_refuses_a_duplicate_created_meanwhile(staff_env, monkeypatch) -> None:
    """An account created between the lookup and the insert (the lookups are made to miss it):
    the case-insensitive unique constraint refuses the second one."""
    UserFactory.create(email="OPS@example.com")
    monkeypatch.setattr(selectors, "user_get_by_email", lambda **kwargs: None)
    with pytest.raises(CommandError, match="email already exists"):
        call_command("createstaff")
    assert User.objects.get().email == "OPS@example.com"


@pytest.mark.django_db
@pytest.mark.parametrize("missing", ["DJANGO_STAFF_EMAIL", "DJANGO_STAFF_PASSWORD"])
def test_createstaff_names_a_missing_variable(staff_env, monkeypatch, missing) -> None:
    monkeypatch.delenv(missing)
    with pytest.raises(CommandError, match=missing):
        call_command("createstaff")
    assert not User.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DJANGO_STAFF_PASSWORD", "123", "too short"),
        ("DJANGO_STAFF_PASSWORD", "ops@example.com", "too similar"),
        ("DJANGO_STAFF_EMAIL", "not-an-email", "DJANGO_STAFF_EMAIL"),
    ],
)
def test_createstaff_refuses_bad_values(staff_env, monkeypatch, variable, value, message) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(CommandError, match=message):
        call_command("createstaff")
    assert not User.objects.exists()


# --- manage.py admin_timing --------------------------------------------------------------------


def test_admin_timing_times_every_page_and_leaves_no_trace(db: None) -> None:
    author = UserFactory.create()
    PostFactory.create_batch(3, author=author, title="Timing the admin pages")
    out = StringIO()
    call_command("admin_timing", "--runs", "2", "--warmup", "0", "--path", "/admin/auth/group/", stdout=out)
    rows = [line for line in out.getvalue().splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 22
    assert all(re.fullmatch(r"\| .+ \| \d+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|", line) for line in rows), rows
    assert not User.objects.filter(email="admin-timing@postline.invalid").exists()


def test_admin_timing_needs_data(db: None) -> None:
    with pytest.raises(CommandError, match="seed it first"):
        call_command("admin_timing", "--runs", "1")
