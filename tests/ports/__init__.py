"""One suite per port, run against every implementation of it (STYLE 13; pyeventsourcing's
tests/persistence.py): each `...Contract` class here is subclassed by the PostgreSQL
adapter's run in tests/integration/test_port_contracts.py and by the fake's run in
tests/unit/services/test_port_contracts.py. A subclass provides the implementation through a
fixture named after the port's dependency (`streams`, `identities`, ...), empty at the start.
"""
