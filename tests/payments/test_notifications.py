"""The notification outbox (NOTIFY-2) and the console messages API (NOTIFY-1).

E-mail goes to Django's locmem backend in tests (``mailoutbox``). Services take the clock;
tests pass ``now`` and never read the wall clock except through the API (which reads it itself,
and the ``now`` fixture freezes every clock there).
"""

from __future__ import annotations

import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection, transaction
from rest_framework.test import APIClient

from billing_backoffice.permissions import StaffPermissionDenied
from payments.api.clients import api_client_token_issue
from payments.models import Notification
from payments.services import notifications as outbox
from payments.tasks import notifications as tasks
from tests.factories import AccountFactory, UserFactory
from tests.helpers.roles import MANAGERS, role_group

pytestmark = pytest.mark.django_db
Status, Channel = Notification.Status, Notification.Channel
PAN = "4111111111111111"


def event(account, now, key="evt-1", **params):
    outbox.notify(account_id=account.pk, kind="transfer_credited", event_key=key,
                  params={"amount": "10.00", "currency": "USD", **params}, now=now)


def email_of(account) -> Notification:
    return Notification.objects.get(account=account, channel=Channel.EMAIL)


def test_notify_2_one_row_per_event_and_channel_and_a_replay_writes_nothing(now):
    account = AccountFactory()
    event(account, now)
    event(account, now)
    assert sorted(Notification.objects.values_list("channel", flat=True)) == ["console", "email"]
    console = Notification.objects.get(channel=Channel.CONSOLE)
    assert console.status == Status.DELIVERED and "10.00 USD" in console.title


def test_notify_2_the_row_commits_or_rolls_back_with_its_event(now, django_capture_on_commit_callbacks):
    account = AccountFactory()
    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            event(account, now)
            raise RuntimeError("the event failed")
    assert not Notification.objects.exists() and callbacks == []


