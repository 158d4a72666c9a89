"""The auth config file (``kfpd server --auth-config FILE``): turns multi-user mode on.

```yaml
authentication:
  api_tokens: true
  trusted_header: {name: kubeflow-userid, prefix: "", groups_header: kubeflow-groups,
                   trusted_proxies: ["127.0.0.1/32"]}
  oidc: {issuer: "https://issuer", audience: kfpd, jwks_uri: "https://issuer/jwks",
         username_claim: email, groups_claim: groups, algorithms: [RS256]}
authorization:
  bindings:
    - {user: alice@example.com, role: editor, namespace: team-a}
    - {group: ml-admins, role: admin, namespace: "*"}
```
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from kfpd.domain.access import Binding, Role


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrustedHeader(_Strict):
    name: str = "kubeflow-userid"
    prefix: str = ""
    groups_header: str = ""  # comma-separated group names, set by the same proxy
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1/32", "::1/128"])

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)  # ValueError: a clear config error
        return value


class Oidc(_Strict):
    issuer: str
    audience: str
    jwks_uri: str
    username_claim: str = "email"
    groups_claim: str = "groups"
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    leeway_s: int = 30  # clock skew allowed on exp/nbf/iat
    jwks_cache_s: int = 300

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        # A shared-secret algorithm would let anyone holding the public JWKS sign tokens.
        bad = [a for a in value if a.upper().startswith("HS") or a.lower() == "none"]
        if bad or not value:
            raise ValueError(f"algorithms must be asymmetric (RS*, PS*, ES*, EdDSA), not {bad}")
        return value


class Authentication(_Strict):
    api_tokens: bool = True
    trusted_header: TrustedHeader | None = None
    oidc: Oidc | None = None


class BindingEntry(_Strict):
    user: str = ""
    group: str = ""
    role: Role
    namespace: str

    def binding(self) -> Binding:
        if bool(self.user) == bool(self.group):
            raise ValueError("a binding names exactly one of user or group")
        return Binding(self.role, self.namespace, self.user, self.group)


class Authorization(_Strict):
    bindings: list[BindingEntry] = Field(default_factory=list)


class AuthConfig(_Strict):
    authentication: Authentication = Field(default_factory=Authentication)
    authorization: Authorization = Field(default_factory=Authorization)

    def bindings(self) -> list[Binding]:
        return [entry.binding() for entry in self.authorization.bindings]


class AuthConfigError(ValueError):
    pass


def load_auth_config(path: Path) -> AuthConfig:
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise AuthConfigError(f"cannot read auth config {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise AuthConfigError(f"auth config {path} is not valid YAML: {exc}") from exc
    try:
        config = AuthConfig.model_validate(raw)
        config.bindings()
    except (ValidationError, ValueError) as exc:
        raise AuthConfigError(f"auth config {path}: {exc}") from exc
    return config
