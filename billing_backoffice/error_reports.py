"""Error pages and error reports that never show card data or secrets, DEBUG included (SEC-1).

Django's technical 500 page (DEBUG on) and the reports mailed to ADMINS (DEBUG off) list the
POST data, the local variables of every frame and the exception text. Django's stock filter
only cleans them when DEBUG is off, and only what ``sensitive_variables`` names, so a crashing
card request showed its number and CVV. Here:

- the filter is active in every mode;
- POST values are all hidden (the console sends JSON, the admin's forms are staff input: a
  report needs the field names, never the values);
- a frame variable, or a dict key inside one, named like a card field or a secret is hidden;
- a variable holding the raw request body (``request.body``, the string a JSON parser was
  given) is hidden, whatever its name;
- the rendered page and text pass through the same card-number redaction as the logs, which
  catches what names cannot (a number in an exception message or a query string).
"""

from __future__ import annotations

import re

from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from billing_backoffice.logging import redact_card_numbers

# Django's own list, plus card fields. Matched against setting names, META keys, dict keys and
# frame variable names (search, case-insensitive).
_HIDDEN = re.compile(
    r"API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|CVV|CVC|CSC|PAN$|^number$|card_?number",
    flags=re.IGNORECASE,
)


def _raw_body(request) -> bytes:
    """The body already read by the request, if any; never reads the stream itself."""
    body = getattr(request, "_body", None)
    return body if isinstance(body, bytes) else b""


class CardSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = _HIDDEN

    def is_active(self, request) -> bool:
        return True  # Django turns it off under DEBUG; card data must stay hidden there too

    def get_post_parameters(self, request):
        if request is None:
            return {}
        cleansed = request.POST.copy()
        for key in cleansed:
            cleansed.setlist(key, [self.cleansed_substitute])
        return cleansed

    def get_traceback_frame_variables(self, request, tb_frame):
        body = _raw_body(request)
        body_text = body.decode("utf-8", errors="replace") if body else None
        cleansed = []
        for name, value in super().get_traceback_frame_variables(request, tb_frame):
            if body and isinstance(value, (bytes, str)) and value in (body, body_text):
                value = self.cleansed_substitute
            else:
                value = self.cleanse_setting(name, value)
            cleansed.append((name, value))
        return cleansed

    def cleanse_setting(self, key, value):
        try:
            return super().cleanse_setting(key, value)
        except Exception:  # an odd object in a frame (a dict whose items() raises) must not stop the report
            return value


class CardSafeExceptionReporter(ExceptionReporter):
    """The technical 500 page and the mailed report, with every card number masked."""

    def get_traceback_html(self):
        return redact_card_numbers(super().get_traceback_html())

    def get_traceback_text(self):
        return redact_card_numbers(super().get_traceback_text())
