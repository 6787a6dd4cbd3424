"""Logs: card numbers masked everywhere (SEC-1), identifiers intact, context on every line."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from celery.signals import task_postrun, task_prerun
from stdnum import luhn

from billing_backoffice.log_config import logging_config
from billing_backoffice.logging import REDACTED, RedactCardNumbers, card_numbers_in, redact_card_numbers

PAN = "4242424242424242"
AMEX = "378282246310005"


def luhn_runs(text: str) -> list[str]:
    """Every 13-19 digit run (separators dropped) that passes Luhn: what a leak looks like."""
    found = []
    for run in re.findall(r"\d(?:[\d +-]|%20){11,}\d", text):
        digits = re.sub(r"\D", "", run.replace("%20", " "))
        for size in range(13, 20):
            found += [digits[i : i + size] for i in range(len(digits) - size + 1) if luhn.is_valid(digits[i : i + size])]
    return found


@pytest.fixture
def configured():
    """A logging setup built by the project's own config, writing into a buffer; ``fmt`` picks
    text or json. The real configuration is restored afterwards."""
    from django.conf import settings

    buffers = []

    def configure(fmt: str = "text") -> io.StringIO:
        logging.config.dictConfig(logging_config(log_format=fmt, level="DEBUG"))
        buffer = io.StringIO()
        for handler in logging.getLogger().handlers:
            handler.setStream(buffer)
        logging.getLogger("django.server").handlers[0].setStream(buffer)
        buffers.append(buffer)
        return buffer

    yield configure
    logging.config.dictConfig(settings.LOGGING)


def json_lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


# --- the filter --------------------------------------------------------------------------------


def test_sec_1_exception_text_is_masked_in_text_and_json(configured):
    for fmt in ("text", "json"):
        buffer = configured(fmt)
        try:
            raise ValueError(f"gateway refused card {PAN} (cvv ok)")
        except ValueError:
            logging.getLogger("payments.test").exception("charge failed for %s", AMEX)
        output = buffer.getvalue()
        assert "Traceback" in output and "ValueError" in output  # the traceback is still there
        assert output.count(REDACTED) >= 2
        assert luhn_runs(output) == [], fmt


def test_sec_1_stack_info_is_masked(configured):
    buffer = configured("text")

    def frame_with_card(number=PAN):  # the number appears in the source line of the stack
        logging.getLogger("x").warning("where am I", stack_info=True)

    frame_with_card()
    assert "Stack (most recent call last)" in buffer.getvalue()
    # The stack shows source lines only; what matters is that nothing Luhn-valid is left.
    assert luhn_runs(buffer.getvalue()) == []


def test_sec_1_every_structured_field_is_masked(configured):
    buffer = configured("json")
    logging.getLogger("payments.test").info(
        "linked",
        extra={
            "account_uid": "1234567812345678",  # not Luhn-valid: kept
            "payload": {"number": f"card {PAN}", "numbers": [int(AMEX), "x"], "nested": {"deep": PAN}},
            "card_int": int(PAN),
            "note": SimpleNamespace(text=PAN),  # an object rendered with str()
        },
    )
    (line,) = json_lines(buffer)
    assert luhn_runs(json.dumps(line)) == []
    assert line["payload"]["number"] == f"card {REDACTED}"
    assert line["payload"]["numbers"] == [REDACTED, "x"]
    assert line["card_int"] == REDACTED
    assert line["account_uid"] == "1234567812345678"


def test_sec_1_message_arguments_that_do_not_fit_never_raise(configured):
    buffer = configured("text")
    logging.getLogger("x").info("two %s %s", PAN)  # one argument short
    assert "unformattable" in buffer.getvalue() and luhn_runs(buffer.getvalue()) == []


@pytest.mark.parametrize(
    "identifier",
    [
        "42424242-4242-4242-4242-424242424242",  # an all-digit UUID
        "26a42424-2424-4242-8242-424242424242",  # a Celery task id
        "4242424242424242abcdef0123456789",  # uuid4().hex
        "3ds_4242424242424242a0b1c2d3",  # secrets.token_hex(12) behind a prefix
        "tokenize-42424242-4242-4242-4242-424242424242",
    ],
)
def test_sec_1_uuids_and_hex_ids_are_not_mangled(identifier):
    assert luhn_runs(identifier), "the id must contain a Luhn-valid run for this test to mean anything"
    line = f"Task payments.execute_charge[{identifier}] succeeded in 0.01s: None"
    assert redact_card_numbers(line) == line


def test_sec_1_card_numbers_in_reads_text_as_the_redaction_does():
    """SEC-1: the table scans and the log filter agree: a processor's random hex reference whose
    digits happen to pass Luhn is an identifier; a card number of its own, or grouped as people
    type it, is a card number; ``grouped=False`` (stored data) reads only runs without separators."""
    reference = "tok_insufficient_027883179463580768ab12cd34"
    assert luhn_runs(reference), "the reference must hold a Luhn-valid run for this to mean anything"
    assert card_numbers_in(f"method {reference} linked") == []
    assert card_numbers_in(f"n={PAN}; m={AMEX}") == [PAN, AMEX]
    grouped = f"{PAN[:4]}-{PAN[4:8]}-{PAN[8:12]}-{PAN[12:]}"
    assert card_numbers_in(f"typed {grouped}") == [PAN]
    assert card_numbers_in(f"typed {grouped}", grouped=False) == []
    assert card_numbers_in(f"typed {grouped} and {PAN}", grouped=False) == [PAN]


@pytest.mark.parametrize(
    "text",
    [f"[{PAN}]", f"card={PAN}&x=1", f"/admin/?q={PAN}", f"card{PAN}", f"{PAN[:4]} {PAN[4:8]} {PAN[8:12]} {PAN[12:]}",
     f"{PAN}xyz", f"id {PAN}-", f"?q={PAN[:4]}%20{PAN[4:8]}%20{PAN[8:12]}%20{PAN[12:]}"],
)
def test_sec_1_card_numbers_next_to_punctuation_are_still_masked(text):
    assert luhn_runs(redact_card_numbers(text)) == []


def test_sec_1_a_record_is_redacted_once_for_all_handlers():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "n=%s", (PAN,), None)
    RedactCardNumbers().filter(record)
    RedactCardNumbers().filter(record)
    assert record.getMessage() == f"n={REDACTED}"


# --- access logs -------------------------------------------------------------------------------


def _gunicorn_logger(fmt: str, monkeypatch, conf):
    from gunicorn.config import Config

    from billing_backoffice import gunicorn_logging

    monkeypatch.setattr(gunicorn_logging, "_log_format", lambda: fmt)
    config = Config()
    config.set("accesslog", "-")
    config.set("access_log_format", conf.access_log_format)
    logger = gunicorn_logging.RedactingLogger(config)
    buffer = io.StringIO()
    for handler in logger.access_log.handlers + logger.error_log.handlers:
        if getattr(handler, "_gunicorn", False):  # not pytest's capture handlers
            handler.setStream(buffer)
    return logger, buffer


@pytest.fixture
def gunicorn_conf():
    """gunicorn.conf.py as gunicorn loads it (a file, not a package module)."""
    import runpy
    from pathlib import Path

    return SimpleNamespace(**runpy.run_path(str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py")))


def _access(logger, query: str):
    environ = {
        "REQUEST_METHOD": "GET", "RAW_URI": f"/admin/payments/paymentmethod/?{query}",
        "PATH_INFO": "/admin/payments/paymentmethod/", "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "HTTP_REFERER": f"/admin/?q={PAN}",
    }
    response = SimpleNamespace(status="200 OK", sent=123, headers=[("X-Request-ID", "req-123")])
    request = SimpleNamespace(headers=[("USER-AGENT", "test")])
    logger.access(response, request, environ, timedelta(milliseconds=12))


def test_sec_1_gunicorn_access_log_masks_query_strings(gunicorn_conf, monkeypatch):
    assert gunicorn_conf.logger_class == "billing_backoffice.gunicorn_logging.RedactingLogger"
    logger, buffer = _gunicorn_logger("text", monkeypatch, gunicorn_conf)
    _access(logger, f"q={PAN}")
    line = buffer.getvalue()
    assert "GET /admin/payments/paymentmethod/?q=[REDACTED PAN]" in line
    assert "request_id=req-123" in line and luhn_runs(line) == []


def test_sec_1_gunicorn_access_log_in_json_has_fields(gunicorn_conf, monkeypatch):
    logger, buffer = _gunicorn_logger("json", monkeypatch, gunicorn_conf)
    _access(logger, f"q={PAN[:4]}+{PAN[4:8]}+{PAN[8:12]}+{PAN[12:]}&page=2")
    (line,) = json_lines(buffer)
    assert (line["method"], line["status"], line["request_id"]) == ("GET", 200, "req-123")
    assert line["duration_ms"] == 12.0 and line["logger"] == "gunicorn.access"
    assert luhn_runs(json.dumps(line)) == [] and REDACTED in line["message"]


def test_sec_1_gunicorn_error_log_masks_exceptions(gunicorn_conf, monkeypatch):
    logger, buffer = _gunicorn_logger("text", monkeypatch, gunicorn_conf)
    try:
        raise RuntimeError(f"worker crashed on {PAN}")
    except RuntimeError:
        logger.exception("Error handling request /x?card=%s", PAN)
    assert "RuntimeError" in buffer.getvalue() and luhn_runs(buffer.getvalue()) == []


def test_sec_1_runserver_access_log_masks_query_strings(configured):
    """Django's development server writes its access line on ``django.server``."""
    from django.core.servers.basehttp import WSGIRequestHandler

    buffer = configured("text")
    handler = WSGIRequestHandler.__new__(WSGIRequestHandler)  # no socket: only log_message runs
    handler.request = None
    handler.log_message('"%s" %s %s', f"GET /admin/payments/paymentmethod/?q={PAN} HTTP/1.1", "200", "512")
    line = buffer.getvalue()
    assert "django.server" in line and "?q=[REDACTED PAN]" in line and luhn_runs(line) == []


