"""Permission changes in the audit trail (SEC-2).

Who may do what is decided by two many-to-many tables of ``django.contrib.auth``: a staff
user's groups (``auth_user_groups``) and a group's permissions (``auth_group_permissions``).
A row added or removed there grants or takes away a role, so each one is audited like a money
or status row.

pghistory tracks a many-to-many through a proxy of its through table (its documented way):
the triggers sit on the auth tables themselves, so the admin's user and group pages,
``user.groups.add``/``.remove``/``.set``, ``group.permissions.set`` and raw SQL are all
recorded, with the actor of the request, task or ``audit_context`` block.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import models

from billing_backoffice import audit


@audit.track("usergrp")
class UserGroupMembership(User.groups.through):
    """A staff user's membership of a group (a row of ``auth_user_groups``)."""

    class Meta:
        proxy = True
        verbose_name = "group membership"
        verbose_name_plural = "group memberships"


@audit.track("grpperm")
class GroupPermissionGrant(Group.permissions.through):
    """A permission granted to a group (a row of ``auth_group_permissions``)."""

    class Meta:
        proxy = True
        verbose_name = "group permission"
        verbose_name_plural = "group permissions"


class ScheduledRun(models.Model):
    """One run of a scheduled job in one window: the guard that makes a second beat firing in
    the same window skip the job (``billing_backoffice/scheduled_runs.py`` claims and finishes
    these rows; nothing else writes them)."""

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        FINISHED = "finished", "finished"

    job = models.CharField(max_length=100, help_text="The task's name, e.g. payments.settlement_sweep.")
    window = models.CharField(
        max_length=300,
        help_text="The beat interval the firing fell in (2026-11-26T12:15:00Z); the monthly jobs put their "
        "billing period first (2026-10@2026-11-26T12:00:00Z), an operator's run its message "
        "(2026-10@manual:<task id>).",
    )
    task_id = models.CharField(max_length=255, help_text="The Celery task (message) that owns the run.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    attempts = models.PositiveIntegerField(
        default=1, help_text="Times the run was started: redeliveries of its message and takeovers count."
    )
    started_at = models.DateTimeField(help_text="When the current owner started (or took over) the run.")
    finished_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(
        help_text="Until then the owner is presumed alive; after it, an unfinished run may be taken over."
    )

    class Meta:
        verbose_name = "scheduled run"
        verbose_name_plural = "scheduled runs"
        constraints = [
            # The guarantee itself: two firings in one window cannot both insert their run.
            models.UniqueConstraint(fields=["job", "window"], name="scheduled_run_one_per_window"),
            models.CheckConstraint(
                condition=models.Q(status="running", finished_at__isnull=True)
                | models.Q(status="finished", finished_at__isnull=False),
                name="scheduled_run_finished_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job} {self.window}"


class ScheduledJob(models.Model):
    """One scheduled job of the beat schedule and when it last succeeded: the row exists before
    the job ever runs (``sync_beat_schedule`` installs it with the periodic task), so a job whose
    window never fired (beat down, its message lost) is still a row, and late once its interval and
    a grace have passed (``job_queues.jobs_late``). ``scheduled_runs.scheduled_job_succeeded``
    stamps it when the task succeeds; nothing else writes these rows."""

    job = models.CharField(max_length=100, unique=True, help_text="The task's name, e.g. payments.settlement_sweep.")
    created_at = models.DateTimeField(help_text="When the job was installed: the start of its first interval.")
    last_success_at = models.DateTimeField(
        null=True, blank=True, help_text="When the task last succeeded (a firing skipped by its window's run counts)."
    )

    class Meta:
        verbose_name = "scheduled job"
        verbose_name_plural = "scheduled jobs"

    def __str__(self) -> str:
        return self.job


class JobItemFailure(models.Model):
    """One item (an account, a bill, a hold, a statement file ...) that a batch job could not
    process: why, how often, and whether it is retried, given up or resolved
    (``billing_backoffice/item_failures.py`` writes these rows; nothing else does).

    One row per (job, item): a later failure of the same item updates it, a later success
    resolves it, and a failure after that opens it again from its first attempt."""

    job = models.CharField(max_length=100, help_text="The batch job, e.g. payments.charge_usage_thresholds.")
    item_kind = models.CharField(
        max_length=100, help_text="What the item is: a model label (payments.account) or statement_file."
    )
    item_key = models.CharField(
        max_length=300, help_text="The item within its kind: its id, id and currency (12:USD), a file name."
    )
    object_id = models.BigIntegerField(null=True, blank=True, help_text="The id of the item's row, if it is one.")
    error = models.CharField(max_length=100, help_text="The business error's code, else the exception's class.")
    rule = models.CharField(max_length=20, blank=True)
    message = models.TextField(help_text="The error's text, card numbers masked (SEC-1).")
    attempts = models.PositiveIntegerField(default=1, help_text="Failed attempts since it first failed.")
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()
    next_retry_at = models.DateTimeField(
        null=True, blank=True, help_text="The job skips the item until then; empty once given up or resolved."
    )
    given_up_at = models.DateTimeField(
        null=True, blank=True, help_text="Failed too often: skipped by the job until staff retry it."
    )
    resolved_at = models.DateTimeField(null=True, blank=True, help_text="When a later attempt succeeded.")
    retried_at = models.DateTimeField(null=True, blank=True, help_text="When staff last asked for a retry.")
    retried_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        verbose_name = "job item failure"
        verbose_name_plural = "job item failures"
        permissions = [("retry_jobitemfailure", "Can retry a failed job item")]
        constraints = [
            models.UniqueConstraint(fields=["job", "item_kind", "item_key"], name="job_item_failure_one_per_item"),
        ]
        indexes = [
            # What every run of a job reads first: its items that are not resolved.
            models.Index(
                fields=["job", "item_kind"], condition=models.Q(resolved_at__isnull=True),
                name="job_item_failure_open",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job} {self.item_kind} {self.item_key}"

    @property
    def state(self) -> str:
        if self.resolved_at is not None:
            return "resolved"
        if self.given_up_at is not None:
            return "given up"
        return "retrying"


from billing_backoffice.job_models import StaffJob  # noqa: E402,F401  (long staff work, issue 10)
