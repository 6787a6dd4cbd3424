"""Query filters of the console API (django-filter)."""

from __future__ import annotations

import django_filters

from payments.models import PaymentMethod


class PaymentMethodFilter(django_filters.FilterSet):
    """``?status=`` and ``?kind=``. Removed methods are history: hidden unless asked for."""

    status = django_filters.ChoiceFilter(choices=PaymentMethod.Status.choices)
    kind = django_filters.ChoiceFilter(choices=PaymentMethod.Kind.choices)

    class Meta:
        model = PaymentMethod
        fields = ["status", "kind"]

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        if not self.form.cleaned_data.get("status"):
            queryset = queryset.exclude(status=PaymentMethod.Status.REMOVED)
        return queryset
