"""`celltrail access ...`: organisations, principals, roles and credentials (issue 8, item 1),
the token signing key and the services' event signing keys of a system started by
`celltrail up`, the CLI's own system principal, and the tokens the CLI acts with.

Secrets never pass through argv (where `ps` and shell history would show them): passwords
and API keys are read from a prompt on a terminal, else one line on stdin. An API key is
printed once, when it is made; only its hash is stored. Every change is written with its
row in `access.audit_log`, naming the operating-system user who ran the command.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import secrets
import stat
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import asyncpg

from contracts.access import OrgKind, PrincipalKind, Role
from infra.runtime.access import credentials
from contracts.topology import SERVICES
from infra.runtime.access.principals import Principal
from infra.runtime.access.refusals import PgRefusals
from infra.runtime.access.signing import RecordSigner, format_public_keys, generate_service_key, public_key_of
from infra.runtime.access.store import AccessChangeRefused, PgAccessStore
from infra.runtime.access.http import Unauthenticated
from infra.runtime.access.policy import NETWORK_RESOURCE, Action, decide
from infra.runtime.access.tokens import (IssuedToken, InvalidToken, TokenIssuer, TokenKeyError, TokenVerifier,
                                         generate_signing_key)

TOKEN_KEY_FILE = "token-key.pem"
SERVICE_KEYS_DIR = "service-keys"
MAX_TOKEN_MINUTES = 12 * 60

# The CLI as a system principal (issue 8, item 1): what `celltrail load` (and the demo, the
# bench and the tests' drivers) submit commands as, unless a load line names another.
CLI_PRINCIPAL = "celltrail-cli"
NETWORK_ORG = "CELLTRAIL"  # the network organisation `celltrail up` provisions


class AccessCliError(RuntimeError):
    """Said in one line by the CLI, exit status 1."""


# -- the signing key --------------------------------------------------------------------

def ensure_token_key(home: Path) -> str:
    """The system's token signing key: CELLTRAIL_TOKEN_KEY, else the home's key file, made
    (mode 0600, never overwritten) on first use."""
    if os.environ.get("CELLTRAIL_TOKEN_KEY"):
        return os.environ["CELLTRAIL_TOKEN_KEY"]
    _make_key_file(home / TOKEN_KEY_FILE, generate_signing_key)
    return read_token_key(home)


def _make_key_file(path: Path, generate: Callable[[], str]) -> None:
    """Writes a new key to `path` (mode 0600) unless it exists; never overwrites one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as f:
        f.write(generate() + "\n")


