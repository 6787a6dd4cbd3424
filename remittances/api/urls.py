"""Console API endpoints of the remittances app (credit applications, claims)."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