def test_sec_1_django_loggers_have_no_unfiltered_handler_even_in_debug():
    """Django's default LOGGING prints ``django`` records to a console handler of its own when
    DEBUG is on; the project's config removes it, so every record goes through the filter."""
    config = logging_config(log_format="text", level="INFO")
    logging.config.dictConfig(config)
    try:
        for name in ("django", "django.request", "django.server", "django.db.backends"):
            logger = logging.getLogger(name)
            while logger is not None:
                for handler in logger.handlers:
                    assert any(isinstance(f, RedactCardNumbers) for f in handler.filters), (name, handler)
                logger = logger.parent if logger.propagate else None
    finally:
        from django.conf import settings

        logging.config.dictConfig(settings.LOGGING)


# --- context -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_request_id_is_echoed_and_logged_with_the_api_client(configured, client):
    from rest_framework.authtoken.models import Token

    from tests.factories import UserFactory

    user = UserFactory(username="api-console", is_staff=False)
    token = Token.objects.create(user=user)
    buffer = configured("json")
    response = client.get("/api/v1/accounts/999999999/", HTTP_AUTHORIZATION=f"Token {token.key}",
                          HTTP_X_REQUEST_ID="console-abc.1")
    assert response.status_code == 404 and response["X-Request-ID"] == "console-abc.1"
    (line,) = [entry for entry in json_lines(buffer) if entry["logger"] == "billing.request"]
    assert line["request_id"] == "console-abc.1" and line["user"] == "api:api-console"
    assert line["status"] == 404 and line["path"] == "/api/v1/accounts/999999999/" and line["duration_ms"] >= 0


