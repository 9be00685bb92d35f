import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from django.contrib.auth import authenticate
from django.utils import timezone

from tests.conftest import client_for
from tests.factories import PASSWORD, PostFactory, UserFactory
from tests.live_server import request, running_gunicorn
from users import rules
from users.models import AuthToken, User

pytestmark = pytest.mark.django_db
JSON_HEADERS = {"Content-Type": "application/json"}

SIGN_UP = {"email": "ada@example.com", "name": "Ada Lovelace", "password": "analytical-engine-1843"}
PUBLIC_FIELDS = {"id", "name", "metadata", "created_at", "post_count"}
PRIVATE_FIELDS = PUBLIC_FIELDS | {"email", "email_verified", "is_active", "is_staff"}


# --- sign-up ------------------------------------------------------------------------------------


def test_sign_up_returns_201_with_the_email_and_never_the_password(api_client) -> None:
    response = api_client.post("/api/users/", SIGN_UP, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "ada@example.com"
    assert set(body) == PRIVATE_FIELDS
    assert body["post_count"] == 0
    user = User.objects.get(pk=body["id"])
    assert user.password.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")
    assert authenticate(username="ADA@example.com", password=SIGN_UP["password"]) == user


def test_email_is_unique_whatever_its_case(api_client) -> None:
    api_client.post("/api/users/", SIGN_UP, format="json")
    response = api_client.post("/api/users/", {**SIGN_UP, "email": "ADA@Example.COM"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"email": ["A user with this email already exists."]}
    assert User.objects.count() == 1


def test_sign_up_names_every_refused_field_at_once(api_client) -> None:
    UserFactory.create(email="ada@example.com")
    response = api_client.post("/api/users/", {**SIGN_UP, "email": "ADA@Example.com", "password": "123"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"email", "password"}
    assert response.json()["email"] == ["A user with this email already exists."]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**SIGN_UP, "email": "not-an-email"}, "email"),
        ({**SIGN_UP, "email": 42}, "email"),
        ({**SIGN_UP, "name": ""}, "name"),
        ({**SIGN_UP, "name": "x" * 151}, "name"),
        ({**SIGN_UP, "name": "nul\x00byte"}, "name"),
        ({**SIGN_UP, "password": "123"}, "password"),
        ({**SIGN_UP, "password": "ada@example.com"}, "password"),
        ({"name": "No Email", "password": SIGN_UP["password"]}, "email"),
        ({**SIGN_UP, "is_staff": True}, "is_staff"),
    ],
)
def test_sign_up_rejects_bad_input_naming_the_field(api_client, body, field) -> None:
    response = api_client.post("/api/users/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not User.objects.exists()


def test_malformed_json_is_a_400(api_client) -> None:
    response = api_client.post("/api/users/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


# --- token --------------------------------------------------------------------------------------


def test_token_for_valid_credentials_authenticates_requests(api_client, user) -> None:
    response = api_client.post("/api/auth/token/", {"email": user.email.upper(), "password": PASSWORD}, format="json")
    assert response.status_code == 200
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert api_client.get("/api/users/me/").json()["email"] == user.email


def test_token_endpoint_answers_unknown_email_and_wrong_password_alike(api_client, user) -> None:
    unknown = api_client.post("/api/auth/token/", {"email": "nobody@example.com", "password": PASSWORD}, format="json")
    wrong = api_client.post("/api/auth/token/", {"email": user.email, "password": "wrong"}, format="json")
    assert unknown.status_code == wrong.status_code == 400
    assert unknown.json() == wrong.json() == {"non_field_errors": ["Unable to log in with the provided credentials."]}


def test_token_endpoint_requires_both_fields(api_client) -> None:
    response = api_client.post("/api/auth/token/", {"email": "a@example.com"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"password": ["This field is required."]}


# --- list ---------------------------------------------------------------------------------------


def test_list_shows_active_users_newest_first_without_emails(api_client, django_assert_num_queries) -> None:
    older, newer = UserFactory.create(), UserFactory.create()
    UserFactory.create(is_active=False)
    PostFactory.create_batch(2, author=older)
    with django_assert_num_queries(1):
        response = api_client.get("/api/users/")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [row["id"] for row in results] == [newer.pk, older.pk]
    assert [row["post_count"] for row in results] == [0, 2]
    assert all(set(row) == PUBLIC_FIELDS for row in results)


def test_the_list_is_ordered_by_what_it_shows_created_at(api_client) -> None:
    """An account whose id is higher but created_at older (a sign-up that took its id first and
    committed last) is listed by created_at; ties go by id."""
    now = timezone.now()
    late_id = UserFactory.create(created_at=now - timedelta(minutes=5))
    first, tie = (UserFactory.create(created_at=now) for _ in range(2))
    rows = api_client.get("/api/users/").json()["results"]
    assert [row["id"] for row in rows] == [tie.pk, first.pk, late_id.pk]


@pytest.mark.django_db(transaction=True)
def test_concurrent_sign_ups_then_pages_of_users(tmp_path) -> None:
    """Twenty sign-ups at once through a live server, then every page of users, five at a time:
    created_at never increases down the list, and paging sees each user once."""
    with running_gunicorn(tmp_path) as server:

        def sign_up(number: int) -> int:
            body = json.dumps({"email": f"burst{number}@example.com", "name": "Burst", "password": PASSWORD})
            status, _, _ = request(
                f"{server.base_url}/api/users/", method="POST", body=body.encode(), headers=JSON_HEADERS
            )
            return status

        with ThreadPoolExecutor(max_workers=20) as pool:
            assert set(pool.map(sign_up, range(20))) == {201}
        seen: list[dict] = []
        url: str | None = f"{server.base_url}/api/users/?page_size=5"
        while url:
            status, _, body = request(url)
            assert status == 200
            page = json.loads(body)
            seen += page["results"]
            url = page["next"]
    assert len(seen) == len({row["id"] for row in seen}) == 20
    created = [datetime.fromisoformat(row["created_at"]) for row in seen]
    assert created == sorted(created, reverse=True)


def test_deactivated_user_disappears_from_list(api_client, user) -> None:
    client_for(user).delete(f"/api/users/{user.pk}/")
    assert api_client.get("/api/users/").json()["results"] == []


def test_metadata_filter_matches_by_containment(api_client) -> None:
    pro = UserFactory.create(metadata={"plan": "pro", "country": "FR"})
    UserFactory.create(metadata={"plan": "free", "country": "FR"})
    response = api_client.get("/api/users/", {"metadata": ["plan:pro", "country:FR"]})
    assert [row["id"] for row in response.json()["results"]] == [pro.pk]


@pytest.mark.parametrize("value", ["plan", ":pro", "nul\x00:x"])
def test_malformed_metadata_filter_is_a_400(api_client, value) -> None:
    response = api_client.get("/api/users/", {"metadata": value})
    assert response.status_code == 400
    assert "metadata" in response.json()


# --- detail -------------------------------------------------------------------------------------


def test_profile_is_public_without_email(api_client, user, django_assert_num_queries) -> None:
    PostFactory.create_batch(3, author=user)
    with django_assert_num_queries(1):
        response = api_client.get(f"/api/users/{user.pk}/")
    assert response.status_code == 200
    assert set(response.json()) == PUBLIC_FIELDS
    assert response.json()["post_count"] == 3


def test_public_reads_load_only_the_public_columns(api_client, user, django_assert_num_queries) -> None:
    for path in ("/api/users/", f"/api/users/{user.pk}/"):
        with django_assert_num_queries(1) as captured:
            assert api_client.get(path).status_code == 200
        sql = captured.captured_queries[0]["sql"]
        for column in ("password", "email", "last_login", "is_staff", "is_superuser"):
            assert f'"users"."{column}"' not in sql.split(" FROM ")[0], (path, column)


def test_other_users_do_not_see_the_email(user) -> None:
    other = UserFactory.create()
    assert "email" not in client_for(other).get(f"/api/users/{user.pk}/").json()


def test_the_user_and_staff_see_the_email(user, staff, django_assert_num_queries) -> None:
    own = client_for(user)
    with django_assert_num_queries(2):  # the token, the profile
        assert own.get(f"/api/users/{user.pk}/").json()["email"] == user.email
    assert client_for(staff).get(f"/api/users/{user.pk}/").json()["email"] == user.email


@pytest.mark.parametrize("path", ["/api/users/0/", "/api/users/999999/", "/api/users/abc/", "/api/users/9" * 30 + "/"])
def test_unknown_or_malformed_user_ids_are_404(api_client, path) -> None:
    assert api_client.get(path).status_code == 404


def test_deactivated_profile_is_404_to_the_public_but_visible_to_staff(api_client, staff) -> None:
    gone = UserFactory.create(is_active=False)
    assert api_client.get(f"/api/users/{gone.pk}/").status_code == 404
    assert client_for(staff).get(f"/api/users/{gone.pk}/").json()["is_active"] is False


def test_me_requires_sign_in(api_client) -> None:
    assert api_client.get("/api/users/me/").status_code == 401


def test_me_returns_the_caller(user, django_assert_num_queries) -> None:
    client = client_for(user)
    with django_assert_num_queries(2):
        response = client.get("/api/users/me/")
    assert response.json()["id"] == user.pk
    assert set(response.json()) == PRIVATE_FIELDS


# --- update -------------------------------------------------------------------------------------


def test_user_edits_name_and_metadata(user) -> None:
    response = client_for(user).patch(
        f"/api/users/{user.pk}/", {"name": "New Name", "metadata": {"plan": "pro", "tags": ["a"]}}, format="json"
    )
    assert response.status_code == 200
    user.refresh_from_db()
    assert (user.name, user.metadata) == ("New Name", {"plan": "pro", "tags": ["a"]})


def test_password_change_takes_effect(user) -> None:
    client_for(user).patch(f"/api/users/{user.pk}/", {"password": "a-brand-new-secret-9"}, format="json")
    assert authenticate(username=user.email, password="a-brand-new-secret-9") is not None


def test_read_only_fields_are_ignored_and_unknown_fields_rejected(user) -> None:
    client = client_for(user)
    ignored = client.patch(f"/api/users/{user.pk}/", {"is_staff": True, "email": "x@example.com"}, format="json")
    assert ignored.status_code == 200
    user.refresh_from_db()
    assert (user.is_staff, user.email) == (False, user.email)
    unknown = client.patch(f"/api/users/{user.pk}/", {"nmae": "typo"}, format="json")
    assert unknown.status_code == 400
    assert unknown.json() == {"nmae": ["Unknown field."]}


@pytest.mark.parametrize(
    "metadata",
    [
        [1, 2],
        "text",
        {"k": "nul\x00"},
        {f"k{i}": i for i in range(51)},
        {"k": "x" * 5000},
        {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}},
    ],
)
def test_bad_metadata_is_a_400(user, metadata) -> None:
    response = client_for(user).patch(f"/api/users/{user.pk}/", {"metadata": metadata}, format="json")
    assert response.status_code == 400
    assert "metadata" in response.json()


def test_metadata_limits_are_the_ones_in_users_rules(user, monkeypatch) -> None:
    monkeypatch.setattr(rules, "METADATA_MAX_KEYS", 2)
    response = client_for(user).patch(f"/api/users/{user.pk}/", {"metadata": {"a": 1, "b": 2, "c": 3}}, format="json")
    assert response.status_code == 400
    assert response.json() == {"metadata": ["At most 2 keys."]}


def test_metadata_jsonb_cannot_store_is_a_400_not_a_500(user) -> None:
    body = '{"metadata": {"k": "\\ud800"}}'  # a lone surrogate: valid JSON text, no UTF-8 form
    response = client_for(user).patch(f"/api/users/{user.pk}/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"metadata": ["Lone surrogates are not allowed."]}


def test_only_self_or_staff_may_edit(api_client, user, staff) -> None:
    other = UserFactory.create()
    path = f"/api/users/{user.pk}/"
    assert api_client.patch(path, {"name": "x"}, format="json").status_code == 401
    assert client_for(other).patch(path, {"name": "x"}, format="json").status_code == 403
    assert client_for(staff).patch(path, {"name": "By Staff"}, format="json").status_code == 200


# --- deactivate ---------------------------------------------------------------------------------


def test_deactivation_keeps_posts_and_kills_tokens_at_once(api_client, user) -> None:
    post = PostFactory.create(author=user)
    client = client_for(user)
    assert client.delete(f"/api/users/{user.pk}/").status_code == 204
    user.refresh_from_db()
    assert user.is_active is False
    assert not AuthToken.objects.filter(user=user).exists()
    assert client.get("/api/users/me/").status_code == 401
    assert api_client.get(f"/api/posts/{post.pk}/").status_code == 200


def test_only_self_or_staff_may_deactivate(api_client, user, staff) -> None:
    path = f"/api/users/{user.pk}/"
    assert api_client.delete(path).status_code == 401
    assert client_for(UserFactory.create()).delete(path).status_code == 403
    assert client_for(staff).delete(path).status_code == 204


def test_put_is_not_allowed(user) -> None:
    assert client_for(user).put(f"/api/users/{user.pk}/", {"name": "x"}, format="json").status_code == 405


# --- a user's posts -----------------------------------------------------------------------------


def test_user_posts_newest_first(api_client, user, django_assert_num_queries) -> None:
    posts = PostFactory.create_batch(3, author=user)
    PostFactory.create()
    with django_assert_num_queries(1):  # the page; a page with posts shows the user exists
        response = api_client.get(f"/api/users/{user.pk}/posts/")
    assert [row["id"] for row in response.json()["results"]] == [post.pk for post in reversed(posts)]


def test_a_user_without_posts_has_an_empty_page_after_one_more_query(
    api_client, user, django_assert_num_queries
) -> None:
    with django_assert_num_queries(2):  # the empty page, then whether the user exists
        response = api_client.get(f"/api/users/{user.pk}/posts/")
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_posts_of_unknown_user_are_404(api_client) -> None:
    assert api_client.get("/api/users/424242/posts/").status_code == 404
