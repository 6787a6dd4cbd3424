"""App configs of the project package.

- ``BillingBackofficeConfig``: the project package as an app, for its management commands
  (``add_totp_device``), its deploy check, and the ``ScheduledJob`` row of a beat entry added by
  hand.
- ``StaffAdminConfig``: ``django.contrib.admin`` with ``site.BillingAdminSite`` as the default site,
  so ``admin.site`` and every ``@admin.register`` use the site that enforces the second factor
  and shows today's figures on its index.
  The site's module imports django-otp models, so it is named here as a string and loaded only
  when the admin first touches ``admin.site`` (after the models are ready).
"""

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class BillingBackofficeConfig(AppConfig):
    name = "billing_backoffice"
    verbose_name = "Billing back office"
    default = True

    def ready(self) -> None:
        from django.db.models.signals import post_save
        from django_celery_beat.models import PeriodicTask

        from billing_backoffice import staff_login  # noqa: F401  (registers the deploy check)
        from billing_backoffice.scheduled_runs import scheduled_job_for_saved_entry

        # A beat entry added by hand gets its ScheduledJob row (finance's "late" jobs) at once.
        post_save.connect(scheduled_job_for_saved_entry, sender=PeriodicTask,
                          dispatch_uid="billing_backoffice.scheduled_job_for_saved_entry")


class StaffAdminConfig(admin_apps.AdminConfig):
    default = False
    default_site = "billing_backoffice.site.BillingAdminSite"
