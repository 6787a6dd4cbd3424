"""Demo data for ``manage.py seed_demo`` (an app of its own, label ``demo``).

Start at ``seed.py`` (what a run creates and how it stays idempotent); the modules it names
build the accounts, their methods and their billing and remittance history. Kept import-free
here because Django imports an app's package before its models are ready.
"""
