import factory
from factory.django import DjangoModelFactory

from accounts.models import Client, Company, User

PASSWORD = "s3cure-Passw0rd"


class UserFactory(DjangoModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    kind = User.Kind.CLIENT
    password = factory.django.Password(PASSWORD)


class ClientFactory(DjangoModelFactory):
    class Meta:
        model = Client

    user = factory.SubFactory(UserFactory, kind=User.Kind.CLIENT)
    first_name = "Ana"
    last_name = "García"
    phone_number = "+34666666666"


class CompanyFactory(DjangoModelFactory):
    class Meta:
        model = Company

    user = factory.SubFactory(UserFactory, kind=User.Kind.COMPANY)
    name = factory.Sequence(lambda n: f"Shop {n}")
    url = "https://shop.example.com"
    first_name = "Luis"
    last_name = "Pérez"
    phone_number = "+34666666667"
