"""Real servers on loopback for the tests, one module each, started as session fixtures.

Each module finds its binary where ``scripts/infra/install-<name>`` put it
(``~/.cache/cumulo-infra`` or the system's packages) and fails, never skips,
when it is missing: run ``./scripts/test``, which installs them.
"""
