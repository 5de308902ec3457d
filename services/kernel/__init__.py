"""The kernel shared by every service's domain and application code: the `Streams` port
(`streams`), the one way to rebuild an aggregate from its events (`aggregate`) and the
clinical-date helpers (`clinical_dates`). One way to do each.

Pure: imports only the standard library, pydantic and `contracts` (an import-linter
contract in pyproject.toml keeps it so), so any service may import it from any room.
"""
