"""The staff's 403 page (issue 10): instead of a bare "403 Forbidden", the admin's look, what
was refused, the permission the page needs and which role holds it, and a way home.

Used by ``handler403`` (``billing_backoffice.api_errors``) for every non-API request. The
permission is read from the admin URL that refused (``<app>_<model>_<view>``): the view's own
permission where the model defines one (``approve_remittanceclaim``, ``issue_remittanceaccount``),
else the model's view permission; a message given to ``PermissionDenied`` is shown as well.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.template.response import TemplateResponse
from django.urls import Resolver404, resolve

TEMPLATE = "403.html"
# Django's own admin views and the permission each needs.
STOCK_VIEWS = {"changelist": "view", "change": "view", "history": "view", "add": "add", "delete": "delete"}


def _needed_permission(request) -> Permission | None:
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return None
    if match.namespace != "admin" or not match.url_name:
        return None
    for app_label in _app_labels():
        prefix = f"{app_label}_"
        if not match.url_name.startswith(prefix):
            continue
        model, _, view = match.url_name[len(prefix):].rpartition("_")
        if not model:
            continue
        candidates = [f"{STOCK_VIEWS.get(view, view)}_{model}", f"view_{model}"]
        found = {p.codename: p for p in Permission.objects.filter(
            content_type__app_label=app_label, codename__in=candidates).select_related("content_type")}
        for codename in candidates:
            if codename in found:
                return found[codename]
    return None


def _app_labels() -> list[str]:
    from django.apps import apps

    return sorted((config.label for config in apps.get_app_configs()), key=len, reverse=True)


def forbidden_page(request, exception=None) -> TemplateResponse:
    permission = _needed_permission(request)
    roles = list(Group.objects.filter(permissions=permission).order_by("name").values_list("name", flat=True)) \
        if permission else []
    message = str(exception) if exception else ""
    context = {
        "title": "You may not open this page (403)",
        "exception": message,
        "permission": permission,
        "roles": roles,
        "site_header": "Billing back office",
        "your_roles": list(request.user.groups.order_by("name").values_list("name", flat=True))
        if getattr(request, "user", None) is not None and request.user.is_authenticated else [],
    }
    response = TemplateResponse(request, TEMPLATE, context, status=403)
    return response.render()
