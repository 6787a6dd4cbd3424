"""Admin of bank statements and bank transactions (REM-1, REM-2, REM-4..7): a thin layer.

- Bank statements are the bank's records: read-only, listed with their import summary. Finance
  staff (``remittances.import_bankstatement``) upload a file on a custom page (file + format);
  the page stores it and queues its import as a staff job (``statement_upload_start``), then
  redirects to the job's progress page: the bar, then the summary or the refusal with its rule.
  The statement's page links its upload's job. The size limit is checked on the upload before
  it is read.
- Bank transactions are the "unmatched transactions" work queue: read-only, filtered by status,
  age, currency, amount range and receiving account; searched by exact bank reference (or id)
  and payer name. Big-table settings: estimated counts, no facets, ``list_select_related``.
- Export to CSV/XLSX (django-import-export) for anyone who may view transactions. Every text
  cell that a spreadsheet would run as a formula (``= + - @``, tab, CR first) is prefixed with a
  single quote, so a payer name like ``=HYPERLINK(...)`` stays text.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from billing_backoffice.admin_export import Column, StreamedExportMixin, StreamedResource
from billing_backoffice.admin_site import (
    MAX_ID,
    BigTableAdminMixin,
    ReadOnlyAdminMixin,
    has_model_perm,
    money_column,
)
from billing_backoffice.errors import BillingError
from payments.admin.display import account_link
from remittances.admin.next_steps import next_step_html
from remittances.admin.payer_returns import PayerReturnPagesMixin
from remittances.models import BankStatement, BankTransaction, RemittanceAccount
from remittances.work_queues import STATEMENT_QUEUES, TRANSACTION_QUEUES
from billing_backoffice.work_queues import queue_filter
from remittances.parsers import AUTO, FORMATS, StatementTooLarge, check_size
from remittances.services.statement_uploads import statement_job, statement_upload_start

IMPORT_PERMISSION = "import_bankstatement"
EMPTY = "—"
TEMPLATES = "admin/remittances/statements"
SUMMARY_FIGURES = ("entries", "credited", "unmatched", "duplicates", "rejected", "review")


# --- bank statements ------------------------------------------------------------------------------


class StatementUploadForm(forms.Form):
    file = forms.FileField(help_text="camt.053, camt.054 (XML) or MT940 as sent by the bank.")
    format = forms.ChoiceField(
        choices=[(AUTO, "Detect from the content"), *[(f, BankStatement.Format(f).label) for f in FORMATS]],
        initial=AUTO,
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        try:
            check_size(upload.size)  # refused on its declared size, before a byte of it is read or parsed
        except StatementTooLarge as error:
            raise forms.ValidationError(error.detail) from None
        return upload


@admin.register(BankStatement)
class BankStatementAdmin(ReadOnlyAdminMixin, BigTableAdminMixin, admin.ModelAdmin):
    list_display = (
        "id", "identity", "format", "receiving_number", "period_end", "imported_at", "imported_by", "summary_line",
    )
    list_filter = (queue_filter(STATEMENT_QUEUES), "format", "imported_at")
    list_select_related = ("receiving_account", "imported_by")
    search_fields = ("identity",)
    search_help_text = "Statement id (exact) or id."
    raw_id_fields = ("receiving_account", "imported_by")
    readonly_fields = (
        "receiving_account", "format", "identity", "currency", "opening_balance", "closing_balance",
        "period_start", "period_end", "file_name", "file_sha256", "imported_by", "imported_at", "summary",
        "import_job",
    )
    fields = readonly_fields
    change_list_template = f"{TEMPLATES}/change_list.html"

    @admin.display(description="receiving account", ordering="receiving_account__number")
    def receiving_number(self, obj: BankStatement) -> str:
        return obj.receiving_account.number

    @admin.display(description="summary")
    def summary_line(self, obj: BankStatement) -> str:
        figures = obj.summary or {}
        return ", ".join(f"{figures.get(name, 0)} {name}" for name in SUMMARY_FIGURES)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        q = Q(identity=term) | Q(file_sha256=term.lower())
        if term.isdigit() and int(term) <= MAX_ID:
            q |= Q(pk=int(term))
        return queryset.filter(q), False

    def has_import_permission(self, request) -> bool:
        return has_model_perm(request, self.opts, IMPORT_PERMISSION)

    def get_urls(self):
        return [
            path(
                "upload/",
                self.admin_site.admin_view(self.upload_view),
                name="remittances_bankstatement_upload",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra = {"upload_url": reverse("admin:remittances_bankstatement_upload") if self.has_import_permission(request) else ""}
        return super().changelist_view(request, extra_context={**extra, **(extra_context or {})})

    def upload_view(self, request):
        """Finance staff upload one statement file; its import runs as a staff job (a Celery task)
        and the page redirects to the job's progress bar and summary (``statement_uploads.py``)."""
        if not self.has_import_permission(request):
            raise PermissionDenied
        error = None
        form = StatementUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                job = statement_upload_start(
                    upload=form.cleaned_data["file"], fmt=form.cleaned_data["format"], actor=request.user,
                    now=timezone.now(),
                )
            except BillingError as refusal:
                error = refusal
                self.message_user(request, f"Nothing was imported: {refusal}", messages.ERROR)
            else:
                return redirect("admin:billing_backoffice_staffjob_progress", job_id=job.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Import a bank statement",
            "form": form,
            "error": error,
            "max_bytes": settings.STATEMENT_MAX_BYTES,
            "jobs_url": reverse("admin:billing_backoffice_staffjob_changelist"),
        }
        return TemplateResponse(request, f"{TEMPLATES}/upload.html", context, status=400 if error else 200)

    @admin.display(description="import job")
    def import_job(self, obj: BankStatement):
        """The upload's job (progress page and summary), for a statement uploaded in the admin."""
        job = statement_job(obj)
        if job is None:
            return EMPTY
        url = reverse("admin:billing_backoffice_staffjob_progress", args=[job.pk])
        return format_html('<a href="{}">{}</a> ({})', url, job.title, job.get_state_display())


