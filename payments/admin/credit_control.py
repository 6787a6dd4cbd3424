"""Staff admin of credit control and notifications (CC-1..4, NOTIFY-2): a thin layer.

- Reminders, holds, pauses and notifications are written by services only: read-only here.
- Lifting a hold early (finance, CC-2) and pausing reminders (account managers, CC-3) are
  custom views with a form (the reason, the end date) and a confirmation step, each calling one
  service; ending pauses and retrying failed e-mails are actions, one service call per row.
- The receivables ageing report (CC-4) is a custom view with filters and a CSV export.
Each changelist shows the account's dunning level, pause and hold columns where they apply.
"""

from __future__ import annotations

import csv

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from billing_backoffice.admin_site import (
    MAX_ID,
    BigTableAdminMixin,
    ReadOnlyAdminMixin,
    has_model_perm,
    run_service_action,
)
from billing_backoffice.errors import BillingError
from billing_backoffice.free_text import ForgetsCardNumbers, card_number_free
from payments.admin.account_field import AccountChoiceField
from payments.eligibility import Region
from payments.models import Account, CreditHold, Notification, Reminder, ReminderPause
from payments.models.credit_control import MAX_PAUSE
from payments.work_queues import HOLD_QUEUES, PAUSE_QUEUES, REMINDER_QUEUES
from billing_backoffice.work_queues import queue_filter
from payments.receivables import BUCKET_LABELS, BUCKETS, GROUPS, receivables_ageing
from payments.services import credit_control as cc
from payments.services.notifications import notification_retry


@admin.register(Reminder)
class ReminderAdmin(BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "account", "bill", "level", "days_past_due", "sent_at")
    list_filter = (queue_filter(REMINDER_QUEUES), "level")
    list_select_related = ("account", "bill")
    raw_id_fields = ("account", "bill")
    search_fields = ("=account__id", "=bill__reference")

    def get_urls(self):
        view = self.admin_site.admin_view(self.ageing_view)
        return [path("ageing/", view, name="payments_reminder_ageing"), *super().get_urls()]

    def ageing_view(self, request):
        """CC-4: receivables ageing per currency, by region or account manager, with DSO; CSV."""
        if not request.user.has_perm("payments.view_bill"):
            raise PermissionDenied
        form = AgeingFilterForm(request.GET or None)
        filters = form.cleaned_data if form.is_valid() else {"group_by": "currency"}
        rows = receivables_ageing(
            now=timezone.now(), group_by=filters.get("group_by") or "currency",
            currency=(filters.get("currency") or "").upper(), region=filters.get("region") or "",
            account_manager_id=filters.get("account_manager") or None,
        )
        if request.GET.get("export") == "csv":
            return _ageing_csv(rows)
        if request.GET.get("export") == "xlsx":
            return _ageing_xlsx(rows)
        context = {
            **self.admin_site.each_context(request), "title": "Receivables ageing (CC-4)", "form": form,
            "rows": rows, "buckets": [(name, BUCKET_LABELS[name]) for name in BUCKETS], "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/payments/ageing.html", context)


class AgeingFilterForm(forms.Form):
    group_by = forms.ChoiceField(choices=[(g, g.replace("_", " ").capitalize()) for g in GROUPS], required=False)
    currency = forms.CharField(max_length=3, required=False)
    region = forms.ChoiceField(choices=[("", "All"), *Region.choices], required=False)
    account_manager = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID, help_text="User id")


AGEING_HEADER = ["currency", "group", *BUCKETS, "total", "bills", "sales_90_days", "dso_days"]


def _ageing_lines(rows):
    for row in rows:
        # A group (a username) that a spreadsheet would read as a formula is quoted.
        group = row.group if not row.group.startswith(("=", "+", "-", "@")) else f"'{row.group}"
        yield [row.currency, group, *(getattr(row, b) for b in BUCKETS), row.total, row.bills, row.sales,
               "" if row.dso is None else row.dso]


def _ageing_csv(rows) -> HttpResponse:
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="receivables-ageing.csv"'
    writer = csv.writer(response)
    writer.writerow(AGEING_HEADER)
    writer.writerows(_ageing_lines(rows))
    return response


