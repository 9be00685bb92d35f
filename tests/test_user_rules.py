"""The rules every entry point shares: which emails are the same (users.models.email_matches)
and what metadata may hold (users.rules), one definition each."""

import json

import pytest

from tests.conftest import planner_without_seqscans
from tests.factories import UserFactory
from users import rules, selectors
from users.models import User, email_matches

# --- emails: the same whatever their case ----------------------------------------------------------


@pytest.mark.django_db
def test_an_email_finds_its_user_whatever_the_case() -> None:
    ada = UserFactory.create(email="Ada.Lovelace@Example.com", is_active=False)
    UserFactory.create(email="ada@example.com")
    assert selectors.user_get_by_email(email="ada.lovelace@EXAMPLE.COM") == ada
    assert User.objects.get_by_natural_key("ADA.LOVELACE@example.com") == ada
    assert selectors.user_get_by_email(email="ada.lovelace@example.co") is None
    # A prefix match escapes LIKE's wildcards.
    assert list(User.objects.filter(email_matches("ADA.", prefix=True))) == [ada]
    assert not User.objects.filter(email_matches("ada_", prefix=True)).exists()


@pytest.mark.django_db
def test_the_email_lookup_is_served_by_a_lower_email_index() -> None:
    User.objects.bulk_create(UserFactory.build() for _ in range(500))
    with planner_without_seqscans("users"):
        plan = User.objects.filter(email_matches("USER7@example.com")).explain()
    assert "users_email_ci_unique" in plan or "users_email_like_idx" in plan, plan
    assert "Index Cond: (lower((email)::text) = 'user7@example.com'::text)" in plan, plan


# --- metadata: the limits and the check ------------------------------------------------------------


def test_metadata_at_the_limits_is_accepted() -> None:
    keys = {f"k{index}": index for index in range(rules.METADATA_MAX_KEYS)}
    nested: dict[str, object] = {}
    for _ in range(rules.METADATA_MAX_DEPTH):
        nested = {"n": nested or 1}
    filler = "x" * (rules.METADATA_MAX_BYTES - len('{"k": ""}'))
    for value in (keys, nested, {"k": filler}):
        assert rules.metadata_error(value) is None, value


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ([1], "Must be a JSON object."),
        ({f"k{index}": index for index in range(rules.METADATA_MAX_KEYS + 1)}, f"{rules.METADATA_MAX_KEYS} keys"),
        (json.loads('{"n": ' * (rules.METADATA_MAX_DEPTH + 1) + "1" + "}" * (rules.METADATA_MAX_DEPTH + 1)), "levels"),
        ({"k": "x" * (rules.METADATA_MAX_BYTES - len('{"k": ""}') + 1)}, f"{rules.METADATA_MAX_BYTES} bytes"),
        ({"k\x00": 1}, "Null characters"),
        ({"k": "\ud800"}, "Lone surrogates"),
    ],
)
def test_metadata_over_a_limit_is_refused_naming_it(value: object, error: str) -> None:
    assert error in (rules.metadata_error(value) or "")
