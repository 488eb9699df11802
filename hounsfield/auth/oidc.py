"""OpenID Connect bearer tokens: a JWT checked against the issuer's keys (JWKS URL or file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt

from hounsfield.auth.policy import ROLES, Principal, parse_partitions
from hounsfield.errors import Forbidden, Unauthenticated
from hounsfield.settings import Settings


def looks_like_jwt(token: str) -> bool:
    """Whether a bearer token has a JWT's shape (three dot-separated parts)."""
    return token.count(".") == 2


class OidcVerifier:
    """Checks bearer JWTs of one issuer: signature, issuer, audience, expiry; maps claims."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._jwks = jwt.PyJWKClient(settings.oidc_jwks_url) if settings.oidc_jwks_url else None
        self._key = _read_key(settings.oidc_key_file) if settings.oidc_key_file else None

    @property
    def enabled(self) -> bool:
        """Whether an issuer and its keys are configured."""
        return bool(self.settings.oidc_issuer) and (self._jwks or self._key) is not None

    def verify(self, token: str) -> Principal:
        """The caller a valid token names; Unauthenticated for a bad one, Forbidden for one
        without a known role."""
        if not self.enabled:
            raise Unauthenticated("OpenID Connect tokens are not accepted by this node")
        claims = self._claims(token)
        role = _role(claims.get(self.settings.oidc_role_claim))
        if role is None:
            raise Forbidden("the token names no role of this archive")
        parts = parse_partitions(claims.get(self.settings.oidc_partitions_claim, "*"))
        name = str(claims.get("preferred_username") or claims.get("sub") or "oidc")
        return Principal(name, role, parts, via="oidc")

    def _claims(self, token: str) -> dict[str, Any]:
        settings = self.settings
        try:
            key: Any = self._key
            if self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
            return jwt.decode(
                token,
                key,
                algorithms=settings.oidc_algorithms,
                audience=settings.oidc_audience,
                issuer=settings.oidc_issuer,
                leeway=settings.oidc_leeway_seconds,
                options={"require": ["exp", "iss"], "verify_aud": bool(settings.oidc_audience)},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"bearer token refused: {exc}") from exc


def _read_key(path: Path) -> str:
    return path.read_text()


def _role(value: object) -> str | None:
    """The most capable known role in a claim holding one role or a list of them."""
    found = [value] if isinstance(value, str) else list(value) if isinstance(value, list) else []
    return next((r for r in ROLES if r in found), None)
