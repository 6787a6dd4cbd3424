import pytest

from payments.models import PaymentMethod, VerificationHold
from payments.services import account_create, card_link
from tests.conftest import card_input

pytestmark = pytest.mark.django_db


def test_hold_1_visa_links_active_default_with_usd_hold(now):
    account = account_create(name="Acme", kind="individual", country="US")
    result = card_link(account_id=account.pk, card=card_input(), now=now)
    method = result.method
    assert method.status == PaymentMethod.Status.ACTIVE
    assert method.is_default
    hold = VerificationHold.objects.get(payment_method=method)
    assert (hold.amount, hold.currency, hold.descriptor) == (1, "USD", "ALIBABACLOUD.COM")