# --- bank transactions: the unmatched-transactions work queue -------------------------------------


class BankTransactionResource(StreamedResource):
    """CSV/XLSX export of bank transactions, with formula cells neutralised."""

    receiving_account = Column("receiving_account", "receiving_account__number")
    account_uid = Column("account_uid", "account__uid")
    account_name = Column("account_name", "account__name")
    statement = Column("statement", "statement__identity")

    class Meta:
        model = BankTransaction
        fields = (
            "id", "received_at", "status", "entry_kind", "amount", "currency", "value_date", "booking_date",
            "payer_name", "payer_account", "remittance_info", "end_to_end_id", "bank_reference",
            "receiving_account", "account_uid", "account_name", "statement", "credited_at",
        )
        export_order = fields


class AgeFilter(admin.SimpleListFilter):
    """How long ago the transfer reached the back office."""

    title = "received"
    parameter_name = "age"

    def lookups(self, request, model_admin):
        return [("today", "Today"), ("week", "This week (7 days)"), ("7", "Older than 7 days"), ("30", "Older than 30 days")]

    def queryset(self, request, queryset):
        now = timezone.now()
        value = self.value()
        if value == "today":
            start = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
            return queryset.filter(received_at__gte=start)
        if value == "week":
            return queryset.filter(received_at__gte=now - timedelta(days=7))
        if value in ("7", "30"):
            return queryset.filter(received_at__lt=now - timedelta(days=int(value)))
        return queryset


AMOUNT_RANGES = {
    "lt100": (None, Decimal("100")),
    "100-1k": (Decimal("100"), Decimal("1000")),
    "1k-10k": (Decimal("1000"), Decimal("10000")),
    "10k-100k": (Decimal("10000"), Decimal("100000")),
    "gte100k": (Decimal("100000"), None),
}


class AmountRangeFilter(admin.SimpleListFilter):
    title = "amount"
    parameter_name = "amount_range"

    def lookups(self, request, model_admin):
        return [
            ("lt100", "Under 100"), ("100-1k", "100 to 1,000"), ("1k-10k", "1,000 to 10,000"),
            ("10k-100k", "10,000 to 100,000"), ("gte100k", "100,000 and more"),
        ]

    def queryset(self, request, queryset):
        bounds = AMOUNT_RANGES.get(self.value() or "")
        if bounds is None:
            return queryset
        low, high = bounds
        if low is not None:
            queryset = queryset.filter(amount__gte=low)
        if high is not None:
            queryset = queryset.filter(amount__lt=high)
        return queryset


COMMON_CURRENCIES = ("USD", "EUR", "GBP", "SGD", "HKD", "CNY", "AUD", "CAD", "CHF")


