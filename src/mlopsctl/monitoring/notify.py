"""Where alert notifications go: standard output, a JSON (or Slack-style) webhook, AWS SNS.

A notifier gets one `Event` per state change (an alert started firing, or resolved) and
raises `NotifyError` when it could not deliver; `monitor check` reports that and tries
again on its next run. `notifiers(cfg)` builds the ones `[monitoring.notify]` asks for.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import IO, Any, Protocol

from mlopsctl.config import NotifySection
from mlopsctl.errors import MlopsError

WEBHOOK_ENV = "MLOPS_WEBHOOK_URL"


class NotifyError(MlopsError):
    def __init__(self, notifier: str, problem: str) -> None:
        self.notifier, self.problem = notifier, problem
        super().__init__(f"notify {notifier}: {problem}")


@dataclass
class Event:
    """One alert changing state: ``status`` is ``firing`` or ``resolved``."""

    status: str
    model: str
    rule: str
    alert: str
    severity: str
    summary: str
    value: float | None
    threshold: float | None
    active_since: float | None
    at: float = field(default_factory=time.time)

    def line(self) -> str:
        return f"[{self.status.upper()}] {self.alert} {self.model}: {self.summary}"

    def payload(self) -> dict[str, Any]:
        def iso(t: float | None) -> str | None:
            return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

        return {
            **asdict(self),
            "at": iso(self.at),
            "active_since": iso(self.active_since),
            "text": self.line(),
            "source": "mlopsctl",
        }


class Notifier(Protocol):
    name: str

    def send(self, event: Event) -> None: ...


class StdoutNotifier:
    """One line per event."""

    name = "stdout"

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def send(self, event: Event) -> None:
        out = self.stream or sys.stdout
        out.write(event.line() + "\n")
        out.flush()


class WebhookNotifier:
    """POST the event as JSON; ``slack`` format posts ``{"text": ...}`` (Slack, Mattermost, Teams-compatible)."""

    name = "webhook"

    def __init__(self, url: str, fmt: str = "json", timeout: float = 5.0) -> None:
        self.url, self.fmt, self.timeout = url, fmt, timeout

    def send(self, event: Event) -> None:
        import httpx

        body = {"text": event.line()} if self.fmt == "slack" else event.payload()
        try:
            r = httpx.post(self.url, json=body, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise NotifyError(self.name, f"{self.url}: {type(exc).__name__}: {exc}") from None
        if r.status_code >= 300:
            raise NotifyError(self.name, f"{self.url}: HTTP {r.status_code} {r.text[:200]}")


class SnsNotifier:
    """Publish to an SNS topic (boto3, from the [aws] extra; credentials and endpoint the usual AWS way)."""

    name = "sns"

    def __init__(self, topic_arn: str, timeout: float = 5.0) -> None:
        self.topic_arn, self.timeout = topic_arn, timeout
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            try:
                import boto3
                from botocore.config import Config as BotoConfig
            except ImportError:
                raise NotifyError(
                    self.name, "boto3 is not installed: pip install 'mlopsctl[aws]' to notify through SNS"
                ) from None
            parts = self.topic_arn.split(":")
            region = parts[3] if len(parts) > 5 and parts[3] else None
            cfg = BotoConfig(connect_timeout=self.timeout, read_timeout=self.timeout, retries={"max_attempts": 2})
            self._client = boto3.client("sns", region_name=region, config=cfg)
        return self._client

    def send(self, event: Event) -> None:
        client = self.client()
        try:
            client.publish(
                TopicArn=self.topic_arn,
                Subject=event.line()[:100],  # SNS: at most 100 characters
                Message=json.dumps(event.payload()),
                MessageAttributes={
                    "status": {"DataType": "String", "StringValue": event.status},
                    "model": {"DataType": "String", "StringValue": event.model},
                },
            )
        except Exception as exc:  # botocore's errors (no credentials, endpoint, denied) all end here
            raise NotifyError(self.name, f"{self.topic_arn}: {type(exc).__name__}: {exc}") from None


def notifiers(cfg: NotifySection, stream: IO[str] | None = None) -> list[Notifier]:
    """The notifiers `[monitoring.notify]` turns on; ``MLOPS_WEBHOOK_URL`` overrides ``webhook_url``."""
    out: list[Notifier] = []
    if cfg.stdout:
        out.append(StdoutNotifier(stream))
    url = os.environ.get(WEBHOOK_ENV) or cfg.webhook_url
    if url:
        out.append(WebhookNotifier(url, cfg.webhook_format, cfg.timeout_seconds))
    if cfg.sns_topic_arn:
        out.append(SnsNotifier(cfg.sns_topic_arn, cfg.timeout_seconds))
    return out
