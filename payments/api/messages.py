"""Console messages (NOTIFY-1): what the customer is told, read by the console through the API.

``GET /accounts/{id}/messages/`` lists the account's messages newest first with a cursor: the
console keeps the ``previous`` link of its last fetch and follows it to get only what is new
(a cursor is stable while messages arrive, unlike an offset). ``POST /messages/{id}/read/``
marks one read. The CC-2 hold start and end are messages of their own kinds, so the console
learns from the same list when to stop and resume new resources.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from billing_backoffice.api_views import ConsoleAPIView, ConsoleListAPIView
from billing_backoffice.api_schema import error_responses
from payments.api.views import ERROR_TEXT
from payments.errors import AccountNotFound
from payments.models import Account, Notification
from payments.services.notifications import message_mark_read


class MessageSerializer(serializers.ModelSerializer):
    kind = serializers.ChoiceField(choices=Notification.Kind.choices, read_only=True)
    link = serializers.CharField(read_only=True, help_text="The 3-D Secure verification link, or empty.")
    read = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = ["id", "kind", "title", "body", "link", "created_at", "read", "read_at"]
        read_only_fields = fields

    def get_read(self, message: Notification) -> bool:
        return message.read_at is not None


class MessageCursorPagination(CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50

    def query_parameters(self) -> set[str]:
        return {self.cursor_query_param}

    def get_schema_operation_parameters(self, view):
        # An empty ``?cursor=`` is refused (400, like every empty parameter): say so in the schema.
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.cursor_query_param:
                parameter["schema"] = {**parameter["schema"], "minLength": 1}
        return parameters


class MessageListView(ConsoleListAPIView):
    serializer_class = MessageSerializer
    pagination_class = MessageCursorPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no account
            return Notification.objects.none()
        account_id = self.kwargs["account_id"]
        if not Account.objects.filter(pk=account_id).exists():
            raise AccountNotFound()
        return Notification.objects.filter(account_id=account_id, channel=Notification.Channel.CONSOLE)

    @extend_schema(
        summary="The account's console messages, newest first (NOTIFY-1, CC-2)",
        description=(
            "Cursor-paginated: `next` pages back to older messages; keep `previous` of the first "
            "page and follow it later to fetch only messages that arrived since. Kinds include "
            "`credit_hold_started` and `credit_hold_ended` (CC-2: stop and resume new resources) "
            "and `three_ds_waiting`, whose `link` opens the verification: complete it, then retry "
            "the payment."
        ),
        responses={200: MessageSerializer(many=True), **error_responses(ERROR_TEXT, 404)},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class MessageReadView(ConsoleAPIView):
    @extend_schema(
        summary="Mark one console message read (NOTIFY-1)",
        request=None,
        responses={200: MessageSerializer, **error_responses(ERROR_TEXT, 404)},
    )
    def post(self, request, message_id: int):
        message = message_mark_read(message_id=message_id, now=timezone.now())
        return Response(MessageSerializer(message).data)
