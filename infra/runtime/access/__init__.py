"""Identity and access (issue 8): who a caller is and what it may do.

- `principals`: Principal and Membership, plain data.
- `policy`: the one authorisation policy, pure (a table and the function that reads it).
- `credentials`: password and API-key hashing (argon2id), API-key format.
- `tokens`: signed bearer tokens (JWT, EdDSA).
- `store`: the `access` schema in PostgreSQL (organisations, principals, memberships,
  credentials, and the append-only audit of every change to them).
- `http`: `authenticate(headers)`, the 401/403 responses, the OpenAPI security schemes.
- `refusals`: the record of every request the HTTP edge refused (`access.refusals`).

The edge that applies them to every request is `infra.runtime.edge`.
"""
