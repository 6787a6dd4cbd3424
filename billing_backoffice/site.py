"""The staff admin site (``admin.site``): the second factor and lockout of ``staff_login``
(SEC-3), and today's billing figures on its index page.

A composition module: it reads the apps' figures (``dashboard.py``, which queries ``payments``),
so it sits above the apps; ``staff_login`` below them imports none of them. Installed as the
default site by ``apps.StaffAdminConfig`` (named there as a string, loaded once the models are
ready), so every ``@admin.register`` uses it.
"""

from __future__ import annotations

from django.utils import timezone

from billing_backoffice.dashboard import billing_dashboard
from billing_backoffice.index_charts import index_charts
from billing_backoffice.queue_board import queue_board
from billing_backoffice.staff_login import SecondFactorAdminSite


class BillingAdminSite(SecondFactorAdminSite):
    # The app list stays on the index and in the header's links; as a sidebar it would take
    # 300 px of every list, which then no longer fits 1440 px (issue 10, "Screens that fit").
    enable_nav_sidebar = False

    def index(self, request, extra_context=None):
        """The app list with the role's work queues and today's billing figures above it
        (``templates/admin/index.html``).

        ``billing_dashboard`` is None for staff who may see none of the figures (no query is
        made for a hidden figure).
        """
        now = timezone.now()  # one clock for every figure (the lists read theirs at request time)
        context = {
            "work_queues": queue_board(user=request.user, now=now),
            "billing_dashboard": billing_dashboard(user=request.user, now=now),
            "charts": index_charts(user=request.user, now=now),
        }
        return super().index(request, extra_context={**context, **(extra_context or {})})
