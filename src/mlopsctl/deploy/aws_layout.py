"""The two layouts `deploy aws` writes, and what each holds that AWS bills: one source for the Terraform
texts (``aws_tf_*.py``) and for `mlopsctl cost`, so the estimate prices what the files create.

- ``minimal``: the tasks sit in the public subnets with a public IP each (their security group admits only
  the load balancer), no NAT gateway, no VPC flow logs, Container Insights off, logs kept 7 days, the load
  balancer unprotected so that `terraform destroy` works. Seed 000's $12-a-month shape.
- ``private``: the tasks sit in private subnets behind a NAT gateway, with VPC flow logs, Container Insights
  and a year of logs; the load balancer is protected from deletion.
"""

from __future__ import annotations

from dataclasses import dataclass

LAYOUTS = ("minimal", "private")
# ECS Container Insights (standard) publishes custom metrics: 13 for the cluster, 15 for the service and 10 for
# the task definition family (CPU, memory, network, storage and ephemeral storage used and reserved; task,
# deployment and service counts)
INSIGHTS_METRICS = 13 + 15 + 10
AZ_COUNT = 2  # zones, and so load balancer addresses (variables.tf: az_count)


@dataclass(frozen=True)
class Layout:
    name: str
    nat_gateways: int  # NAT gateways (each with an Elastic IP); 0: the tasks have public IPs
    tasks_public_ip: bool
    container_insights: str  # the cluster setting: "enabled" or "disabled"
    flow_logs: bool  # VPC flow logs to CloudWatch Logs
    log_retention_days: int  # default of [deploy] log_retention_days
    deletion_protection: bool  # default of [deploy] deletion_protection

    @property
    def insights_metrics(self) -> int:
        return INSIGHTS_METRICS if self.container_insights != "disabled" else 0

    def public_ips(self, tasks: int) -> int:
        """Public IPv4 addresses: one per zone for the load balancer, plus the NAT gateways' or one per task."""
        return AZ_COUNT + (self.nat_gateways if not self.tasks_public_ip else tasks)


MINIMAL = Layout("minimal", 0, True, "disabled", False, 7, False)
PRIVATE = Layout("private", 1, False, "enabled", True, 365, True)
BY_NAME = {"minimal": MINIMAL, "private": PRIVATE}


def layout(name: str) -> Layout:
    from mlopsctl.errors import ValidationError

    if name not in BY_NAME:
        raise ValidationError(
            f"--layout {name}: not a layout: use {' or '.join(LAYOUTS)}", [("--layout", "minimal or private")]
        )
    return BY_NAME[name]


# -- the alarms monitoring.tf writes, with the number of metrics each reads (CloudWatch bills each) ---------------


@dataclass(frozen=True)
class AlarmSpec:
    key: str  # the resource name: aws_cloudwatch_metric_alarm.<key>
    suffix: str  # alarm_name = "<name>-<suffix>"
    metrics: int  # metrics the alarm reads (metric math reads several)
    what: str


ALARMS = (
    AlarmSpec("latency", "p95-latency", 1, "p95 latency above the bound"),
    AlarmSpec("errors", "5xx-rate", 2, "5xx answers above a share of requests"),
    AlarmSpec("silence", "no-invocations", 1, "no prediction request for a while"),
    AlarmSpec("drift", "drift-share", 1, "share of drifted features above the bound"),
    AlarmSpec("accuracy", "live-accuracy", 2, "live accuracy below the floor (with enough labels)"),
    AlarmSpec("unhealthy", "unhealthy-hosts", 1, "a task fails the load balancer's /ready check"),
)


def alarms_written(accuracy_floor: float | None) -> list[AlarmSpec]:
    """The alarms of the configuration: the live accuracy one only when a floor is set."""
    return [a for a in ALARMS if a.key != "accuracy" or accuracy_floor is not None]
