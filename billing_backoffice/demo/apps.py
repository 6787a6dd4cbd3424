"""The demo data as an app of its own: ``manage.py seed_demo`` and the builders behind it.

It sits above both apps (it plays stories through the services of ``payments`` and
``remittances``), so neither app imports it; it is for local use and demos only.
"""

from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "billing_backoffice.demo"
    label = "demo"
    verbose_name = "Demo data"
