"""A copy of an alias in an AWS SSM parameter, for teams whose other tools read the pointer there.

The store stays the truth: the alias moves by compare-and-swap first, then the parameter
is written. Two promotions racing could write the parameter in the other order, so after
writing, the alias is read again and the parameter rewritten until both agree. A failed
write leaves the alias moved and says so; `mlopsctl models mirror NAME` writes it again
(every write is idempotent).

The parameter holds JSON: ``{"model", "alias", "version", "event", "store", "updated_at"}``.
Its name comes from ``[registry] ssm_parameter``, e.g. ``/mlopsctl/{model}/{alias}``.
The SSM endpoint is AWS's unless ``MLOPS_SSM_ENDPOINT_URL`` (or boto3's own
``AWS_ENDPOINT_URL_SSM`` / ``AWS_ENDPOINT_URL``) points elsewhere.
"""

from __future__ import annotations

import json
import os
from typing import Any

from mlopsctl.errors import NotFound, StoreError, ValidationError
from mlopsctl.registry.aliases import get_alias
from mlopsctl.store.base import Store

ENDPOINT_ENVS = ("MLOPS_SSM_ENDPOINT_URL", "AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL")
_ROUNDS = 5  # write, re-read the alias, write again if it moved meanwhile


def parameter_name(pattern: str, model: str, alias: str) -> str:
    """``/mlopsctl/{model}/{alias}`` → ``/mlopsctl/wine/prod``; refuses what SSM would refuse."""
    try:
        name = pattern.format(model=model, alias=alias)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValidationError(
            f"registry.ssm_parameter {pattern!r}: only {{model}} and {{alias}} can be filled in ({exc})",
            [("registry.ssm_parameter", "only {model} and {alias} can be filled in")],
        ) from None
    if not name.startswith("/") or "//" in name or len(name) > 1011:
        raise ValidationError(
            f"registry.ssm_parameter {pattern!r} gives {name!r}: an SSM name is a path such as /mlopsctl/wine/prod",
            [("registry.ssm_parameter", "expected a path such as /mlopsctl/{model}/{alias}")],
        )
    return name


class SsmMirror:
    """Writes the aliases named in ``aliases`` to SSM parameters named by ``pattern``."""

    def __init__(
        self,
        pattern: str,
        aliases: list[str],
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        client: Any = None,
    ) -> None:
        self.pattern, self.aliases = pattern, list(aliases)
        self.region = region
        self.endpoint_url = endpoint_url or next((os.environ[e] for e in ENDPOINT_ENVS if os.environ.get(e)), None)
        self._client_obj = client

    def covers(self, alias: str) -> bool:
        return alias in self.aliases

    def parameter(self, model: str, alias: str) -> str:
        """The SSM parameter that mirrors ``model@alias``."""
        return parameter_name(self.pattern, model, alias)

    def _client(self) -> Any:
        if self._client_obj is None:
            try:
                import boto3
            except ImportError:
                raise StoreError("ssm", "boto3 is not installed: pip install 'mlopsctl[aws]'") from None
            self._client_obj = boto3.session.Session().client(
                "ssm", endpoint_url=self.endpoint_url, region_name=self.region
            )
        return self._client_obj

    def _call(self, op: str, name: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        where = f"ssm parameter {name}"
        try:
            return getattr(self._client(), op)(Name=name, **kwargs)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "ParameterNotFound":
                raise NotFound("ssm parameter", name) from None
            if code in ("AccessDeniedException", "AccessDenied"):
                action = "ssm:PutParameter" if op == "put_parameter" else "ssm:GetParameter"
                raise StoreError(where, f"access denied: {action} (the IAM policy in use must allow it)") from None
            raise StoreError(where, f"{op}: {code}: {exc.response.get('Error', {}).get('Message', exc)}") from None
        except NoCredentialsError:
            raise StoreError(where, "no AWS credentials found (AWS_PROFILE, access keys or a role)") from None
        except BotoCoreError as exc:
            at = f" at {self.endpoint_url}" if self.endpoint_url else ""
            raise StoreError(where, f"{op} failed{at}: {exc}") from None

    def read(self, model: str, alias: str) -> dict[str, Any] | None:
        """What the parameter holds now (None when it does not exist)."""
        name = self.parameter(model, alias)
        try:
            out = self._call("get_parameter", name)
        except NotFound:
            return None
        try:
            value: dict[str, Any] = json.loads(out["Parameter"]["Value"])
        except (ValueError, KeyError, TypeError):
            return {"raw": out.get("Parameter", {}).get("Value")}
        return value

    def sync(self, store: Store, model: str, alias: str) -> dict[str, Any] | None:
        """Make the parameter say what the alias says now. Returns the value written, or None
        when the alias is not mirrored or does not exist."""
        if not self.covers(alias):
            return None
        name = self.parameter(model, alias)
        written: dict[str, Any] | None = None
        for _ in range(_ROUNDS):
            doc = get_alias(store, model, alias)
            if doc is None:
                return None
            if written is not None and (written["version"], written["event"]) == (doc["version"], doc.get("event")):
                return written  # the alias did not move while we wrote
            written = {
                "model": model,
                "alias": alias,
                "version": int(doc["version"]),
                "event": doc.get("event"),
                "store": store.uri,
                "updated_at": doc.get("updated_at"),
            }
            self._call(
                "put_parameter",
                name,
                Value=json.dumps(written, sort_keys=True),
                Type="String",
                Overwrite=True,
                Description=f"mlopsctl: {model}@{alias}, mirrored from the store (the store is the truth)",
            )
        return written


def from_config(cfg: Any) -> SsmMirror | None:
    """The mirror a project's ``[registry]`` asks for (None when ``ssm_parameter`` is empty)."""
    if cfg is None or not cfg.registry.ssm_parameter:
        return None
    parameter_name(cfg.registry.ssm_parameter, "model", "alias")  # a bad pattern fails before anything moves
    return SsmMirror(cfg.registry.ssm_parameter, cfg.registry.ssm_aliases, region=cfg.deploy.region)
