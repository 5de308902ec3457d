"""Bearer tokens: what verification accepts and what it refuses (RFC 7519, RFC 8725 §2.1
and §3.1: never `alg: none`, never an algorithm the verifier did not choose)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from contracts.access import OrgKind, PrincipalKind, Role
from infra.runtime.access.principals import Membership, Principal
from infra.runtime.access.tokens import (InvalidToken, TokenIssuer, TokenKeyError, TokenVerifier,
                                         generate_signing_key, public_key_pem)

ROSSI = Principal("dr.rossi", PrincipalKind.PERSON, "Maria Rossi", (Membership("CTR-BG", OrgKind.CENTRE,
                                                                                Role.PHYSICIAN),))
KEY = generate_signing_key()
VERIFIER = TokenVerifier(public_key_pem(KEY))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**changes) -> dict:
    now = datetime.now(timezone.utc)
    base = {"sub": "dr.rossi", "iat": now, "nbf": now, "exp": now + timedelta(minutes=5), "jti": "j-1",
            "iss": "celltrail", "aud": "celltrail"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def signed(payload: dict, key: str = KEY) -> str:
    return jwt.encode(payload, serialization.load_pem_private_key(key.encode(), None), algorithm="EdDSA")


class TestRoundTrip:
    def test_a_token_issued_verifies_to_its_principal_and_id(self) -> None:
        issued = TokenIssuer(KEY).issue(ROSSI)
        verified = VERIFIER.verify(issued.token)
        assert (verified.subject, verified.token_id, verified.expires_at) == ("dr.rossi", issued.token_id,
                                                                              issued.expires_at)

    def test_a_token_carries_the_memberships_and_the_audience(self) -> None:
        body = jwt.decode(TokenIssuer(KEY).issue(ROSSI).token, options={"verify_signature": False})
        assert body["orgs"] == [{"org": "CTR-BG", "kind": "centre", "role": "physician"}]
        assert body["aud"] == "celltrail" and body["exp"] - body["iat"] == 15 * 60

    def test_two_tokens_have_different_ids(self) -> None:
        assert TokenIssuer(KEY).issue(ROSSI).token_id != TokenIssuer(KEY).issue(ROSSI).token_id


class TestRefused:
    def test_an_expired_token(self) -> None:
        old = TokenIssuer(KEY, ttl=timedelta(minutes=5)).issue(ROSSI, now=datetime.now(timezone.utc) - timedelta(hours=1))
        with pytest.raises(InvalidToken, match="expired"):
            VERIFIER.verify(old.token)

    def test_a_token_whose_payload_was_changed(self) -> None:
        header, payload, signature = TokenIssuer(KEY).issue(ROSSI).token.split(".")
        body = json.loads(base64.urlsafe_b64decode(payload + "=="))
        body["sub"] = "administrator"
        with pytest.raises(InvalidToken, match="Signature verification failed"):
            VERIFIER.verify(".".join([header, b64(json.dumps(body).encode()), signature]))

    def test_a_token_signed_with_another_key(self) -> None:
        with pytest.raises(InvalidToken, match="Signature verification failed"):
            VERIFIER.verify(signed(claims(), key=generate_signing_key()))

    def test_alg_none(self) -> None:
        unsigned = jwt.encode(claims(), None, algorithm="none")
        with pytest.raises(InvalidToken, match="alg value is not allowed"):
            VERIFIER.verify(unsigned)

    def test_an_hmac_made_with_the_public_key(self) -> None:
        # RFC 8725 §2.1: a verifier that let the token choose HS256 would check it with the
        # public key as the HMAC secret, which anyone has.
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = b64(json.dumps({**claims(), "iat": 1, "nbf": 1, "exp": 4102444800}, default=str).encode())
        mac = hmac.new(public_key_pem(KEY).encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
        with pytest.raises(InvalidToken, match="alg value is not allowed"):
            VERIFIER.verify(f"{header}.{body}.{b64(mac)}")

    def test_another_audience(self) -> None:
        with pytest.raises(InvalidToken, match="(?i)audience"):
            VERIFIER.verify(signed(claims(aud="another-system")))

    def test_another_issuer(self) -> None:
        with pytest.raises(InvalidToken, match="issuer"):
            VERIFIER.verify(signed(claims(iss="someone-else")))

    @pytest.mark.parametrize("missing", ["exp", "jti", "sub", "iat", "aud"])
    def test_a_token_without_a_required_claim(self, missing: str) -> None:
        with pytest.raises(InvalidToken, match=missing):
            VERIFIER.verify(signed(claims(**{missing: None})))

    def test_a_token_not_valid_yet(self) -> None:
        with pytest.raises(InvalidToken, match="not yet valid"):
            VERIFIER.verify(signed(claims(nbf=datetime.now(timezone.utc) + timedelta(hours=1))))

    def test_garbage(self) -> None:
        with pytest.raises(InvalidToken):
            VERIFIER.verify("not.a.token")


class TestKeys:
    def test_the_public_key_cannot_sign(self) -> None:
        with pytest.raises(TokenKeyError, match="not a PEM private key"):
            TokenIssuer(public_key_pem(KEY))

    def test_a_key_of_another_kind_is_refused(self) -> None:
        p256 = ec.generate_private_key(ec.SECP256R1())
        pem = p256.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
        with pytest.raises(TokenKeyError, match="Ed25519"):
            TokenIssuer(pem)
        with pytest.raises(TokenKeyError, match="Ed25519"):
            TokenVerifier(p256.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode())

    def test_every_generated_key_is_new(self) -> None:
        assert generate_signing_key() != generate_signing_key()
