"""One confirmation step for the admin's irreversible or money-moving actions (issue 10).

The first POST (the changelist's action, or a custom page's form) renders
``templates/admin/confirm_action.html``: for each object what will happen (a ``Preview``: the
bills paid and the balance after, the number to be issued, ...) or, when the service would refuse,
the refusal with its rule; a "Confirm" button that is disabled when nothing can be done; and,
where the rule wants one, a reason. A preview is read-only: it calls the services' refusal
checks (``removal_blocked``, ``manual_payment_refusal``, ...), never the writing service.

The second POST (``_confirm=yes``) carries a one-time token (kept in the session) and a digest
of what the page showed. A token already used (a double submit, the back button) does nothing
again; a digest that no longer matches (the balance moved since) shows the page again with the
new preview instead of acting. Otherwise the service runs exactly as without a confirmation,
once per object, and re-checks every rule under its locks (``run_service_action``); each success
is written to the admin's LogEntry (Recent actions, the object's History) with the reason.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse

from billing_backoffice import admin_site
from billing_backoffice.free_text import ForgetsCardNumbers, card_number_free

TEMPLATE = "admin/confirm_action.html"
CONFIRM_FIELD = "_confirm"
TOKEN_FIELD = "_confirm_token"
DIGEST_FIELD = "_confirm_digest"
SESSION_KEY = "admin_confirm_tokens"
KEPT_TOKENS = 50
USED = "This confirmation was already used; nothing was done again."
CHANGED = "What will happen has changed since the page was shown; check it again before confirming."


@dataclass
class Preview:
    """What confirming does to one object: ``lines`` of (what, value), or the ``refusal`` text
    (``"DEL-3: ..."``) when the service would refuse it."""

    label: str
    lines: list[tuple[str, str]] = field(default_factory=list)
    refusal: str | None = None


class ReasonForm(ForgetsCardNumbers, forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), max_length=2000, required=False,
        validators=[card_number_free],  # SEC-1: refused before it is stored or logged
    )

    def __init__(self, *args, required: bool = False, help_text: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = required
        self.fields["reason"].help_text = help_text or (
            "Required; kept with the action in the history." if required else "Optional; kept in the history."
        )


def digest(previews: list[Preview]) -> str:
    text = "\n".join(f"{p.label}|{p.lines}|{p.refusal}" for p in previews)
    return hashlib.sha256(text.encode()).hexdigest()


def _new_token(request) -> str:
    token = secrets.token_urlsafe(16)
    kept = list(request.session.get(SESSION_KEY, []))[-(KEPT_TOKENS - 1):]
    request.session[SESSION_KEY] = [*kept, token]
    return token


def use_token(request) -> bool:
    """The page's token, once: True the first time it comes back, False after."""
    token = request.POST.get(TOKEN_FIELD, "")
    kept = list(request.session.get(SESSION_KEY, []))
    if not token or token not in kept:
        return False
    kept.remove(token)
    request.session[SESSION_KEY] = kept
    request.session.save()  # at once: a second submit in flight must not find it
    return True


def is_confirming(request) -> bool:
    return request.method == "POST" and request.POST.get(CONFIRM_FIELD) == "yes"


def confirm_page(modeladmin, request, *, title: str, intro: str, previews: list[Preview], hidden: list[tuple[str, str]],
                 reason_form: ReasonForm | None = None, warning: str = "", cancel_url: str = "",
                 action_url: str = "") -> TemplateResponse:
    """The confirmation page; ``hidden``: the (name, value) pairs the second POST must carry."""
    allowed = [p for p in previews if p.refusal is None]
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.opts,
        "title": title,
        "intro": intro,
        "previews": previews,
        "hidden": hidden,
        "reason_form": reason_form,
        "warning": warning,
        "can_confirm": bool(allowed),
        "refused_count": len(previews) - len(allowed),
        "cancel_url": cancel_url or request.get_full_path(),
        "action_url": action_url,
        "confirm_field": CONFIRM_FIELD,
        "token_field": TOKEN_FIELD,
        "token": _new_token(request),
        "digest_field": DIGEST_FIELD,
        "digest": digest(previews),
    }
    return TemplateResponse(request, TEMPLATE, context)


def confirmation_problem(request, previews: list[Preview]) -> str | None:
    """On the confirming POST: ``USED`` (token spent), ``CHANGED`` (stale page), or None."""
    if not use_token(request):
        return USED
    if request.POST.get(DIGEST_FIELD) != digest(previews):
        return CHANGED
    return None


def confirmed_action(modeladmin, request, queryset, *, action: str, title: str, intro: str,
                     preview: Callable[[list], list[Preview]], perform: Callable[[list, str], None],
                     reason_required: bool = False, reason_help: str = ""):
    """An admin action behind a confirmation page.

    ``preview(objects)`` -> one ``Preview`` per object (read-only); ``perform(queryset, reason)``
    runs the service the way the action did without a confirmation (``run_service_action``).
    Returns the page to render, or None once performed (the changelist redirects).
    """
    limit = admin_site.ACTION_OBJECT_LIMIT
    objects = list(queryset.order_by("pk")[: limit + 1])
    if len(objects) > limit:
        modeladmin.message_user(request, f"Select at most {limit} objects per action; nothing was done.", messages.ERROR)
        return None
    previews = preview(objects)
    confirming = is_confirming(request)
    form = ReasonForm(request.POST if confirming else None, required=reason_required, help_text=reason_help)
    warning = ""
    if confirming:
        problem = confirmation_problem(request, previews)
        if problem == USED:
            modeladmin.message_user(request, USED, messages.WARNING)
            return None
        warning = problem or ""
        if not warning and form.is_valid():
            perform(queryset.filter(pk__in=[o.pk for o in objects]), form.cleaned_data["reason"])
            return None
    hidden = [("action", action), *((helpers.ACTION_CHECKBOX_NAME, str(o.pk)) for o in objects)]
    return confirm_page(
        modeladmin, request, title=title, intro=intro, previews=previews, hidden=hidden, reason_form=form,
        warning=warning, cancel_url=request.get_full_path(),
    )


# --- the buttons of a change page ----------------------------------------------------------------


@dataclass(frozen=True)
class ObjectTool:
    """A button on an object's page that runs the list's ``action`` for it (through the
    confirmation page); ``reason`` (the refusing rule's text) shows it disabled, saying why."""

    action: str
    label: str
    reason: str = ""


def object_tool(action: str, label: str, refusal=None) -> ObjectTool:
    """The button, disabled with the text of ``refusal`` (a ``BillingError``) when there is one."""
    return ObjectTool(action, label, refusal.rule_text if refusal is not None else "")


class ObjectToolsMixin:
    """A ModelAdmin whose change page shows ``object_tools(request, obj)`` as buttons
    (``templates/admin/_object_tools.html``, included by the page's template)."""

    def object_tools(self, request, obj) -> list[ObjectTool]:
        return []

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if obj is not None:
            extra["object_tools"] = self.object_tools(request, obj)
        return super().change_view(request, object_id, form_url, extra_context=extra)