def _ageing_xlsx(rows) -> HttpResponse:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Receivables ageing"
    sheet.append(AGEING_HEADER)
    for line in _ageing_lines(rows):
        sheet.append([value if isinstance(value, (int, str)) else float(value) for value in line])
    response = HttpResponse(content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    response["Content-Disposition"] = 'attachment; filename="receivables-ageing.xlsx"'
    book.save(response)
    return response


# -- CC-2: holds ----------------------------------------------------------------------------------


class LiftForm(ForgetsCardNumbers, forms.Form):
    reason = forms.CharField(max_length=500, widget=forms.Textarea, validators=[card_number_free])
    confirm = forms.BooleanField(label="I confirm lifting this credit hold before the bills are paid")


@admin.register(CreditHold)
class CreditHoldAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "account", "started_at", "lifted_at", "lifted_by", "lift_reason", "dunning_level")
    list_filter = (queue_filter(HOLD_QUEUES), ("lifted_at", admin.EmptyFieldListFilter))
    list_select_related = ("account", "lifted_by")
    raw_id_fields = ("account", "reminder", "lifted_by")
    search_fields = ("=account__id",)

    @admin.display(description="Dunning level")
    def dunning_level(self, hold):
        return cc.account_credit_state(account_id=hold.account_id, now=timezone.now())["level"]

    def get_urls(self):
        view = self.admin_site.admin_view(self.lift_view)
        return [path("<int:hold_id>/lift/", view, name="payments_credithold_lift"), *super().get_urls()]

    def lift_view(self, request, hold_id: int):
        if not has_model_perm(request, self.model._meta, "lift_credithold"):
            raise PermissionDenied
        hold = get_object_or_404(CreditHold, pk=hold_id)
        form = LiftForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                cc.credit_hold_lift(account_id=hold.account_id, reason=form.cleaned_data["reason"],
                                    actor=request.user, now=timezone.now())
            except BillingError as error:
                self.message_user(request, f"{hold}: {error}", messages.ERROR)
            else:
                self.message_user(request, f"{hold}: lifted.", messages.SUCCESS)
                return redirect(reverse("admin:payments_credithold_changelist"))
        context = {**self.admin_site.each_context(request), "title": f"Lift {hold}", "form": form, "object": hold,
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/payments/credit_control_form.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {"lift_url": reverse("admin:payments_credithold_lift", args=[object_id])
                 if has_model_perm(request, self.model._meta, "lift_credithold") else None}
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})


# -- CC-3: pauses ---------------------------------------------------------------------------------


class PauseForm(ForgetsCardNumbers, forms.Form):
    account = AccountChoiceField(ReminderPause._meta.get_field("account"))
    reason = forms.CharField(max_length=500, widget=forms.Textarea, validators=[card_number_free])
    ends_at = forms.DateTimeField(help_text=f"At most {MAX_PAUSE.days} days from now (UTC).")


@admin.register(ReminderPause)
class ReminderPauseAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "account", "reason", "started_at", "ends_at", "ended_at", "created_by", "ended_by")
    list_filter = (queue_filter(PAUSE_QUEUES), ("ended_at", admin.EmptyFieldListFilter))
    list_select_related = ("account", "created_by", "ended_by")
    raw_id_fields = ("account", "created_by", "ended_by")
    search_fields = ("=account__id",)
    actions = ["end_pauses"]

    def has_pause_permission(self, request) -> bool:
        return has_model_perm(request, self.model._meta, "pause_reminderpause")

    @admin.action(description="End the selected pauses now (CC-3)", permissions=["pause"])
    def end_pauses(self, request, queryset):
        run_service_action(
            self, request, queryset,
            lambda pause: cc.reminder_pause_end(account_id=pause.account_id, actor=request.user, now=timezone.now()),
            done_message="{count} pause(s) ended.",
        )

    def get_urls(self):
        view = self.admin_site.admin_view(self.pause_view)
        return [path("pause/", view, name="payments_reminderpause_pause"), *super().get_urls()]

    def pause_view(self, request):
        if not self.has_pause_permission(request):
            raise PermissionDenied
        form = PauseForm(request.POST or None, initial={"account": request.GET.get("account")})
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            if data["account"] is None:
                form.add_error("account", "No such account.")
            else:
                try:
                    cc.reminder_pause(account_id=data["account"].pk, reason=data["reason"], ends_at=data["ends_at"],
                                      actor=request.user, now=timezone.now())
                except BillingError as error:
                    self.message_user(request, str(error), messages.ERROR)
                else:
                    self.message_user(request, "Reminders paused.", messages.SUCCESS)
                    return redirect(reverse("admin:payments_reminderpause_changelist"))
        context = {**self.admin_site.each_context(request), "title": "Pause reminders (CC-3)", "form": form,
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/payments/credit_control_form.html", context)


# -- NOTIFY-2: the outbox -------------------------------------------------------------------------


@admin.register(Notification)
class NotificationAdmin(BigTableAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "account", "kind", "channel", "status", "attempts", "last_error", "created_at",
                    "delivered_at", "read_at")
    list_filter = ("status", "channel", "kind")
    list_select_related = ("account",)
    raw_id_fields = ("account",)
    search_fields = ("=account__id", "=event_key")
    exclude = ("params",)
    actions = ["retry"]

    def has_retry_permission(self, request) -> bool:
        return has_model_perm(request, self.model._meta, "retry_notification")

    @admin.action(description="Send the selected failed e-mails again (NOTIFY-2)", permissions=["retry"])
    def retry(self, request, queryset):
        run_service_action(
            self, request, queryset,
            lambda n: notification_retry(notification_id=n.pk, actor=request.user, now=timezone.now()),
            done_message="{count} e-mail(s) queued again.",
        )