def test_notify_2_the_email_is_sent_after_commit_with_text_and_html(now, django_capture_on_commit_callbacks, mailoutbox):
    account = AccountFactory(email="ada@example.com")
    with mock.patch.object(tasks.deliver_notifications, "delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            with transaction.atomic():
                event(account, now)
                assert delay.call_count == 0 and mailoutbox == []  # nothing before the commit
    pk = email_of(account).pk
    delay.assert_called_once_with(notification_ids=[pk])
    assert tasks.deliver_notifications.apply(kwargs={"notification_ids": [pk]}).get() == {str(pk): "delivered"}
    assert tasks.deliver_notifications.apply(kwargs={"notification_ids": [pk]}).get() == {str(pk): "delivered"}
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["ada@example.com"] and "credited" in message.subject
    assert "credited to your account balance" in message.body
    assert message.alternatives[0][1] == "text/html" and "<h1" in message.alternatives[0][0]
    email = email_of(account)
    assert (email.status, email.attempts) == (Status.DELIVERED, 1) and email.delivered_at >= now  # the task's clock


def test_notify_2_a_failing_mail_server_is_retried_a_bounded_number_of_times(now, mailoutbox):
    account = AccountFactory()
    event(account, now)
    pk = email_of(account).pk
    with mock.patch("django.core.mail.EmailMultiAlternatives.send", side_effect=ConnectionRefusedError("smtp down")):
        statuses = [outbox.notification_deliver(notification_id=pk, now=now) for _ in range(outbox.MAX_ATTEMPTS + 2)]
    assert statuses[: outbox.MAX_ATTEMPTS - 1] == [Status.PENDING] * (outbox.MAX_ATTEMPTS - 1)
    assert statuses[outbox.MAX_ATTEMPTS - 1 :] == [Status.FAILED] * 3
    email = email_of(account)
    assert email.attempts == outbox.MAX_ATTEMPTS and "smtp down" in email.last_error
    assert mailoutbox == []


def test_notify_2_the_task_retries_a_failed_attempt_then_stops(now):
    account = AccountFactory()
    event(account, now)
    pk = email_of(account).pk
    with mock.patch("django.core.mail.EmailMultiAlternatives.send", side_effect=OSError("down")):
        result = tasks.deliver_notifications.apply(kwargs={"notification_ids": [pk]})
    assert email_of(account).attempts == 1 + tasks.MAX_RETRIES  # the first try and the bounded retries
    assert result.state in ("SUCCESS", "RETRY", "FAILURE")


def test_notify_2_a_crash_before_delivery_is_delivered_later_by_the_sweep_once(now, mailoutbox):
    account = AccountFactory()
    event(account, now)  # committed; its task was lost (never executed)
    assert outbox.notifications_sweep(now=now) == 0  # too young: its task may still come
    later = now + outbox.SWEEP_GRACE
    assert outbox.notifications_sweep(now=later) == 1
    assert outbox.notifications_sweep(now=later) == 0
    assert outbox.notification_deliver(notification_id=email_of(account).pk, now=later) == Status.DELIVERED
    assert len(mailoutbox) == 1


def test_notify_2_a_worker_that_died_while_sending_is_taken_over_after_its_lease(now, mailoutbox):
    account = AccountFactory()
    event(account, now)
    Notification.objects.filter(channel=Channel.EMAIL).update(status=Status.SENDING, lease_until=now + outbox.SEND_LEASE, attempts=1)
    assert outbox.notifications_sweep(now=now + timedelta(minutes=3)) == 0  # the sender may be alive
    assert outbox.notification_deliver(notification_id=email_of(account).pk, now=now) == Status.SENDING
    assert outbox.notifications_sweep(now=now + outbox.SEND_LEASE) == 1
    assert len(mailoutbox) == 1


@pytest.mark.django_db(transaction=True)
def test_notify_2_deliveries_racing_send_one_email(now, mailoutbox):
    account = AccountFactory()
    event(account, now)
    pk = email_of(account).pk
    barrier = threading.Barrier(6)

    def worker(sweep: bool):
        try:
            barrier.wait()
            if sweep:
                outbox.notifications_sweep(now=now + outbox.SWEEP_GRACE)
            else:
                outbox.notification_deliver(notification_id=pk, now=now)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i % 2 == 0,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(mailoutbox) == 1 and email_of(account).status == Status.DELIVERED


def test_notify_2_never_more_of_a_card_than_its_last_four_digits(now, mailoutbox):
    account = AccountFactory()
    outbox.notify(account_id=account.pk, kind="card_link_failed", event_key="link-x", now=now,
                  params={"last4": "1111", "network": "Visa", "reason": f"card {PAN} was declined."})
    outbox.notification_deliver(notification_id=email_of(account).pk, now=now)
    for row in Notification.objects.all():
        assert PAN not in f"{row.title} {row.body} {row.params}" and "1111" in row.title
    assert PAN not in mailoutbox[0].body and PAN not in mailoutbox[0].alternatives[0][0]


def test_notify_1_texts_in_the_customers_language_else_english(now, mailoutbox):
    german, french = AccountFactory(country="DE"), AccountFactory(country="FR")
    event(german, now, key="de")
    event(french, now, key="fr")
    assert email_of(german).language == "de" and "gutgeschrieben" in email_of(german).title
    assert email_of(french).language == "en" and "credited" in email_of(french).title
    outbox.notification_deliver(notification_id=email_of(german).pk, now=now)
    assert "Konsole" in mailoutbox[0].body


def test_notify_2_no_address_is_recorded_as_skipped(now):
    account = AccountFactory(email="")
    event(account, now)
    assert email_of(account).status == Status.SKIPPED
    assert outbox.notifications_sweep(now=now + timedelta(hours=1)) == 0


def test_notify_2_staff_retry_a_failed_delivery(now, django_capture_on_commit_callbacks):
    manager = UserFactory(username="notify-manager")
    manager.groups.add(role_group(MANAGERS))
    account = AccountFactory()
    event(account, now)
    email = email_of(account)
    with pytest.raises(outbox.NotificationNotFailed):
        outbox.notification_retry(notification_id=email.pk, actor=manager, now=now)
    Notification.objects.filter(pk=email.pk).update(status=Status.FAILED, attempts=outbox.MAX_ATTEMPTS)
    with pytest.raises(StaffPermissionDenied):
        outbox.notification_retry(notification_id=email.pk, actor=UserFactory(username="nobody"), now=now)
    with mock.patch.object(tasks.deliver_notifications, "delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            outbox.notification_retry(notification_id=email.pk, actor=manager, now=now)
    delay.assert_called_once_with(notification_ids=[email.pk])
    assert (email_of(account).status, email_of(account).attempts) == (Status.PENDING, 0)


# --- the console messages API --------------------------------------------------------------------


@pytest.fixture
def api() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_client_token_issue(name='console-messages').key}")
    return client


def test_notify_1_messages_newest_first_and_the_cursor_fetches_only_new_ones(now, api, frozen_clock):
    account, other = AccountFactory(), AccountFactory()
    for i in range(3):
        event(account, now + timedelta(minutes=i), key=f"m{i}", amount=f"{i}.00")
    event(other, now, key="other")
    page = api.get(f"/api/v1/accounts/{account.pk}/messages/")
    assert page.status_code == 200, page.content
    body = page.json()
    assert [m["title"].split()[0] for m in body["results"]] == ["2.00", "1.00", "0.00"]
    assert set(body["results"][0]) == {"id", "kind", "title", "body", "link", "created_at", "read", "read_at"}
    event(account, now + timedelta(minutes=5), key="m3", amount="3.00")
    newer = api.get(body["previous"] or f"/api/v1/accounts/{account.pk}/messages/")
    assert body["previous"] is None  # the first page has no previous yet: the console polls from the top
    assert [m["title"].split()[0] for m in newer.json()["results"]][0] == "3.00"


def test_notify_1_mark_a_message_read(now, api):
    account = AccountFactory()
    event(account, now)
    message = Notification.objects.get(channel=Channel.CONSOLE)
    response = api.post(f"/api/v1/messages/{message.pk}/read/")
    assert response.status_code == 200 and response.json()["read"] is True
    first = Notification.objects.get(pk=message.pk).read_at
    api.post(f"/api/v1/messages/{message.pk}/read/")
    assert Notification.objects.get(pk=message.pk).read_at == first
    email = email_of(account)
    assert api.post(f"/api/v1/messages/{email.pk}/read/").status_code == 404  # not a console message


def test_notify_1_messages_of_an_unknown_account_is_404_and_a_token_is_needed(api):
    assert api.get("/api/v1/accounts/999999/messages/").status_code == 404
    assert APIClient().get(f"/api/v1/accounts/{AccountFactory().pk}/messages/").status_code == 401
    assert api.get(f"/api/v1/accounts/{AccountFactory().pk}/messages/?page=2").status_code == 400


def test_notify_1_messages_endpoints_are_in_the_schema(api):
    schema = api.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"] if schema["content-type"].startswith("application/json") else None
    if paths is None:
        import yaml

        paths = yaml.safe_load(schema.content)["paths"]
    assert "/api/v1/accounts/{account_id}/messages/" in paths and "/api/v1/messages/{message_id}/read/" in paths
    listing = paths["/api/v1/accounts/{account_id}/messages/"]["get"]
    assert "cursor" in {p["name"] for p in listing["parameters"]} and "404" in listing["responses"]
