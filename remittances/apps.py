from django.apps import AppConfig


class RemittancesConfig(AppConfig):
    name = "remittances"
    verbose_name = "Credit and remittances"
