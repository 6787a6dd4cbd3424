"""Factories of the project package's core models: scheduled jobs and runs, job item failures, staff jobs."""

from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone

from billing_backoffice.models import JobItemFailure, ScheduledJob, ScheduledRun, StaffJob

from .accounts import UserFactory


class ScheduledJobFactory(factory.django.DjangoModelFactory):
    """A scheduled job installed a day ago that has never succeeded (``last_success_at`` None)."""

    class Meta:
        model = ScheduledJob
        django_get_or_create = ("job",)

    job = factory.Sequence(lambda n: f"tests.scheduled_job_{n}")
    created_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))
    last_success_at = None


class ScheduledRunFactory(factory.django.DjangoModelFactory):
    """A running run of a scheduled job in its window, its lease ten minutes long."""

    class Meta:
        model = ScheduledRun

    job = "payments.settlement_sweep"
    window = factory.Sequence(lambda n: f"2026-11-26T12:{n % 60:02d}:00Z#{n}")
    task_id = factory.Sequence(lambda n: f"task-factory-{n}")
    status = ScheduledRun.Status.RUNNING
    started_at = factory.LazyFunction(timezone.now)
    lease_until = factory.LazyAttribute(lambda o: o.started_at + timedelta(minutes=10))

    class Params:
        finished = factory.Trait(
            status=ScheduledRun.Status.FINISHED, finished_at=factory.LazyAttribute(lambda o: o.started_at)
        )


class JobItemFailureFactory(factory.django.DjangoModelFactory):
    """An account a batch job failed on once, to be retried in five minutes."""

    class Meta:
        model = JobItemFailure

    job = "payments.charge_usage_thresholds"
    item_kind = "payments.account"
    item_key = factory.Sequence(lambda n: str(n))
    error = "invalid_currency"
    rule = "I6"
    message = "Unknown currency code"
    first_failed_at = factory.LazyFunction(timezone.now)
    last_failed_at = factory.SelfAttribute("first_failed_at")
    next_retry_at = factory.LazyAttribute(lambda o: o.last_failed_at + timedelta(minutes=5))


class StaffJobFactory(factory.django.DjangoModelFactory):
    """A bulk action a member of staff started, queued with 30 objects to do."""

    class Meta:
        model = StaffJob

    kind = "test.bulk_action"
    title = "Release 30 holds"
    actor = factory.SubFactory(UserFactory)
    total = 30
    created_at = factory.LazyFunction(timezone.now)
