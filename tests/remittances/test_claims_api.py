"""The console's claim call, ``POST /api/v1/accounts/{id}/claims/`` (CLM-1), JSON and multipart."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from remittances.models import BankTransaction, RemittanceClaim
from remittances.services import claims as svc
from remittances.services.claims import inputs as claim_inputs
from tests.factories import AccountFactory, UserFactory
from tests.helpers.claims import bank_txn

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


@pytest.fixture
def api() -> APIClient:
    client_user = UserFactory(username="api-console", is_staff=False)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=client_user).key}")
    return client


def url(account_id: int) -> str:
    return f"/api/v1/accounts/{account_id}/claims/"


def body(**overrides) -> dict:
    data = {
        "amount": "1200.00", "currency": "USD", "value_date": "2026-11-25", "payer_name": "Acme Ltd",
        "bank_reference": "INV-1",
    }
    data.update(overrides)
    return data


def test_clm_1_json_claim_matched_to_the_arrived_transfer(api, now):
    account = AccountFactory()
    txn = bank_txn(now=now, amount="1200.00", reference="INV-1")
    response = api.post(url(account.pk), body(), format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert set(data) == {"id", "status", "matched"}
    assert (data["status"], data["matched"]) == ("submitted", True)
    claim = RemittanceClaim.objects.get(pk=data["id"])
    assert (claim.account_id, claim.source, claim.amount, claim.payer_name, str(claim.value_date)) == (
        account.pk, "console", Decimal("1200.00"), "Acme Ltd", "2026-11-25"
    )
    txn.refresh_from_db()
    assert txn.status == BankTransaction.Status.CLAIMED and txn.account_id == account.pk


def test_clm_1_json_claim_without_the_transfer_waits(api):
    response = api.post(url(AccountFactory().pk), body(currency="eur", value_date=None), format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["matched"] is False
    assert RemittanceClaim.objects.get().currency == "EUR"


@pytest.mark.parametrize(
    "content, name, content_type",
    [(PDF, "advice.pdf", "application/pdf"), (PNG, "scan.png", "image/png"), (JPEG, "photo.jpg", "image/jpeg")],
)
def test_clm_1_multipart_claim_with_a_proof_file(api, media, content, name, content_type):
    proof = SimpleUploadedFile(name, content, content_type=content_type)
    response = api.post(url(AccountFactory().pk), {**body(), "proof": proof}, format="multipart")
    assert response.status_code == 201, response.json()
    claim = RemittanceClaim.objects.get(pk=response.json()["id"])
    assert claim.proof.name.startswith("claims/") and name not in claim.proof.name  # generated name
    with claim.proof.open("rb") as stored:
        assert stored.read() == content


@pytest.mark.parametrize(
    "content, name, content_type",
    [
        (b"just text", "advice.txt", "text/plain"),
        (b"<html><script>alert(1)</script></html>", "advice.pdf", "application/pdf"),  # lies about its type
        (PNG, "scan.pdf", "application/pdf"),
        (b"MZ\x90\x00", "invoice.exe", "application/octet-stream"),
    ],
)
def test_claim_proof_of_a_wrong_type_is_refused_with_400(api, media, content, name, content_type):
    proof = SimpleUploadedFile(name, content, content_type=content_type)
    response = api.post(url(AccountFactory().pk), {**body(), "proof": proof}, format="multipart")
    assert response.status_code == 400, response.content
    assert "proof" in response.json()["fields"]
    assert not RemittanceClaim.objects.exists()
    assert not any(media.rglob("*.*"))


def test_claim_proof_over_the_size_limit_is_refused(api, monkeypatch):
    monkeypatch.setattr(claim_inputs, "PROOF_MAX_BYTES", 1024)
    proof = SimpleUploadedFile("big.pdf", PDF + b"0" * 2048, content_type="application/pdf")
    response = api.post(url(AccountFactory().pk), {**body(), "proof": proof}, format="multipart")
    assert response.status_code == 400
    assert "larger" in str(response.json()["fields"]["proof"])
    assert not RemittanceClaim.objects.exists()


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"amount": 1200.5}, "amount"),  # a JSON number: floats never reach money (I6)
        ({"amount": "12.345"}, "amount"),
        ({"amount": "0.00"}, "amount"),
        ({"amount": "-5.00"}, "amount"),
        ({"currency": "DOLLARS"}, "currency"),
        ({"value_date": "yesterday"}, "value_date"),
    ],
)
def test_i6_malformed_claims_answer_400_with_the_field(api, overrides, field):
    response = api.post(url(AccountFactory().pk), body(**overrides), format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["fields"]
    assert not RemittanceClaim.objects.exists()


def test_claim_api_needs_a_token_and_a_known_account(api):
    anonymous = APIClient()
    assert anonymous.post(url(AccountFactory().pk), body(), format="json").status_code == 401
    response = api.post(url(10**9), body(), format="json")
    assert response.status_code == 404 and response.json()["code"] == "account_not_found"


def test_claim_api_staff_session_is_not_enough(client):
    staff = UserFactory(username="boss", is_superuser=True)
    client.force_login(staff)
    response = client.post(url(AccountFactory().pk), body(), content_type="application/json")
    assert response.status_code == 401
    assert not RemittanceClaim.objects.exists()


def test_clm_2_claim_on_an_already_claimed_transfer_still_answers_201_and_waits(api, now):
    txn = bank_txn(now=now, amount="1200.00", reference="INV-1")
    first = api.post(url(AccountFactory().pk), body(), format="json").json()
    second = api.post(url(AccountFactory().pk), body(), format="json").json()
    assert (first["matched"], second["matched"]) == (True, False)
    assert RemittanceClaim.objects.filter(bank_transaction=txn).count() == 1
