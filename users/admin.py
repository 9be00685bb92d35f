"""The users admin, built for a table of millions of rows.

Every changelist query is served by an index: the default order (-id) by the primary key, the
list filters by partial indexes (users_active_id_idx, users_inactive_id_idx,
users_staff_id_idx, users_verified_id_idx, users_unverified_id_idx), the search, and its
results' order, by users_email_like_idx (lower(email) text_pattern_ops). Only id is sortable;
sorting by another column would sort the whole table on every page view.

Writes go through users.services, like the API's: new users through user_create (the add form
shows user_create_check's errors), names and metadata through user_update, (de)activation
through user_activate / user_deactivate, staff flags through user_staff_set (groups and
permissions, Django's own tables, by save_related), so caches are invalidated and a deactivated
user's API tokens revoked; verification emails are sent again through
email_verification_send. Users are deactivated, never deleted, here. API tokens are listed
and revoked (deleted) here, never created: only a sign-in issues one. Emails are matched by
users.models.email_matches, metadata checked by users.rules.
"""

import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import SEARCH_VAR
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import OrderBy, Q, QuerySet
from django.db.models.functions import Lower
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from project.http.admin import FastChangeListMixin, TermSearchMixin, search_id
from users.models import AuthToken, User, email_matches
from users.rules import METADATA_LIMITS, metadata_error
from users.services import (
    email_verification_send,
    user_activate,
    user_create,
    user_create_check,
    user_deactivate,
    user_staff_set,
    user_update,
)

# A bulk action touches at most this many users (each one is a service call and a commit hook).
BULK_ACTION_LIMIT = 500


class PatternOrder(OrderBy):
    """ORDER BY <expression> USING ~<~: the order a text_pattern_ops index keeps its entries in.

    A search's matches come in this order straight from users_email_like_idx, so a page costs
    its hundred rows however many users match. Ordered by -id instead, PostgreSQL may walk the
    primary key backwards filtering on the email: 0.5 s for the prefix "user1" on the seeded
    million users, whose emails grow with their ids (see docs/admin.md).
    """

    def as_sql(self, compiler: Any, connection: Any, template: str | None = None, **extra: Any) -> Any:
        # The comment carries ASC/DESC for Django's compiler, which looks for one in every
        # ORDER BY term (to drop duplicates); SQL's USING clause takes neither.
        operator = "~>~" if self.descending else "~<~"
        template = f"%(expression)s USING {operator} /* %(ordering)s */"
        return super().as_sql(compiler, connection, template=template)  # type: ignore[call-arg]  # stubs lack it


# --- metadata, edited as pretty-printed JSON ----------------------------------------------------


def _reject_constant(name: str) -> None:
    """NaN and Infinity are not JSON (and jsonb refuses them)."""
    raise ValueError(f"{name} is not valid JSON")


class MetadataFormField(forms.JSONField):
    """A user's metadata in a textarea: indented JSON in, the API's rules (users.rules) out."""

    widget = forms.Textarea(attrs={"rows": 14, "cols": 80, "class": "vLargeTextField postline-metadata"})

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", f"A JSON object ({METADATA_LIMITS}). Empty means {{}}.")
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)

    def bound_data(self, data: Any, initial: Any) -> Any:
        """After an error, the text as typed: parsed and printed again, a lone surrogate (valid
        JSON as an escape, refused by users.rules) could not be written into the page."""
        if self.disabled or data is None:
            return super().bound_data(data, initial)
        return forms.fields.InvalidJSONInput(data)

    def to_python(self, value: Any) -> Any:
        if self.disabled:
            return value
        if isinstance(value, str):
            value = value.strip()
        if value in self.empty_values:
            parsed: Any = {}
        elif isinstance(value, str):
            try:
                parsed = json.loads(value, parse_constant=_reject_constant)
            except ValueError:
                raise ValidationError(self.error_messages["invalid"], code="invalid", params={"value": value}) from None
        else:
            parsed = value
        error = metadata_error(parsed)
        if error is not None:
            raise ValidationError(error, code="invalid")
        return parsed

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.to_python(data) != initial
        except ValidationError:
            return True


# --- forms --------------------------------------------------------------------------------------


class UserChangeForm(forms.ModelForm):
    metadata = MetadataFormField()

    class Meta:
        model = User
        fields = ("name", "metadata", "is_active", "is_staff", "is_superuser", "groups", "user_permissions")


class UserAddForm(forms.ModelForm):
    """Sign-up by staff: the checks of POST /api/users/ (users.services.user_create_check), shown on the form."""

    password1 = forms.CharField(label="Password", strip=False, widget=forms.PasswordInput)
    password2 = forms.CharField(label="Password (again)", strip=False, widget=forms.PasswordInput)

    class Meta:
        model = User
        fields = ("email", "name")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        password = cleaned.get("password1")
        if password and password != cleaned.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        if password and "email" in cleaned and "name" in cleaned:
            try:
                user_create_check(email=cleaned["email"], name=cleaned["name"], password=password)
            except ValidationError as error:
                for field, messages in error.message_dict.items():
                    self.add_error("password1" if field == "password" else field, messages)
        return cleaned


# --- the admin ----------------------------------------------------------------------------------


