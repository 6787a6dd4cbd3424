"""What the admin tests read back from a response."""

from __future__ import annotations

from django.contrib.messages import get_messages


def messages_of(response) -> list[str]:
    """The messages the admin showed the user (``message_user``), as text."""
    return [str(m) for m in get_messages(response.wsgi_request)]


def as_user(client, user):
    """The test client logged in as ``user``."""
    client.force_login(user)
    return client


def body_of(response) -> bytes:
    """The whole body of a response, streamed (an export's CSV or XLSX file) or not."""
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content