@pytest.mark.django_db
def test_request_id_from_the_caller_is_replaced_when_it_is_not_a_plain_token(client):
    response = client.get("/admin/login/", HTTP_X_REQUEST_ID=f"x y\n{PAN}")
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


def test_celery_task_id_and_name_are_on_lines_logged_by_the_task(configured):
    buffer = configured("text")
    task = type("ReleaseDueHolds", (), {"name": "payments.release_due_holds"})()
    task_prerun.send(sender=task, task_id="0f0e-task-1", task=task, args=(), kwargs={})
    logging.getLogger("payments.tasks").info("released %s holds", 3)
    task_postrun.send(sender=task, task_id="0f0e-task-1", task=task, args=(), kwargs={}, retval=3, state="SUCCESS")
    logging.getLogger("payments.tasks").info("after the task")
    first, second = buffer.getvalue().splitlines()
    assert "[task_name=payments.release_due_holds task_id=0f0e-task-1]: released 3 holds" in first
    assert "task_id" not in second


def test_celery_result_line_keeps_the_result_at_the_end_and_gains_a_duration(configured):
    buffer = configured("json")
    logging.getLogger("celery.app.trace").info(
        "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s",
        {"name": "payments.settle_account", "id": "26a42424-2424-4242-8242-424242424242",
         "runtime": 0.25, "return_value": "3"},
    )
    (line,) = json_lines(buffer)
    assert line["message"].endswith("[26a42424-2424-4242-8242-424242424242] succeeded in 0.25s: 3")
    assert line["duration_ms"] == 250.0


def test_log_format_must_be_known():
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logging_config(log_format="xml", level="INFO")
