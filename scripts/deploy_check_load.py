"""Load for `make deploy-check`: bounded concurrency against a deployed back office on 127.0.0.1.

Console clients (API token) and staff clients (admin session) loop over what they do every day;
a baseline pass sends the same number of clients against ``/healthz``. Every request is recorded
(label, status, latency, time) and the summary written as JSON; the accepted usage references are
written too, so the check can prove each took effect exactly once.

    deploy_check_load.py --base http://127.0.0.1:8765 --token T --seconds 120 --clients 50 --out F
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import statistics
import threading
import time
import urllib.parse
from datetime import date

FORWARDED = {"X-Forwarded-Proto": "https"}  # TLS ends at the proxy in front (README "Deployment")


def luhn_card(prefix: str, rng: random.Random) -> str:
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(15 - len(prefix)))
    total = 0
    for index, char in enumerate(reversed(body)):
        digit = int(char)
        if index % 2 == 0:
            digit *= 2
            digit -= 9 if digit > 9 else 0
        total += digit
    return body + str((10 - total % 10) % 10)


class Client:
    think_seconds = (0.0, 0.0)  # a person's pause between two calls (console and staff clients)

    def __init__(self, base: str, records: list, lock: threading.Lock) -> None:
        parsed = urllib.parse.urlparse(base)
        self.host, self.port = parsed.hostname, parsed.port
        self.records, self.lock = records, lock
        self.connection: http.client.HTTPConnection | None = None
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, label: str, *, body=None, headers=None, form=False):
        headers = {**FORWARDED, "Host": f"{self.host}:{self.port}", **(headers or {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if body is not None:
            if form:
                data = urllib.parse.urlencode(body).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        else:
            data = None
        started = time.time()
        status, text = 0, ""
        try:
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
            self.connection.request(method, path, body=data, headers=headers)
            response = self.connection.getresponse()
            text = response.read().decode(errors="replace")
            status = response.status
            for header, value in response.getheaders():
                if header.lower() == "set-cookie":
                    name, _, rest = value.partition("=")
                    self.cookies[name.strip()] = rest.split(";", 1)[0]
            if response.getheader("Connection", "").lower() == "close":
                self.close()
        except (OSError, http.client.HTTPException):
            self.close()  # refused or reset: recorded as status 0 (a connection error)
        elapsed = time.time() - started
        with self.lock:
            self.records.append((label, status, elapsed, started))
        if self.think_seconds[1]:
            time.sleep(random.uniform(*self.think_seconds))
        return status, text

    def json(self, *args, **kwargs):
        status, text = self.request(*args, **kwargs)
        try:
            return status, json.loads(text) if text else {}
        except ValueError:
            return status, {}

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        self.connection = None


def console_loop(client: Client, token: str, rng: random.Random, accepted: list, lock, deadline: float) -> None:
    auth = {"Authorization": f"Token {token}"}
    period = date.today().strftime("%Y-%m")
    while time.time() < deadline:
        status, account = client.json("POST", "/api/v1/accounts/", "POST /accounts/", headers=auth,
                                      body={"name": "Load Co", "kind": "individual", "country": "US"})
        if status != 201:
            time.sleep(0.2)
            continue
        account_id = account["id"]
        card = {"number": luhn_card("49", rng), "exp_month": 12, "exp_year": date.today().year + 3, "cvv": "123",
                "cardholder_name": "Load Tester",
                "billing_address": {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"}}
        status, method = client.json("POST", f"/api/v1/accounts/{account_id}/cards/", "POST /accounts/{id}/cards/",
                                     headers=auth, body=card)
        if status == 201 and (method.get("three_ds") or {}).get("required"):
            client.json("POST", f"/api/v1/three-ds/{method['three_ds']['id']}/complete/",
                        "POST /three-ds/{id}/complete/", headers=auth, body={"outcome": "success"})
        status, paypal = client.json("POST", f"/api/v1/accounts/{account_id}/paypal/", "POST /accounts/{id}/paypal/",
                                     headers=auth, body={"email": "buyer@example.com", "country": "US",
                                                         "payer_id": f"LOAD{rng.randrange(10**12):012d}"})
        if status == 201:
            client.json("POST", f"/api/v1/paypal/{paypal['id']}/agreement/", "POST /paypal/{id}/agreement/",
                        headers=auth, body={"outcome": "approved", "has_funding_source": True})
        client.json("GET", f"/api/v1/accounts/{account_id}/payment-methods/", "GET /accounts/{id}/payment-methods/",
                    headers=auth)
        for n in range(3):
            reference = f"load-{account_id}-{n}"
            for _ in range(2):  # every report sent twice: the console retries
                status, _ = client.json("POST", f"/api/v1/accounts/{account_id}/usage/", "POST /accounts/{id}/usage/",
                                        headers=auth, body={"amount": "1.25", "currency": "USD", "period": period,
                                                            "reference": reference})
                if status in (200, 201):
                    with lock:
                        accepted.append(reference)
        client.json("POST", f"/api/v1/accounts/{account_id}/orders/", "POST /accounts/{id}/orders/", headers=auth,
                    body={"kind": "purchase", "amount": "9.00", "currency": "USD", "reference": f"load-order-{account_id}"})
        client.json("POST", f"/api/v1/accounts/{account_id}/claims/", "POST /accounts/{id}/claims/", headers=auth,
                    body={"amount": "50.00", "currency": "USD", "value_date": date.today().isoformat(),
                          "payer_name": "Load Co", "bank_reference": f"LOADREF{account_id}"})
        client.json("GET", f"/api/v1/accounts/{account_id}/", "GET /accounts/{id}/", headers=auth)


def staff_loop(client: Client, username: str, password: str, deadline: float) -> None:
    def login() -> bool:
        status, page = client.request("GET", "/admin/login/", "GET /admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if not token:
            return False
        status, _ = client.request(
            "POST", "/admin/login/?next=/admin/", "POST /admin/login/", form=True,
            body={"csrfmiddlewaretoken": token.group(1), "username": username, "password": password, "next": "/admin/"},
            headers={"Referer": f"https://{client.host}:{client.port}/admin/login/"},
        )
        return status == 302

    while time.time() < deadline and not login():
        time.sleep(1)
    pages = [
        ("/admin/", "GET /admin/"),
        ("/admin/remittances/remittanceclaim/", "GET /admin/claims/"),
        ("/admin/remittances/remittanceclaim/?q=LOADREF", "GET /admin/claims/?q="),
        ("/admin/payments/account/?q=Load", "GET /admin/accounts/?q="),
        ("/admin/payments/paymentmethod/?q=4242424242424242", "GET /admin/paymentmethods/?q="),
        ("/admin/payments/bill/", "GET /admin/bills/"),
        ("/admin/remittances/banktransaction/", "GET /admin/banktransactions/"),
    ]
    while time.time() < deadline:
        for path, label in pages:
            if time.time() >= deadline:
                break
            status, _ = client.request("GET", path, label)
            if status == 302:  # session lost (a restart): log in again
                login()
            time.sleep(0.2)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))] * 1000 if ordered else 0.0


def summarise(records: list, seconds: float) -> dict:
    by_label: dict[str, list] = {}
    for label, status, elapsed, _ in records:
        by_label.setdefault(label, []).append((status, elapsed))
    summary = {}
    for label, rows in sorted(by_label.items()):
        latencies = [elapsed for _, elapsed in rows]
        summary[label] = {
            "requests": len(rows), "rate_per_s": round(len(rows) / seconds, 2),
            "p50_ms": round(percentile(latencies, 0.5), 1), "p95_ms": round(percentile(latencies, 0.95), 1),
            "p99_ms": round(percentile(latencies, 0.99), 1),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 1),
            "status": {str(s): sum(1 for status, _ in rows if status == s) for s in sorted({s for s, _ in rows})},
        }
    return summary


def run(clients: int, seconds: float, target) -> tuple[list, float]:
    records: list = []
    lock = threading.Lock()
    deadline = time.time() + seconds
    threads = [threading.Thread(target=target, args=(index, records, lock, deadline), daemon=True)
               for index in range(clients)]
    started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    return records, time.time() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--staff-user", default="admin")
    parser.add_argument("--staff-password", required=True)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--staff-clients", type=int, default=4)
    parser.add_argument("--baseline-seconds", type=float, default=15)
    parser.add_argument("--think", type=float, default=1.0, help="mean pause between a client's calls (s)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    def baseline_client(index, records, lock, deadline):
        client = Client(args.base, records, lock)
        while time.time() < deadline:
            client.request("GET", "/healthz", "GET /healthz (baseline)")

    baseline_records, baseline_elapsed = run(args.clients, args.baseline_seconds, baseline_client)
    accepted: list[str] = []
    console = args.clients - args.staff_clients
    Client.think_seconds = (args.think / 2, args.think * 1.5)  # the baseline above ran without pauses

    def mixed_client(index, records, lock, deadline):
        client = Client(args.base, records, lock)
        if index < console:
            console_loop(client, args.token, random.Random(index * 7919 + int(time.time())), accepted, lock, deadline)
        else:
            staff_loop(client, args.staff_user, args.staff_password, deadline)

    started = time.time()
    records, elapsed = run(args.clients, args.seconds, mixed_client)
    result = {
        "clients": args.clients, "console_clients": console, "staff_clients": args.staff_clients,
        "think_seconds": args.think,
        "seconds": round(elapsed, 1), "started_at": started,
        "baseline": summarise(baseline_records, baseline_elapsed),
        "endpoints": summarise(records, elapsed),
        "requests": [(label, status, round(at - started, 3)) for label, status, _, at in records if status >= 500 or status == 0],
        "accepted_usage_references": sorted(set(accepted)),
        "console_latencies_ms": {
            "p50": round(percentile([e for l, s, e, _ in records if " /accounts" in l or "/three-ds" in l or "/paypal" in l], 0.5), 1),
            "p95": round(percentile([e for l, s, e, _ in records if " /accounts" in l or "/three-ds" in l or "/paypal" in l], 0.95), 1),
        },
        "total_requests": len(records),
    }
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