def ensure_service_keys(home: Path) -> dict[str, str]:
    """Each service's event signing key (infra/runtime/access/signing.py), one file per
    service in the home's `service-keys/` (mode 0600), made on first use."""
    keys = {}
    for service in SERVICES:
        (home / SERVICE_KEYS_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
        path = home / SERVICE_KEYS_DIR / f"{service}.key"
        _make_key_file(path, generate_service_key)
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise AccessCliError(f"{path} is readable by others; `chmod 600 {path}`")
        keys[service] = path.read_text().strip()
    return keys


def service_public_keys(keys: dict[str, str]) -> str:
    """CELLTRAIL_SERVICE_PUBLIC_KEYS for the private `keys`."""
    return format_public_keys({service: public_key_of(key) for service, key in keys.items()})


def service_signers(home: Path) -> dict[str, RecordSigner]:
    """Signers as the services: for harnesses that stand in for a service's relay (the
    benchmark produces synthetic events straight onto the event topics)."""
    return {service: RecordSigner(service, key) for service, key in ensure_service_keys(home).items()}


def read_token_key(home: Path) -> str:
    if os.environ.get("CELLTRAIL_TOKEN_KEY"):
        return os.environ["CELLTRAIL_TOKEN_KEY"]
    path = home / TOKEN_KEY_FILE
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise AccessCliError(f"no token signing key: set CELLTRAIL_TOKEN_KEY, or start the system once with "
                             f"`celltrail up` (it makes {path})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AccessCliError(f"{path} is readable by others (mode {stat.S_IMODE(mode):o}); `chmod 600 {path}`")
    return path.read_text()


# -- the CLI's principal and its tokens --------------------------------------------------

# The CLI's roles at the network: data loader (`celltrail load`), administrator (rebuild,
# republish, erasure on request), network operator (status, report and subjects, the latter
# de-identified): every `celltrail` command that calls a service acts as this principal.
CLI_ROLES = (Role.DATA_LOADER, Role.ADMINISTRATOR, Role.NETWORK_OPERATOR)


async def ensure_principal(store: PgAccessStore, principal_id: str, kind: PrincipalKind, printed_name: str,
                           roles: tuple[Role, ...]) -> None:
    """The network organisation and `principal_id` holding `roles` there, made where
    missing (each change recorded in the access audit as usual)."""
    listing = await store.listing()
    if not any(o["org_id"] == NETWORK_ORG for o in listing["organisations"]):
        await store.add_organisation(NETWORK_ORG, OrgKind.NETWORK, "CellTrail network", actor=_actor())
    principal = next((p for p in listing["principals"] if p["principal_id"] == principal_id), None)
    if principal is None:
        await store.add_principal(principal_id, kind, printed_name, actor=_actor())
    for role in roles:
        if principal is None or {"org": NETWORK_ORG, "role": role.value} not in principal["roles"]:
            await store.grant(principal_id, NETWORK_ORG, role, actor=_actor())


async def ensure_cli_principal(store: PgAccessStore) -> None:
    """The CLI's system principal with CLI_ROLES (infra/runtime/access/policy.py), made
    once; `celltrail up`, `demo` and the tests' systems call it."""
    await ensure_principal(store, CLI_PRINCIPAL, PrincipalKind.SYSTEM, "CellTrail CLI", CLI_ROLES)


async def provision_cli(database_url: str) -> None:
    await _with_store(database_url, ensure_cli_principal)


async def issue_token(store: PgAccessStore, issuer: TokenIssuer, principal: Principal, *, how: str) -> IssuedToken:
    """A token for `principal`, whose credential the caller checked; the sign-in is audited."""
    issued = issuer.issue(principal)
    async with store.conn.transaction():
        await store.record_sign_in(principal.principal_id, how=how, token_id=issued.token_id, refused=None)
    return issued


class TokenSource:
    """Tokens the CLI acts with: minted from the home's token signing key (holding it is the
    CLI's credential, as for `celltrail up` itself) for the acting principal, CLI_PRINCIPAL
    by default, each kept until a minute before it expires."""

    def __init__(self, home: Path, database_url: str, *, minutes: int = 60) -> None:
        self.home, self.database_url, self.minutes = home, database_url, minutes
        self._tokens: dict[str, IssuedToken] = {}

    async def token(self, principal_id: str | None = None) -> tuple[str, str]:
        """(principal id, token) of `principal_id`, else of the CLI."""
        principal_id = principal_id or CLI_PRINCIPAL
        issued = self._tokens.get(principal_id)
        if issued is None or issued.expires_at.timestamp() - time.time() < 60:
            issued = self._tokens[principal_id] = await self._mint(principal_id)
        return principal_id, issued.token

    async def _mint(self, principal_id: str) -> IssuedToken:
        try:
            issuer = TokenIssuer(read_token_key(self.home), ttl=timedelta(minutes=self.minutes))
        except TokenKeyError as exc:
            raise AccessCliError(str(exc)) from None

        async def mint(store: PgAccessStore) -> IssuedToken:
            principal = await store.principal(principal_id)
            if principal is None:
                raise AccessCliError(f"principal {principal_id} is unknown or disabled "
                                     f"(`celltrail access principal add`)")
            return await issue_token(store, issuer, principal, how="home_key")

        return await _with_store(self.database_url, mint)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cli_token(tokens: TokenSource) -> str:
    """A token of the CLI's principal from `tokens`, from synchronous code (also code that
    runs inside an event loop: the coroutine runs on a thread of its own)."""
    with ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, tokens.token()).result()[1]


DEMO_ADMIN = "demo.admin"


async def demo_administrator(database_url: str, home: Path) -> tuple[str, IssuedToken]:
    """`celltrail demo`'s administrator, a person (administrator and network operator at the
    network), with a new random password, then signed in as any person signs in
    (`sign_in`). Returns the password and the token."""
    password = secrets.token_urlsafe(12)
    hashed = await asyncio.to_thread(credentials.hash_password, password)

    async def go(store: PgAccessStore) -> IssuedToken:
        await ensure_principal(store, DEMO_ADMIN, PrincipalKind.PERSON, "Demo Administrator",
                               (Role.ADMINISTRATOR, Role.NETWORK_OPERATOR))
        await store.set_password(DEMO_ADMIN, hashed, actor=_actor())
        return await sign_in(store, DEMO_ADMIN, password, TokenIssuer(read_token_key(home)))

    return password, await _with_store(database_url, go)


# -- commands ---------------------------------------------------------------------------

def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid-{os.getuid()}"


def _secret(prompt: str, *, confirm: bool = False) -> str:
    if sys.stdin.isatty():
        value = getpass.getpass(prompt)
        if confirm and getpass.getpass("again: ") != value:
            raise AccessCliError("the two entries differ")
        return value
    line = sys.stdin.readline()
    if not line:
        raise AccessCliError(f"expected the secret on stdin ({prompt.strip()})")
    return line.rstrip("\r\n")


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise AccessCliError(f"unknown role {value!r}; one of {', '.join(r.value for r in Role)}") from None


async def _with_store(database_url: str, fn):
    conn = await asyncpg.connect(database_url)
    try:
        return await fn(PgAccessStore(conn))
    finally:
        await conn.close()


async def org_add(args, store: PgAccessStore) -> None:
    await store.add_organisation(args.id, OrgKind(args.kind), args.name, actor=_actor(), fin=args.fin)
    print(f"organisation {args.id} ({args.kind}) added" + (f", FIN {args.fin}" if args.fin else ""))


async def principal_add(args, store: PgAccessStore) -> None:
    kind = PrincipalKind.SYSTEM if args.system else PrincipalKind.PERSON
    await store.add_principal(args.id, kind, args.name, actor=_actor())
    print(f"{kind} {args.id} added")


async def principal_disable(args, store: PgAccessStore) -> None:
    await store.disable_principal(args.id, actor=_actor())
    print(f"{args.id} disabled: none of its credentials is accepted from now on")


async def grant(args, store: PgAccessStore) -> None:
    await store.grant(args.principal, args.org, _role(args.role), actor=_actor())
    print(f"{args.principal} holds {args.role} at {args.org}")


async def revoke(args, store: PgAccessStore) -> None:
    await store.revoke(args.principal, args.org, _role(args.role), actor=_actor())
    print(f"{args.principal} no longer holds {args.role} at {args.org}")


async def password(args, store: PgAccessStore) -> None:
    secret = _secret(f"password for {args.principal}: ", confirm=True)
    try:
        hashed = await asyncio.to_thread(credentials.hash_password, secret)
    except credentials.WeakPassword as exc:
        raise AccessCliError(str(exc)) from None
    await store.set_password(args.principal, hashed, actor=_actor())
    print(f"password set for {args.principal}")


async def apikey(args, store: PgAccessStore) -> None:
    key = await asyncio.to_thread(credentials.new_api_key)
    await store.add_api_key(args.principal, key.key_id, key.hash, actor=_actor())
    print(key.key)
    print(f"API key {key.key_id} for {args.principal}: shown this once, only its hash is kept; "
          f"send it as the X-API-Key header", file=sys.stderr)


async def key_disable(args, store: PgAccessStore) -> None:
    await store.disable_api_key(args.key_id, actor=_actor())
    print(f"API key {args.key_id} disabled")


async def sign_in(store: PgAccessStore, principal_id: str, secret: str, issuer: TokenIssuer) -> IssuedToken:
    """A token for `principal_id` after its password (a person) or API key (a system); the
    sign-in, or its refusal, goes to the access audit."""
    principal = await store.principal(principal_id)
    how = "api_key" if principal is not None and principal.kind is PrincipalKind.SYSTEM else "password"
    ok = principal is not None and await _check(store, how, principal_id, secret)
    if not ok:
        async with store.conn.transaction():
            await store.record_sign_in(principal_id, how=how, token_id=None,
                                       refused="unknown or disabled principal, or wrong secret")
        raise AccessCliError(f"not signed in: unknown or disabled principal {principal_id}, or wrong {how}")
    return await issue_token(store, issuer, principal, how=how)


async def token(args, store: PgAccessStore, *, home: Path) -> None:
    """Check the principal's password (a person) or API key (a system), read from stdin,
    then print a token."""
    if not 1 <= args.minutes <= MAX_TOKEN_MINUTES:
        raise AccessCliError(f"--minutes must lie in 1..{MAX_TOKEN_MINUTES}")
    try:
        issuer = TokenIssuer(read_token_key(home), ttl=timedelta(minutes=args.minutes))
    except TokenKeyError as exc:
        raise AccessCliError(str(exc)) from None
    principal = await store.principal(args.principal)
    system = principal is not None and principal.kind is PrincipalKind.SYSTEM
    secret = _secret(f"{'API key' if system else 'password'} of {args.principal}: ")
    issued = await sign_in(store, args.principal, secret, issuer)
    print(issued.token)
    print(f"token for {args.principal}, valid until {issued.expires_at:%Y-%m-%d %H:%M:%S} UTC; "
          f"send it as `Authorization: Bearer <token>`", file=sys.stderr)


async def _check(store: PgAccessStore, how: str, principal_id: str, secret: str) -> bool:
    if how == "password":
        stored = await store.password_hash(principal_id)
        return stored is not None and await asyncio.to_thread(credentials.verify_password, stored, secret)
    parsed = credentials.parse_api_key(secret.strip())
    if parsed is None:
        return False
    found = await store.api_key(parsed[0])
    return (found is not None and found[0] == principal_id
            and await asyncio.to_thread(credentials.verify_api_key, found[1], parsed[1]))


async def listing(args, store: PgAccessStore) -> None:
    data = await store.listing()
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return
    print("organisations:")
    for o in data["organisations"]:
        print(f"  {o['org_id']:<16} {o['kind']:<9} {o['name']}")
    print("principals:")
    for p in data["principals"]:
        roles = ", ".join(f"{r['role']}@{r['org']}" for r in p["roles"]) or "no roles"
        state = " (disabled)" if p["disabled"] else ""
        print(f"  {p['principal_id']:<24} {p['kind']:<7} {p['printed_name']}{state}: {roles}")
    print("credentials:")
    for c in data["credentials"]:
        state = " (disabled)" if c["disabled"] else ""
        print(f"  {c['credential_id']:<32} {c['kind']:<8} {c['principal_id']}{state}")


async def refusals(args, store: PgAccessStore) -> None:
    rows = await PgRefusals(store.conn).listing(subject_id=args.subject, principal_id=args.principal,
                                                centre_id=args.centre)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return
    for r in rows:
        who = r["principal_id"] or f"anonymous ({r['credential']})"
        about = " ".join(f"{k} {r[k]}" for k in ("subject_id", "centre_id", "facility_id") if r[k])
        print(f"{r['recorded_at'][:19]}  {who:<20} {r['status']} {r['code']:<16} {r['service']} {r['method']} "
              f"{r['path']}{'  ' + about if about else ''}: {r['reason']}")


async def audit_log(args, store: PgAccessStore) -> None:
    rows = await store.audit()
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return
    for r in rows:
        about = " ".join(x for x in (r["principal_id"], r["org_id"]) if x)
        print(f"{r['recorded_at'][:19]}  {r['actor']:<20} {r['change']:<18} {about} {json.dumps(r['detail'])}")


# -- wiring -----------------------------------------------------------------------------

def add_parser(sub: argparse._SubParsersAction, run: Callable[[argparse.Namespace], int]) -> None:
    p = sub.add_parser("access", help="organisations, principals, roles and credentials")
    acc = p.add_subparsers(dest="access_cmd", required=True)

    org = acc.add_parser("org", help="organisations").add_subparsers(dest="org_cmd", required=True)
    q = org.add_parser("add", help="add a centre, facility or the network")
    q.add_argument("id")
    q.add_argument("--kind", required=True, choices=[k.value for k in OrgKind])
    q.add_argument("--name", required=True)
    q.add_argument("--fin", help="its ISBT 128 facility identification number (one letter, four digits), under "
                                 "which chain-of-identity ids are issued for what it collects (docs/identifiers.md)")
    q.set_defaults(access_fn=org_add)

    pr = acc.add_parser("principal", help="people and systems").add_subparsers(dest="principal_cmd", required=True)
    q = pr.add_parser("add", help="add a person (default) or a system")
    q.add_argument("id")
    q.add_argument("--name", required=True, help="the printed name, as on a signature")
    kind = q.add_mutually_exclusive_group()
    kind.add_argument("--person", action="store_true")
    kind.add_argument("--system", action="store_true")
    q.set_defaults(access_fn=principal_add)
    q = pr.add_parser("disable", help="refuse every credential of a principal from now on")
    q.add_argument("id")
    q.set_defaults(access_fn=principal_disable)

    for name, fn, text in (("grant", grant, "give a principal a role at an organisation"),
                           ("revoke", revoke, "take a role at an organisation away")):
        q = acc.add_parser(name, help=text)
        q.add_argument("principal")
        q.add_argument("org")
        q.add_argument("role", help=", ".join(r.value for r in Role))
        q.set_defaults(access_fn=fn)

    q = acc.add_parser("password", help="set a person's password (read from a prompt or stdin)")
    q.add_argument("principal")
    q.set_defaults(access_fn=password)
    q = acc.add_parser("apikey", help="make an API key for a system; printed once")
    q.add_argument("principal")
    q.set_defaults(access_fn=apikey)
    q = acc.add_parser("disable-key", help="refuse an API key from now on")
    q.add_argument("key_id")
    q.set_defaults(access_fn=key_disable)
    q = acc.add_parser("token", help="a short-lived token, after the password or API key given on stdin")
    q.add_argument("principal")
    q.add_argument("--minutes", type=int, default=15, help=f"lifetime, at most {MAX_TOKEN_MINUTES}")
    q.set_defaults(access_fn=token)
    q = acc.add_parser("list", help="organisations, principals with their roles, credentials (no secrets)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(access_fn=listing)
    q = acc.add_parser("log", help="every change to access, and every sign-in")
    q.add_argument("--json", action="store_true")
    q.set_defaults(access_fn=audit_log)
    q = acc.add_parser("refusals", help="every request a service refused (401, 403, the domain's refusals)")
    q.add_argument("--subject")
    q.add_argument("--principal")
    q.add_argument("--centre")
    q.add_argument("--json", action="store_true")
    q.set_defaults(access_fn=refusals)
    p.set_defaults(fn=run)


def run(args: argparse.Namespace, *, database_url: str, home: Path) -> None:
    async def go(store: PgAccessStore) -> None:
        if args.access_fn is token:
            await token(args, store, home=home)
        else:
            await args.access_fn(args, store)

    try:
        asyncio.run(_with_store(database_url, go))
    except AccessChangeRefused as exc:
        raise AccessCliError(str(exc)) from None


async def authorised(conn: asyncpg.Connection, token: str | None, public_key_pem: str, action: Action,
                     refused: type[Exception], may_not: str) -> Principal:
    """The principal of a bearer `token` shown to a tool (`celltrail audit`, `deadletters
    replay`), if the policy grants it `action` on the network; `refused` (one line) otherwise:
    no token, a key that cannot check tokens, a token refused, an unknown or disabled
    principal, or the policy's refusal, which `may_not` introduces ("may not ...")."""
    if not token:
        raise refused("show a token: --token or CELLTRAIL_TOKEN (`celltrail access token PRINCIPAL`)")
    try:
        verifier = TokenVerifier(public_key_pem)
    except TokenKeyError as exc:
        raise refused(f"cannot check tokens: {exc}") from None
    try:
        claims = verifier.verify(token.strip())
    except InvalidToken as exc:
        raise refused(f"the token is refused: {exc}") from None
    principal = await PgAccessStore(conn).principal(claims.subject)
    if principal is None:
        raise refused(str(Unauthenticated(f"principal {claims.subject} is unknown or disabled")))
    decision = decide(principal, action, NETWORK_RESOURCE)
    if not decision.allowed:
        raise refused(f"{principal.principal_id} may not {may_not}: {decision.reason}")
    return principal
