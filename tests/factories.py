from typing import Any

import factory
from django.contrib.auth.hashers import make_password

from posts import services
from posts.models import Post
from users.models import User

# Hashing once keeps factories fast; tests log in with this password.
PASSWORD = "correct-horse-battery"
_PASSWORD_HASH = make_password(PASSWORD)


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Faker("name")
    password = _PASSWORD_HASH
    metadata = factory.LazyFunction(lambda: {"plan": "free", "country": "DE"})


class PostFactory(factory.django.DjangoModelFactory[Post]):
    class Meta:
        model = Post

    author = factory.SubFactory(UserFactory)
    title = factory.Faker("sentence", nb_words=6)
    body = factory.Faker("paragraph", nb_sentences=4)

    @classmethod
    def _create(cls, model_class: type[Post], *args: Any, **kwargs: Any) -> Post:
        """Through the service, so the author's post_count stays right as it does in production."""
        return services.post_create(author=kwargs.pop("author"), title=kwargs.pop("title"), body=kwargs.pop("body"))
