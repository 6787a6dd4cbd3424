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
from decimal import Decimal

FORWARDED = {"X-Forwarded-Proto": "https"}  # TLS ends at the proxy in front (README "Deployment")
CSRF_FIELD = r'name="csrfmiddlewaretoken" value="([^"]+)"'
CLAIM_AMOUNT = "50.00"
SHARED_ACCOUNT = "DE89370400440532013000"  # registered by deploy_check.sh (BIC EXBKDEFFXXX)
UPLOAD_EVERY_SECONDS = 10


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


def multipart(fields: dict, files: dict) -> tuple[bytes, str]:
    """``fields`` and ``files`` ({name: (file name, bytes)}) as a multipart/form-data body."""
    boundary = f"deploycheck{random.randrange(10**12):012d}"
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (file_name, content) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{file_name}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Client:
    think_seconds = (0.0, 0.0)  # a person's pause between two calls (console and staff clients)

    def __init__(self, base: str, records: list, lock: threading.Lock) -> None:
        parsed = urllib.parse.urlparse(base)
        self.host, self.port = parsed.hostname, parsed.port
        self.records, self.lock = records, lock
        self.connection: http.client.HTTPConnection | None = None
        self.cookies: dict[str, str] = {}
        self.last_location = ""

    def request(self, method: str, path: str, label: str, *, body=None, headers=None, form=False, files=None):
        headers = {**FORWARDED, "Host": f"{self.host}:{self.port}", **(headers or {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if files is not None:  # a form with files: multipart/form-data
            data, headers["Content-Type"] = multipart(body or {}, files)
        elif body is not None:
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
            self.last_location = response.getheader("Location", "")
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


def console_loop(client: Client, token: str, rng: random.Random, accepted: list, claims_filed: list,
                 orders_accepted: list, lock, deadline: float) -> None:
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
        for _ in range(2):  # the order sent twice as well: one bill, charged once
            status, _ = client.json("POST", f"/api/v1/accounts/{account_id}/orders/", "POST /accounts/{id}/orders/",
                                    headers=auth, body={"kind": "purchase", "amount": "9.00", "currency": "USD",
                                                        "reference": f"load-order-{account_id}"})
            if status in (200, 201):
                with lock:
                    orders_accepted.append(f"load-order-{account_id}")
        status, _ = client.json("POST", f"/api/v1/accounts/{account_id}/claims/", "POST /accounts/{id}/claims/",
                                headers=auth, body={"amount": CLAIM_AMOUNT, "currency": "USD",
                                                    "value_date": date.today().isoformat(), "payer_name": "Load Co",
                                                    "bank_reference": f"LOADREF{account_id}"})
        if status == 201:  # the customer's transfer will arrive on finance's next statement upload
            with lock:
                claims_filed.append([account_id, f"LOADREF{account_id}"])
        client.json("GET", f"/api/v1/accounts/{account_id}/", "GET /accounts/{id}/", headers=auth)


def admin_login(client: Client, username: str, password: str, deadline: float) -> bool:
    """Log in to the admin (password only: the deploy check turns the second factor off)."""
    while time.time() < deadline:
        status, page = client.request("GET", "/admin/login/", "GET /admin/login/")
        token = re.search(CSRF_FIELD, page)
        if token:
            status, _ = client.request(
                "POST", "/admin/login/?next=/admin/", "POST /admin/login/", form=True,
                body={"csrfmiddlewaretoken": token.group(1), "username": username, "password": password, "next": "/admin/"},
                headers={"Referer": f"https://{client.host}:{client.port}/admin/login/"},
            )
            if status == 302:
                return True
        time.sleep(1)
    return False


def submit(client: Client, path: str, label: str, fields: dict, *, files=None) -> tuple[int | None, str]:
    """GET an admin form page (its CSRF token), then POST it as a browser would. The status is
    None when the form could not be had (the session was lost in a restart, or an error)."""
    status, page = client.request("GET", path, "GET " + label)
    token = re.search(CSRF_FIELD, page)
    if status != 200 or not token:
        return None, page
    return client.request("POST", path, "POST " + label, body={"csrfmiddlewaretoken": token.group(1), **fields},
                          form=files is None, files=files,
                          headers={"Referer": f"https://{client.host}:{client.port}{path}"})


def reader_loop(client: Client, username: str, password: str, deadline: float) -> None:
    """A superuser on the work-queue pages and searches."""
    admin_login(client, username, password, deadline)
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
                admin_login(client, username, password, deadline)
            time.sleep(0.2)


def mt940_statement(number: int, credits: list[str], opening: Decimal) -> tuple[str, bytes, Decimal]:
    """One day's MT940 on the shared receiving account: a CLAIM_AMOUNT credit per reference (the
    customer's reference and the bank's). Returns the statement's reference, bytes and closing."""
    today = date.today()
    yymmdd, mmdd = today.strftime("%y%m%d"), today.strftime("%m%d")
    closing = opening + Decimal(CLAIM_AMOUNT) * len(credits)
    reference = f"LOAD{int(time.time())}{number:04d}"
    lines = [f":61:{yymmdd}{mmdd}C{CLAIM_AMOUNT.replace('.', ',')}NTRF{ref}//{ref}\n:86:?20Claim {ref}?32Load Co"
             for ref in credits]
    body = "\n".join(lines)
    text = (f"{{1:F01EXBKDEFFAXXX0000000000}}{{2:O940180000{yymmdd}EXBKDEFFAXXX0000000000{yymmdd}1800N}}{{4:\n"
            f":20:{reference}\n:25:{SHARED_ACCOUNT}\n:28C:{number:05d}/001\n"
            f":60F:C{yymmdd}USD{str(opening).replace('.', ',')}\n{body}\n"
            f":62F:C{yymmdd}USD{str(closing).replace('.', ',')}\n-}}\n")
    return reference, text.encode(), closing


def uploader_loop(client: Client, username: str, password: str, deadline: float, claims_filed: list,
                  uploads: list, lock) -> None:
    """Finance uploads a statement with the transfers of the claims filed since the last one,
    follows the import job's progress to its summary, and reads the statements list."""
    admin_login(client, username, password, deadline)
    sent, number, balance = 0, 0, Decimal("0.00")
    while time.time() < deadline:
        time.sleep(UPLOAD_EVERY_SECONDS)
        with lock:
            batch = [ref for _, ref in claims_filed[sent:]]
        if not batch:
            continue
        number += 1
        reference, data, closing = mt940_statement(number, batch, balance)
        status, _ = submit(client, "/admin/remittances/bankstatement/upload/", "/admin/statements/upload/",
                           {"format": "auto"}, files={"file": (f"{reference}.sta", data)})
        job = re.search(r"/staffjob/(\d+)/progress/", client.last_location or "") if status == 302 else None
        if status is None:
            admin_login(client, username, password, deadline)
        if job:  # accepted (redirected to its job's progress): the check proves it was imported once
            sent, balance = sent + len(batch), closing
            with lock:
                uploads.append({"reference": reference, "credits": batch, "job": int(job.group(1))})
            for _ in range(30):  # the progress page's poll, until the job is finished
                if time.time() >= deadline:
                    break
                status, text = client.json("GET", f"/admin/billing_backoffice/staffjob/{job.group(1)}/status.json",
                                           "GET /admin/staffjob/{id}/status.json")
                if status == 200 and text.get("finished"):
                    break
                time.sleep(1)
        client.request("GET", "/admin/remittances/bankstatement/", "GET /admin/statements/")


def decider_loop(client: Client, username: str, password: str, deadline: float, *, queue: str, step: str,
                 fields: dict, decided: list, lock) -> None:
    """An account manager reviewing (or finance approving) the claims of their work queue."""
    admin_login(client, username, password, deadline)
    base = "/admin/remittances/remittanceclaim/"
    while time.time() < deadline:
        status, page = client.request("GET", f"{base}?queue={queue}", f"GET /admin/claims/?queue={queue}")
        if status == 302:
            admin_login(client, username, password, deadline)
            continue
        ids = list(dict.fromkeys(re.findall(r"/admin/remittances/remittanceclaim/(\d+)/change/", page)))[:5]
        for claim_id in ids:
            if time.time() >= deadline:
                break
            status, _ = submit(client, f"{base}{claim_id}/{step}/", f"/admin/claims/{{id}}/{step}/", fields)
            if status is None:
                admin_login(client, username, password, deadline)
            elif status == 302 and "/login/" not in client.last_location:
                with lock:
                    decided.append(int(claim_id))
        time.sleep(2)


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

    claims_filed: list = []
    orders_accepted: list = []
    uploads: list = []
    reviewed: list = []
    approved: list = []
    password = args.staff_password
    # The staff clients, in turn: a superuser reading the work queues and searching, finance
    # uploading statements, an account manager reviewing claims, another member of finance
    # approving them (CLM-3: never the one who reviewed).
    staff_roles = [
        lambda client, lock, deadline: reader_loop(client, args.staff_user, password, deadline),
        lambda client, lock, deadline: uploader_loop(client, "finance-upload", password, deadline, claims_filed,
                                                     uploads, lock),
        lambda client, lock, deadline: decider_loop(client, "manager-review", password, deadline, queue="to_review",
                                                    step="review", fields={"note": "Payer and amount match."},
                                                    decided=reviewed, lock=lock),
        lambda client, lock, deadline: decider_loop(client, "finance-approve", password, deadline, queue="to_approve",
                                                    step="approve", fields={"confirm": "on"}, decided=approved,
                                                    lock=lock),
    ]

    def mixed_client(index, records, lock, deadline):
        client = Client(args.base, records, lock)
        if index < console:
            console_loop(client, args.token, random.Random(index * 7919 + int(time.time())), accepted, claims_filed,
                         orders_accepted, lock, deadline)
        else:
            staff_roles[(index - console) % len(staff_roles)](client, lock, deadline)

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
        "claims_filed": claims_filed, "statement_uploads": uploads,
        "accepted_order_references": sorted(set(orders_accepted)),
        "claims_reviewed": sorted(set(reviewed)), "claims_approved": sorted(set(approved)),
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
