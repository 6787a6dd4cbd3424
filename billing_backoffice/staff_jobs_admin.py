"""Staff jobs in the admin: "Recent jobs" (each user's own), a progress page per job and the JSON
status its script polls (issue 10, "Long work shows progress"; rows written by ``staff_jobs.py``).

- ``view_staffjob`` (every staff role, by migration) opens the list: each user's own jobs only
  (a superuser's, all).
- ``<id>/progress/``: a ``<progress>`` bar and the job's text, updated by
  ``static/billing_backoffice/job_progress.js`` (vanilla JS, served from this machine) polling
  ``<id>/status.json`` every second; once the job is finished the page shows its summary (or
  its error) from the server, so a page opened after the job ended needs no script at all.
- Another user's job is a 404 on both (its existence is not disclosed).
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.http import Http404, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html

from billing_backoffice.admin_site import ReadOnlyAdminMixin
from billing_backoffice.models import StaffJob
from billing_backoffice.staff_jobs import job_status, jobs_of

TEMPLATE = "admin/staff_jobs/progress.html"


def admin_url_of(content_type_id: int | None, object_id: str) -> str | None:
    """The admin change page of a job's object, if it has one."""
    if not content_type_id or not object_id:
        return None
    model = ContentType.objects.get_for_id(content_type_id).model_class()
    try:
        return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[object_id])
    except NoReverseMatch:
        return None


def object_urls(job: StaffJob) -> list[str]:
    """Links to what the job produced: its object, and the others of its kind it names
    (``summary["object_ids"]``: every statement of an uploaded file)."""
    ids = [str(pk) for pk in (job.summary or {}).get("object_ids", [])] or [job.object_id]
    urls = [admin_url_of(job.content_type_id, pk) for pk in ids if pk]
    return [url for url in urls if url]


@admin.register(StaffJob)
class StaffJobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("title_link", "state", "progress_text", "created_at", "finished_at")
    list_filter = ("state",)
    ordering = ("-created_at", "-id")
    list_per_page = 50

    # view_staffjob (every staff role, migration 0008) opens the list of one's own jobs; a job's
    # own page is its actor's even without it (whoever may upload a statement sees its import).
    def has_view_permission(self, request, obj=None) -> bool:
        user = request.user
        if obj is not None and user.is_active and user.is_staff and obj.actor_id == user.pk:
            return True
        return super().has_view_permission(request, obj) and (obj is None or user.is_superuser)

    def get_queryset(self, request):
        return jobs_of(request.user)

    @admin.display(description="job", ordering="title")
    def title_link(self, obj: StaffJob):
        return format_html('<a href="{}">{}</a>', reverse("admin:billing_backoffice_staffjob_progress", args=[obj.pk]), obj.title)

    @admin.display(description="progress")
    def progress_text(self, obj: StaffJob) -> str:
        return job_status(obj)["text"]

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:job_id>/progress/", view(self.progress_view), name="billing_backoffice_staffjob_progress"),
            path("<int:job_id>/status.json", view(self.status_view), name="billing_backoffice_staffjob_status"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not str(object_id).isdigit():
            raise Http404
        return redirect("admin:billing_backoffice_staffjob_progress", job_id=int(object_id))

    def visible_job(self, request, job_id: int) -> StaffJob:
        job = jobs_of(request.user).filter(pk=job_id).first()
        if job is None or not self.has_view_permission(request, job):
            raise Http404("No such job.")  # someone else's job is not even said to exist
        return job

    def status_view(self, request, job_id: int):
        status = job_status(self.visible_job(request, job_id))
        return JsonResponse(status, headers={"Cache-Control": "no-store"})

    def progress_view(self, request, job_id: int):
        job = self.visible_job(request, job_id)
        status = job_status(job)
        summary = job.summary or {}
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": job.title,
            "job": job,
            "status": status,
            "figures": summary.get("figures", []) if job.finished else [],
            "notes": summary.get("notes", []) if job.finished else [],
            "message": summary.get("message", ""),
            "object_urls": object_urls(job),
            "status_url": reverse("admin:billing_backoffice_staffjob_status", args=[job.pk]),
            "jobs_url": reverse("admin:billing_backoffice_staffjob_changelist"),
        }
        return TemplateResponse(request, TEMPLATE, context)
