"""Factories of staff users and customer accounts."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from payments.eligibility import region_for_country
from payments.models import Account


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True
    password = factory.django.Password("pw")


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.LazyAttribute(lambda o: f"{o.name.lower().replace(' ', '.')}@example.com")
    kind = Account.Kind.INDIVIDUAL
    country = "US"
    region = factory.LazyAttribute(lambda o: region_for_country(str(o.country)))


class StaffFactory(UserFactory):
    """A staff user in the named groups: ``StaffFactory(groups=["Finance staff"])``.

    The groups must exist (payments migration 0002 makes the staff roles; see
    ``tests/helpers/roles.py`` for the role users the admin tests log in as).
    """

    class Meta:
        skip_postgeneration_save = True

    @factory.post_generation
    def groups(self, create, names, **kwargs):
        if create and names:
            self.groups.add(*Group.objects.filter(name__in=names))