@admin.register(User)
class UserAdmin(FastChangeListMixin, TermSearchMixin, admin.ModelAdmin):
    list_display = ("id", "email", "name", "post_count", "email_verified", "is_active", "is_staff", "created_at")
    list_display_links = ("id", "email")
    # Each served by a partial index for its rare value (users_inactive_id_idx, users_staff_id_idx)
    # or by the primary key for the common one: a page of the newest matching users is cheap.
    list_filter = ("is_active", "is_staff", "email_verified")
    # Only what an index can return in order.
    ordering = ("-id",)
    sortable_by = ("id",)
    # Needed by autocomplete widgets pointing here; get_search_results decides what they match.
    search_fields = ("email",)
    search_help_text = "An email or its beginning (case-insensitive), or a user id."
    actions = ("activate_users", "deactivate_users", "resend_verification_emails")

    form = UserChangeForm
    add_form = UserAddForm
    readonly_fields = ("email", "email_verified", "posts_link", "created_at", "last_login")
    fieldsets = (
        (None, {"fields": ("email", "email_verified", "name", "metadata")}),
        ("Activity", {"fields": ("posts_link", "created_at", "last_login")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "name", "password1", "password2")}),)
    filter_horizontal = ("groups", "user_permissions")

    # --- reads ---

    def get_ordering(self, request: HttpRequest) -> Any:
        """Newest first; search results (changelist ?q=, autocomplete ?term=) by email, as the index has them."""
        if (request.GET.get(SEARCH_VAR) or request.GET.get("term") or "").strip():
            return [PatternOrder(Lower("email"))]
        return self.ordering

    def search_term(self, request: HttpRequest, queryset: QuerySet[User], term: str) -> QuerySet[User]:
        matches = Q(email_matches(term, prefix=True))
        user_id = search_id(term)
        if user_id is not None:
            matches |= Q(pk=user_id)
        return queryset.filter(matches)

    @admin.display(description="posts")
    def posts_link(self, obj: User) -> str:
        """The user's post count (the users.post_count column, no COUNT), linked to their posts."""
        if obj.pk is None:
            return "-"
        count = obj.post_count
        url = reverse("admin:posts_post_changelist") + "?" + urlencode({"author__id__exact": obj.pk})
        return format_html('<a href="{}">{} post{}</a>', url, f"{count:,}", "" if count == 1 else "s")

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "user_permissions":
            # Permission names include their content type: one join instead of a query per option.
            kwargs["queryset"] = db_field.remote_field.model.objects.select_related("content_type")
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Accounts are deactivated (soft delete, like DELETE /api/users/{id}/), never deleted here."""
        return False

    # --- writes, through users.services ---

    def save_model(self, request: HttpRequest, obj: User, form: forms.ModelForm, change: bool) -> None:
        if not change:
            data = form.cleaned_data
            created = user_create(email=data["email"], name=data["name"], password=data["password1"])
            # The form's instance becomes the saved account (normalised email, id) for the
            # admin's message, log entry and redirect.
            for field in User._meta.concrete_fields:
                setattr(obj, field.attname, getattr(created, field.attname))
            obj._state.adding, obj._state.db = False, created._state.db
            return
        changed = set(form.changed_data)
        profile = {field: form.cleaned_data[field] for field in ("name", "metadata") if field in changed}
        if profile:
            user_update(user=obj, data=profile)
        if "is_active" in changed:
            (user_activate if obj.is_active else user_deactivate)(user=obj)
        if changed & {"is_staff", "is_superuser"}:
            user_staff_set(user=obj, is_staff=obj.is_staff, is_superuser=obj.is_superuser)

    @admin.action(description="Activate selected users", permissions=["change"])
    def activate_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._bulk(request, queryset.filter(is_active=False), user_activate, "Activated")

    @admin.action(description="Deactivate selected users (revokes their API tokens)", permissions=["change"])
    def deactivate_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        own_pk = request.user.pk or 0
        if queryset.filter(pk=own_pk).exists():
            self.message_user(request, "You cannot deactivate your own account; it was left active.", messages.WARNING)
            queryset = queryset.exclude(pk=own_pk)
        self._bulk(request, queryset.filter(is_active=True), user_deactivate, "Deactivated")

    @admin.action(description="Send the verification email again (unverified users)", permissions=["change"])
    def resend_verification_emails(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._bulk(request, queryset.filter(is_active=True, email_verified=False), email_verification_send, "Emailed")

    def _bulk(self, request: HttpRequest, queryset: QuerySet[User], service: Callable[..., Any], verb: str) -> None:
        users = list(queryset.order_by("-id")[: BULK_ACTION_LIMIT + 1])
        if len(users) > BULK_ACTION_LIMIT:
            self.message_user(
                request, f"At most {BULK_ACTION_LIMIT} users at a time: nothing was changed.", messages.ERROR
            )
            return
        # One transaction: all or nothing; the services' cache invalidations run after its commit.
        with transaction.atomic():
            for user in users:
                service(user=user)
        self.message_user(request, f"{verb} {len(users)} user{'' if len(users) == 1 else 's'}.", messages.SUCCESS)


# --- API tokens ---------------------------------------------------------------------------------


@admin.register(AuthToken)
class AuthTokenAdmin(FastChangeListMixin, TermSearchMixin, admin.ModelAdmin):
    """Users' API tokens: digests only, so nothing here can be used to sign in. Newest first
    (the primary key); the search by email or user id uses auth_tokens_user_created_idx."""

    list_display = ("id", "user", "created", "last_used", "expiry", "user_agent")
    list_select_related = ("user",)
    ordering = ("-id",)
    sortable_by = ("id",)
    raw_id_fields = ("user",)
    search_fields = ("user__email",)
    search_help_text = "An email or its beginning (case-insensitive), or a user id."
    fields = ("user", "created", "last_used", "expiry", "user_agent")
    readonly_fields = fields

    def search_term(self, request: HttpRequest, queryset: QuerySet[Any], term: str) -> QuerySet[Any]:
        matches = Q(email_matches(term, prefix=True, field="user__email"))
        user_id = search_id(term)
        if user_id is not None:
            matches |= Q(user_id=user_id)
        return queryset.filter(matches)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
