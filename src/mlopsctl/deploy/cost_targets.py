"""The four ways `mlopsctl cost` prices the service, line by line, from a region's price table.

- ECS Fargate + ALB: what `deploy aws` writes (tasks in private subnets behind a NAT gateway, an
  Application Load Balancer in two zones, Container Insights on);
- a SageMaker real-time endpoint: one instance per replica, the cheapest that sustains one task;
- SageMaker serverless inference: GB-seconds of request time at the smallest memory size that holds a task;
- EKS: the control plane and a managed node group of the cheapest EC2 type that holds the pods,
  behind the same load balancer and network.

Each adds what all of them pay alike: CloudWatch logs and alarms, the S3 store (its size and the
requests the servers make: capture writes, alias polls), the ECR image and the KMS key.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from mlopsctl.deploy.cost_prices import Instance, PriceTable

TARGETS = ("aws",)
MONTH_HOURS = 730  # what AWS calls a month when it prorates monthly prices
MAX_HOURS = 744  # 31 days
ALARMS = "5xx rate, p95 latency, unhealthy hosts"  # the alarms `deploy aws` writes
S3_READS_PER_POLL = 2  # the alias pointer and the deployment of each served model
# ECS Container Insights (standard), which `deploy aws` turns on, publishes custom metrics: 13 for the
# cluster, 15 for the service and 10 for the task definition family (CPU, memory, network, storage and
# ephemeral storage used and reserved; task, deployment and service counts)
INSIGHTS_METRICS = 13 + 15 + 10


@dataclass
class CostInputs:
    """What the estimate is for, and the assumptions behind the quantities (defaults stated)."""

    target: str = "aws"
    region: str = "us-east-1"
    cpu: float = 0.25
    memory: float = 0.5
    replicas: int = 1
    hours: float = 720
    public_ips: int | None = None  # None: 2 for the ALB + 1 per NAT gateway (or per task without NAT)
    nat_gateways: int = 1  # `deploy aws`: tasks in private subnets behind one NAT gateway
    insights_metrics: int = INSIGHTS_METRICS
    metrics: int = 0
    alarms: int = 3
    log_gb: float = 1.0
    log_retention_days: int = 365
    s3_gb: float = 1.0
    image_gb: float = 1.0
    request_kb: float = 1.0
    response_kb: float = 0.5
    capture_kb: float = 0.5
    capture_enabled: bool = True
    capture_sample_rate: float = 1.0
    capture_flush_seconds: float = 5.0
    reload_seconds: float = 2.0
    prices: str | None = None
    origin: dict[str, str] = field(default_factory=dict)  # where each setting came from, for the output


@dataclass
class Line:
    group: str  # compute, load balancer, network, monitoring, storage, data
    item: str
    quantity: float
    unit: str  # the unit of the quantity and of the price: "vCPU-hour"
    unit_price: float
    price_key: str  # where the price is in the table: "fargate.vcpu_hour"

    @property
    def monthly(self) -> float:
        return self.quantity * self.unit_price

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "monthly": self.monthly}


@dataclass
class Estimate:
    name: str
    title: str
    lines: list[Line]
    notes: list[str]
    available: bool = True
    reason: str = ""

    @property
    def total(self) -> float:
        return math.fsum(line.monthly for line in self.lines)

    def subtotals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for line in self.lines:
            out[line.group] = out.get(line.group, 0.0) + line.monthly
        return out


def _months(hours: float) -> float:
    return hours / MONTH_HOURS


def _line(t: PriceTable, group: str, item: str, quantity: float, section: str, key: str) -> Line:
    return Line(group, item, quantity, t.unit(section, key), t.price(section, key), f"{section}.{key}")


def _instance_line(group: str, item: str, quantity: float, section: str, inst: Instance) -> Line:
    return Line(group, item, quantity, inst.unit, inst.price, f"{section}.instances.{inst.name}")


def _fits(i: Instance, cpu: float, memory: float) -> bool:
    return i.sustained_vcpu >= cpu - 1e-9 and i.memory_gb >= memory - 1e-9


def pick_sagemaker_instance(t: PriceTable, cpu: float, memory: float) -> Instance | None:
    """The cheapest real-time instance whose sustained CPU and memory cover one task."""
    fits = [i for i in t.instances("sagemaker") if _fits(i, cpu, memory)]
    return min(fits, key=lambda i: (i.price, i.name), default=None)


def pick_eks_nodes(t: PriceTable, cpu: float, memory: float, replicas: int) -> tuple[Instance, int, int] | None:
    """(instance type, pods per node, nodes): the cheapest node group that holds ``replicas`` pods."""
    reserved_cpu, reserved_gb = t.value("eks", "node_reserved_vcpu"), t.value("eks", "node_reserved_gb")
    best: tuple[float, int, str, Instance, int, int] | None = None
    for i in t.instances("ec2"):
        usable_cpu = min(i.vcpu - reserved_cpu, i.sustained_vcpu)
        per_node = math.floor(min(usable_cpu / cpu, (i.memory_gb - reserved_gb) / memory) + 1e-9)
        if per_node < 1:
            continue
        nodes = math.ceil(replicas / per_node)
        key = (nodes * i.price, nodes, i.name, i, per_node, nodes)
        if best is None or key[:3] < best[:3]:
            best = key
    return None if best is None else best[3:]


def public_ips(o: CostInputs, computes: int, what: str = "task") -> tuple[int, str]:
    """(addresses, why) of the layout: 2 for the ALB, plus 1 per NAT gateway, or 1 per task or node without one."""
    if o.nat_gateways:
        return 2 + o.nat_gateways, f"2 for the ALB in two AZs + 1 per NAT gateway ({what}s in private subnets)"
    return 2 + computes, f"2 for the ALB in two AZs + 1 per {what} (in public subnets, no NAT gateway)"


def _alb_lines(t: PriceTable, o: CostInputs, requests: float) -> list[Line]:
    rps = requests / (o.hours * 3600)
    gb_per_hour = rps * 3600 * (o.request_kb + o.response_kb) / 1e6
    lcu = max(rps / t.value("alb", "lcu_new_connections"), gb_per_hour / t.value("alb", "lcu_processed_gb"))
    return [
        _line(t, "load balancer", "ALB hours", o.hours, "alb", "hour"),
        _line(t, "load balancer", f"ALB capacity units ({lcu:.4g} LCU)", lcu * o.hours, "alb", "lcu_hour"),
    ]


def _network_lines(
    t: PriceTable, o: CostInputs, computes: int, what: str, given_ips: int | None = None
) -> tuple[list[Line], str]:
    """Public IPv4 addresses (``given_ips``, else the layout's) and NAT gateways; and why that many addresses."""
    ips, why = (given_ips, "--public-ips") if given_ips is not None else public_ips(o, computes, what)
    lines = [_line(t, "network", f"public IPv4 addresses ({ips})", ips * o.hours, "public_ipv4", "hour")]
    if o.nat_gateways:
        n = o.nat_gateways
        lines.append(_line(t, "network", f"NAT gateways ({n})", n * o.hours, "nat_gateway", "hour"))
        # what leaves the private subnets through it: the logs (the store has a free S3 gateway endpoint)
        lines.append(_line(t, "network", "NAT data processed (logs)", o.log_gb, "nat_gateway", "gb"))
    return lines, why


def _shared_lines(t: PriceTable, o: CostInputs, requests: float, predictions: float, servers: int) -> list[Line]:
    """What every way of running it pays alike: CloudWatch, the S3 store the servers use, the ECR image."""
    kept_months = o.log_retention_days * 24 / MONTH_HOURS
    capture_gb = predictions * o.capture_sample_rate * o.capture_kb / 1e6 if o.capture_enabled else 0.0
    seconds = o.hours * 3600
    puts = (
        min(servers * seconds / o.capture_flush_seconds, requests * o.capture_sample_rate) if o.capture_enabled else 0
    )
    gets = servers * seconds / o.reload_seconds * S3_READS_PER_POLL
    return [
        _line(t, "monitoring", f"CloudWatch custom metrics ({o.metrics})", o.metrics, "cloudwatch", "metric_month"),
        _line(t, "monitoring", f"CloudWatch alarms ({o.alarms})", o.alarms, "cloudwatch", "alarm_month"),
        _line(t, "monitoring", "CloudWatch logs ingested", o.log_gb, "cloudwatch", "logs_ingest_gb"),
        _line(
            t,
            "monitoring",
            f"CloudWatch logs stored ({o.log_retention_days} days kept, steady state)",
            o.log_gb * kept_months,
            "cloudwatch",
            "logs_storage_gb_month",
        ),
        _line(
            t, "storage", "S3 store (models, data, a month of capture)", o.s3_gb + capture_gb, "s3", "storage_gb_month"
        ),
        _line(t, "storage", "S3 writes (capture batches)", puts / 1000, "s3", "put_1000"),
        _line(t, "storage", "S3 reads (alias and deployment polls)", gets / 1000, "s3", "get_1000"),
        _line(t, "storage", "ECR image storage", o.image_gb, "ecr", "storage_gb_month"),
        _line(t, "storage", "KMS key (store, logs, image)", 1, "kms", "key_month"),
    ]


def fargate(t: PriceTable, o: CostInputs, requests: float, predictions: float) -> Estimate:
    n, h = o.replicas, o.hours
    lines = [
        _line(t, "compute", f"Fargate vCPU ({n} × {o.cpu:g} vCPU)", n * o.cpu * h, "fargate", "vcpu_hour"),
        _line(t, "compute", f"Fargate memory ({n} × {o.memory:g} GB)", n * o.memory * h, "fargate", "gb_hour"),
        *_alb_lines(t, o, requests),
    ]
    if o.insights_metrics:
        lines.append(
            _line(
                t,
                "monitoring",
                f"Container Insights metrics ({o.insights_metrics})",
                o.insights_metrics,
                "cloudwatch",
                "metric_month",
            )
        )
    network, why = _network_lines(t, o, n, "task", o.public_ips)
    lines += network + _shared_lines(t, o, requests, predictions, n)
    return Estimate("fargate", "ECS Fargate + ALB", lines, [f"public IPv4: {why}"])


def sagemaker_realtime(t: PriceTable, o: CostInputs, requests: float, predictions: float) -> Estimate:
    title = "SageMaker real-time endpoint"
    inst = pick_sagemaker_instance(t, o.cpu, o.memory)
    if inst is None:
        why = f"no SageMaker instance in the table sustains {o.cpu:g} vCPU with {o.memory:g} GB"
        return Estimate("sagemaker", title, [], [], available=False, reason=why)
    n = o.replicas
    lines = [
        _instance_line("compute", f"{inst.name} instances ({n})", n * o.hours, "sagemaker", inst),
        _line(t, "data", "data processed in", requests * o.request_kb / 1e6, "sagemaker", "data_in_gb"),
        _line(t, "data", "data processed out", requests * o.response_kb / 1e6, "sagemaker", "data_out_gb"),
        *_shared_lines(t, o, requests, predictions, n),
    ]
    note = (
        f"{inst.describe()}: the cheapest SageMaker instance in the table that sustains one "
        f"{o.cpu:g} vCPU / {o.memory:g} GB task; one per replica. No load balancer or public IP: "
        "the endpoint is AWS's own HTTPS endpoint"
    )
    return Estimate("sagemaker", title, lines, [note])


def sagemaker_serverless(
    t: PriceTable, o: CostInputs, requests: float, predictions: float, duration: float
) -> Estimate:
    title = "SageMaker serverless inference"
    lo, hi = t.value("sagemaker_serverless", "memory_gb_min"), t.value("sagemaker_serverless", "memory_gb_max")
    step = t.value("sagemaker_serverless", "memory_gb_step")
    if o.memory > hi:
        why = f"serverless inference offers {lo:g}–{hi:g} GB; this service needs {o.memory:g} GB"
        return Estimate("serverless", title, [], [], available=False, reason=why)
    mem = max(lo, math.ceil(o.memory / step - 1e-9) * step)
    gb_seconds = requests * duration * mem
    lines = [
        _line(
            t,
            "compute",
            f"compute ({mem:g} GB × {duration * 1000:.4g} ms per request)",
            gb_seconds,
            "sagemaker_serverless",
            "gb_second",
        ),
        _line(t, "data", "data processed in", requests * o.request_kb / 1e6, "sagemaker_serverless", "data_in_gb"),
        _line(t, "data", "data processed out", requests * o.response_kb / 1e6, "sagemaker_serverless", "data_out_gb"),
        *_shared_lines(t, o, requests, predictions, o.replicas),
    ]
    note = (
        f"memory size {mem:g} GB (the smallest offered that holds {o.memory:g} GB); billed for request time only: "
        "no charge while idle, a cold start after it; provisioned concurrency not priced"
    )
    return Estimate("serverless", title, lines, [note])


def eks(t: PriceTable, o: CostInputs, requests: float, predictions: float) -> Estimate:
    title = "EKS (EC2 nodes) + ALB"
    pick = pick_eks_nodes(t, o.cpu, o.memory, o.replicas)
    if pick is None:
        why = f"no EC2 instance in the table holds a {o.cpu:g} vCPU / {o.memory:g} GB pod"
        return Estimate("eks", title, [], [], available=False, reason=why)
    inst, per_node, nodes = pick
    node = _instance_line("compute", f"{inst.name} nodes ({nodes})", nodes * o.hours, "ec2", inst)
    disk = t.value("eks", "node_disk_gb")
    lines = [
        _line(t, "compute", "EKS control plane", o.hours, "eks", "cluster_hour"),
        node,
        _line(
            t,
            "storage",
            f"EBS node volumes ({nodes} × {disk:g} GB)",
            nodes * disk * _months(o.hours),
            "ec2",
            "ebs_gp3_gb_month",
        ),
        *_alb_lines(t, o, requests),
    ]
    network, why = _network_lines(t, o, nodes, "node")
    lines += network + _shared_lines(t, o, requests, predictions, o.replicas)
    note = (
        f"a managed node group of {inst.describe()}: {per_node} pod(s) per node after "
        f"{t.value('eks', 'node_reserved_vcpu'):g} vCPU / {t.value('eks', 'node_reserved_gb'):g} GB kept for the "
        f"kubelet and system pods; the cheapest in the table for {o.replicas} pod(s). Public IPv4: {why}"
    )
    return Estimate("eks", title, lines, [note])
