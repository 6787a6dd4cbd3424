"""Base classes of every console API view: token auth, strict query parameters, bounded pages.

A query parameter the operation does not document answers 400 naming it, and so does one sent
twice or empty, instead of being ignored: a typo (``?stauts=removed``) must not silently show another
list. Pages: ``billing_backoffice.api_pagination``.

The console API's plumbing lives once, in the project package, for both apps: these view base
classes, the error answers' schema (``api_schema.error_responses(ERROR_TEXT, 404, 422)``, the
``Error`` component) and the one error handler that renders every ``BillingError`` as
``{"code", "rule", "detail"}`` (``api_errors``). App modules only add their own texts.
"""

from __future__ import annotations

from rest_framework import exceptions, generics
from rest_framework.authentication import TokenAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.views import APIView

from billing_backoffice.api_pagination import ConsolePagination


class StrictQueryParametersMixin:
    """Refuses query parameters that the view does not declare (filters, pagination)."""

    def allowed_query_parameters(self) -> set[str]:
        allowed: set[str] = set()
        filterset_class = getattr(self, "filterset_class", None)
        if filterset_class is not None:
            allowed |= set(filterset_class.base_filters)
        paginator = getattr(self, "paginator", None)
        if paginator is not None and hasattr(paginator, "query_parameters"):
            allowed |= paginator.query_parameters()
        return allowed

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)  # authentication first: no token answers 401
        allowed = self.allowed_query_parameters()
        refused = {}
        for name, values in request.query_params.lists():
            if name not in allowed:
                refused[name] = ["Unknown query parameter."]
            elif len(values) > 1:
                refused[name] = ["Send this query parameter once."]
            elif values[0] == "":  # "?status=" is no status, not "any status": say so
                refused[name] = ["Give this query parameter a value, or leave it out."]
        if refused:
            raise exceptions.ValidationError(refused)


class ConsoleAPIView(StrictQueryParametersMixin, APIView):
    # Token only, set here rather than inherited from settings: a staff session cookie must
    # never reach these views even if someone adds SessionAuthentication to the defaults.
    authentication_classes = [TokenAuthentication]
    permission_classes = [IsAuthenticated]


class ConsoleListAPIView(StrictQueryParametersMixin, generics.ListAPIView):
    authentication_classes = ConsoleAPIView.authentication_classes
    permission_classes = ConsoleAPIView.permission_classes
    pagination_class = ConsolePagination
