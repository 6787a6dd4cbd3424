"""``StaffJob``: one piece of long staff work (a statement import, a bulk admin action) that runs
as a Celery task while the member of staff watches its progress page (issue 10, "Long work shows
progress"). Written by ``billing_backoffice/staff_jobs.py`` alone; imported by ``models.py``."""

from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import models


class StaffJob(models.Model):
    """Who started what, how far it got (``done`` of ``total``), and how it ended (``summary`` or
    ``error``). ``content_type``/``object_id``: the object the job is about or produced (the
    imported statement), when there is one."""

    class State(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    kind = models.CharField(max_length=100, help_text="What the job does: remittances.statement_import, an action's name.")
    title = models.CharField(max_length=200, help_text="What the member of staff asked for, in words.")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    content_type = models.ForeignKey(ContentType, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    object_id = models.CharField(max_length=64, blank=True)
    total = models.PositiveIntegerField(null=True, blank=True, help_text="Items to do; empty while unknown.")
    done = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    params = models.JSONField(default=dict, blank=True, help_text="What the task needs: ids, the stored file.")
    task = models.CharField(max_length=100, blank=True, help_text="The Celery task that runs the job (sent again if its message is lost).")
    run_id = models.CharField(
        max_length=64, blank=True,
        help_text="The task message whose run holds the job: its redelivery may take the job over, another message may not.",
    )
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True, help_text="Why the job was refused or failed (card numbers masked).")
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "staff job"
        verbose_name_plural = "staff jobs"
        indexes = [
            models.Index(fields=["actor", "-created_at"], name="staff_job_recent_by_actor"),
            # The sweep for jobs whose message was lost reads the unfinished ones only.
            models.Index(
                fields=["created_at"], condition=models.Q(state__in=("queued", "running")), name="staff_job_unfinished",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(state__in=("done", "failed"), finished_at__isnull=False)
                | models.Q(state__in=("queued", "running"), finished_at__isnull=True),
                name="staff_job_finished_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.get_state_display()})"

    @property
    def finished(self) -> bool:
        return self.state in (self.State.DONE, self.State.FAILED)