class CurrencyFilter(admin.SimpleListFilter):
    """A fixed list (no ``SELECT DISTINCT`` over millions of transactions)."""

    title = "currency"
    parameter_name = "currency"

    def lookups(self, request, model_admin):
        codes = {settings.REMITTANCE_BANK["currency"], *COMMON_CURRENCIES}
        if self.value():
            codes.add(self.value().upper()[:3])
        return [(c, c) for c in sorted(codes)]

    def queryset(self, request, queryset):
        return queryset.filter(currency=self.value().upper()) if self.value() else queryset


class ReceivingAccountFilter(admin.SimpleListFilter):
    """Each shared receiving account (few), or "any dedicated account" (one per customer)."""

    title = "receiving account"
    parameter_name = "receiving"

    def lookups(self, request, model_admin):
        shared = RemittanceAccount.objects.filter(kind=RemittanceAccount.Kind.NON_DEDICATED).order_by("number")
        return [("dedicated", "Any dedicated account"), *[(str(a.pk), f"Shared {a.number}") for a in shared[:50]]]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "dedicated":
            return queryset.filter(receiving_account__kind=RemittanceAccount.Kind.DEDICATED)
        if value and value.isdigit() and int(value) <= MAX_ID:
            return queryset.filter(receiving_account_id=int(value))
        return queryset


@admin.register(BankTransaction)
class BankTransactionAdmin(PayerReturnPagesMixin, StreamedExportMixin, ReadOnlyAdminMixin, BigTableAdminMixin, admin.ModelAdmin):
    resource_classes = [BankTransactionResource]  # streamed, for those who may view transactions
    list_display = (
        "id", "received_at", "status", "amount_display", "payer_name", "bank_reference", "account_cell",
        "receiving_number", "entry_kind", "value_date",
    )
    list_filter = (queue_filter(TRANSACTION_QUEUES), "status", AgeFilter, CurrencyFilter, AmountRangeFilter, ReceivingAccountFilter, "entry_kind")
    list_select_related = ("receiving_account", "account")
    amount_display = money_column("amount")
    account_cell = admin.display(description="account", ordering="account__uid")(lambda self, obj: account_link(obj.account))
    # Newest first by id (the primary key's index; ids follow the import order, as received_at
    # does): ordering by received_at sorted the whole table on every page (0.6 s at 1M rows,
    # benchmarks/bench_admin.py).
    ordering = ("-id",)
    search_fields = ("bank_reference", "payer_name")
    search_help_text = "Bank reference (exact), transaction id, or part of the payer name."
    raw_id_fields = ("statement", "receiving_account", "account", "ledger_entry")
    readonly_fields = (
        "statement", "receiving_account", "bank_reference", "position", "detail_index", "entry_kind", "status",
        "amount", "currency", "booking_date", "value_date", "payer_name", "payer_account", "remittance_info",
        "end_to_end_id", "account", "ledger_entry", "received_at", "credited_at", "next_step",
    )
    fields = readonly_fields

    @admin.display(description="next step (whose turn)")
    def next_step(self, obj: BankTransaction):
        return next_step_html(obj)

    @admin.display(description="receiving account", ordering="receiving_account__number")
    def receiving_number(self, obj: BankTransaction) -> str:
        return obj.receiving_account.number

    @admin.display(description="claim")
    def claim_link(self, obj: BankTransaction):
        """Account managers start a claim for an unmatched credit from the queue (CLM-1)."""
        if obj.status != BankTransaction.Status.UNMATCHED:
            return EMPTY
        try:
            url = reverse("admin:remittances_remittanceclaim_initiate", args=[obj.pk])
        except NoReverseMatch:
            return EMPTY
        return format_html('<a href="{}">Initiate a claim</a>', url)

    def get_list_display(self, request):
        # The claim column only for those who may initiate claims (no per-request state on self).
        if request.user.has_perm("remittances.add_remittanceclaim"):
            return (*self.list_display, "claim_link")
        return self.list_display

    def get_search_results(self, request, queryset, search_term):
        """Digits -> id or reference; otherwise exact bank reference or payer name."""
        term = search_term.strip()
        if not term:
            return queryset, False
        q = Q(bank_reference=term) | Q(payer_name__icontains=term)
        if term.isdigit() and int(term) <= MAX_ID:
            q |= Q(pk=int(term))
        return queryset.filter(q), False
