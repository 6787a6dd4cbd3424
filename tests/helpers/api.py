"""The console API as the tests drive it: a token client that keeps every response body (for the
SEC-1 checks), the card form it posts and the calls most tests start with. The ``api`` fixture (a
logged-in ``RecordingClient``) is in ``tests/conftest.py``."""

from __future__ import annotations

from rest_framework.test import APIClient

VISA = "4242424242424242"


class RecordingClient(APIClient):
    """An APIClient that keeps every response body, for the SEC-1 checks."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.bodies: list[bytes] = []

    def request(self, **kwargs):
        response = super().request(**kwargs)
        self.bodies.append(response.content)
        return response


def card_body(number: str = VISA, **overrides) -> dict:
    body = {
        "number": number,
        "exp_month": 12,
        "exp_year": 2029,
        "cvv": "1234" if number.startswith(("34", "37")) else "123",
        "cardholder_name": "Ada Lovelace",
        "billing_address": {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"},
    }
    body.update(overrides)
    return body


def new_account(api, *, country: str = "US", kind: str = "individual") -> int:
    response = api.post("/api/v1/accounts/", {"name": "Acme", "kind": kind, "country": country}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def link_card(api, account_id: int, number: str = VISA, **overrides):
    return api.post(f"/api/v1/accounts/{account_id}/cards/", card_body(number, **overrides), format="json")
