import factory
from django.contrib.auth.hashers import make_password

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
