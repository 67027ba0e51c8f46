"""The four ways `mlopsctl cost` prices the service, line by line, from a region's price table.

- ECS Fargate + ALB: what `deploy aws` writes for the layout (``aws_layout.py``): ``minimal`` (tasks in
  public subnets with an address each, no NAT gateway, Container Insights off, logs kept 7 days) or
  ``private`` (tasks in private subnets behind a NAT gateway, Container Insights on, a year of logs), an
  Application Load Balancer in two zones, the server's CloudWatch metrics, alarms, a dashboard and a budget;
- a SageMaker real-time endpoint: one instance per replica, the cheapest that sustains one task;
- SageMaker serverless inference: GB-seconds of request time at the smallest memory size that holds a task;
- EKS: the control plane and a managed node group of the cheapest EC2 type that holds the pods,
  behind the same load balancer and network.

Each adds what all of them pay alike: the server's CloudWatch metrics, the alarms, the dashboard and the
logs, the S3 store (its size and the requests the servers make: capture writes, alias polls), the ECR
image, the KMS key, the SSM pointer and the budget (those two are free, and itemised to say so).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from mlopsctl.deploy.aws_layout import ALARMS, INSIGHTS_METRICS, Layout, alarms_written, layout
from mlopsctl.deploy.cost_prices import Instance, PriceTable

TARGETS = ("aws",)
MONTH_HOURS = 730  # what AWS calls a month when it prorates monthly prices
MAX_HOURS = 744  # 31 days
S3_READS_PER_POLL = 2  # the alias pointer and the deployment of each served model
RETRAIN_MINUTES = 15.0  # an assumption: how long one scheduled retraining task runs
PARQUET_SHRINK = 8.2  # JSON lines of capture per byte of its Parquet (bench/RESULTS.md: 426 MB -> 51.8 MB)
ATHENA_SCANS = 30.0  # an assumption: queries read a month of compacted capture this many times (a daily report)
GLUE_OBJECTS = 3  # athena.tf: the database, the capture table, the feedback table (projection: no partitions)
__all__ = ["ALARMS", "INSIGHTS_METRICS"]


@dataclass
class CostInputs:
    """What the estimate is for, and the assumptions behind the quantities (defaults stated)."""

    target: str = "aws"
    region: str = "us-east-1"
    layout: str = "minimal"  # aws_layout.LAYOUTS: what `deploy aws` writes; the None below follow it
    cpu: float = 0.25
    memory: float = 0.5
    replicas: int = 1
    hours: float = 720
    public_ips: int | None = None  # None: 2 for the ALB + 1 per NAT gateway (or per task without NAT)
    nat_gateways: int | None = None  # None: the layout's (minimal 0, private 1)
    insights_metrics: int | None = None  # None: the layout's (minimal 0: Insights off; private 38)
    metrics: int | None = None  # None: the server's EMF metrics (monitoring/emf.py METRICS)
    alarms: int | None = None  # alarm metrics; None: what monitoring.tf holds (alarms_written)
    accuracy_alarm: bool = False  # [monitoring.alerts] accuracy_min is set: the live accuracy alarm is written
    dashboards: int = 1
    log_gb: float = 1.0
    log_retention_days: int | None = None  # None: the layout's (minimal 7, private 365)
    retrain_schedule: str = ""  # [deploy] retrain_schedule: "" = the scheduled retraining is off
    retrain_runs: float | None = None  # None: from the schedule
    retrain_minutes: float = RETRAIN_MINUTES
    retrain_cpu: float = 1.0  # the task's size in retrain.tf (retrain_cpu 1024, retrain_memory 2048)
    retrain_memory: float = 2.0
    free_tier: bool = False  # take the price table's [free_tier] allowances off (a new account's bill)
    s3_gb: float = 1.0
    image_gb: float = 1.0
    request_kb: float = 1.0
    response_kb: float = 0.5
    capture_kb: float = 0.5
    capture_enabled: bool = True
    capture_sample_rate: float = 1.0
    capture_flush_seconds: float = 5.0
    athena_tb: float | None = None  # None: a month of compacted capture read ATHENA_SCANS times
    reload_seconds: float = 2.0
    prices: str | None = None
    origin: dict[str, str] = field(default_factory=dict)  # where each setting came from, for the output

    @property
    def lay(self) -> Layout:
        return layout(self.layout)

    def resolve(self) -> None:
        """Fill what was left to the layout with what `deploy aws` writes for it."""
        from mlopsctl.monitoring.emf import METRICS

        lay = self.lay
        if self.nat_gateways is None:
            self.nat_gateways = lay.nat_gateways
        if self.insights_metrics is None:
            self.insights_metrics = lay.insights_metrics
        if self.metrics is None:
            self.metrics = len(METRICS)
        if self.alarms is None:
            self.alarms = sum(a.metrics for a in alarms_written(1.0 if self.accuracy_alarm else None))
        if self.log_retention_days is None:
            self.log_retention_days = lay.log_retention_days
        if self.retrain_runs is None:
            self.retrain_runs = runs_per_month(self.retrain_schedule, self.hours) if self.retrain_schedule else 0.0


@dataclass
class Line:
    group: str  # compute, load balancer, network, monitoring, storage, data
    item: str
    quantity: float
    unit: str  # the unit of the quantity and of the price: "vCPU-hour"
    unit_price: float
    price_key: str  # where the price is in the table: "fargate.vcpu_hour"
    source: str = ""  # the page the price is from
    as_of: str = ""  # the date of the price (the --prices file's when it changed this one)

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


def _dated(t: PriceTable, section: str, dotted: str) -> tuple[str, str]:
    """(source, date) of a price: its section's first page, and the table's date or the override's."""
    sources = t.sources().get(section) or [""]
    changed = dotted in t.overridden and t.override_as_of
    return sources[0], str(t.override_as_of if changed else t.as_of)


def _line(t: PriceTable, group: str, item: str, quantity: float, section: str, key: str) -> Line:
    dotted = f"{section}.{key}"
    return Line(group, item, quantity, t.unit(section, key), t.price(section, key), dotted, *_dated(t, section, dotted))


def _instance_line(t: PriceTable, group: str, item: str, quantity: float, section: str, inst: Instance) -> Line:
    dotted = f"{section}.instances.{inst.name}"
    return Line(group, item, quantity, inst.unit, inst.price, dotted, *_dated(t, section, dotted))


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


_DAYS = {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), start=1)}


def _field_count(text: str, size: int, first: int = 0) -> float:
    """How many values a cron field takes in a range of ``size`` starting at ``first`` (an estimate for L, W, #)."""
    total = 0.0
    for part in text.upper().split(","):
        base, _, step = part.partition("/")
        if base in ("*", "?", ""):
            lo, hi = first, first + size - 1
        elif "-" in base:
            a, b = (_DAYS.get(x) or int(x) for x in base.split("-", 1))
            lo, hi = a, b
        else:
            token = base.rstrip("LW").split("#")[0] or str(first)
            lo = hi = _DAYS.get(token) or int(token)
            if step:  # 0/15: from 0 to the end of the range, every 15
                hi = first + size - 1
        total += (hi - lo) // int(step) + 1 if step else hi - lo + 1
    return total


def runs_per_month(expression: str, hours: float) -> float:
    """How often an EventBridge schedule (``rate(7 days)``, ``cron(0 3 ? * MON *)``) fires in ``hours``.

    Exact for rate(); for cron() the product of its fields (a month's share of the days it names)."""
    import re

    m = re.fullmatch(r"rate\((\d+)\s+(minutes?|hours?|days?)\)", expression.strip())
    if m:
        minutes = int(m.group(1)) * {"m": 1, "h": 60, "d": 1440}[m.group(2)[0]]
        return hours * 60 / minutes
    m = re.fullmatch(r"cron\((.+)\)", expression.strip())
    if not m or len(m.group(1).split()) != 6:
        raise ValueError(f"{expression!r}: expected rate(N minutes|hours|days) or cron(min hour dom month dow year)")
    minute, hour, dom, month, dow, _ = m.group(1).split()
    per_day = _field_count(minute, 60) * _field_count(hour, 24)
    days = hours / 24
    if dow not in ("*", "?"):
        days *= _field_count(dow, 7, 1) / 7
    elif dom not in ("*", "?"):
        days *= _field_count(dom, 31, 1) / 30.4
    if month not in ("*", "?"):
        days *= _field_count(month, 12, 1) / 12
    return per_day * days


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
    assert o.metrics is not None and o.alarms is not None and o.log_retention_days is not None  # resolve()
    kept_months = o.log_retention_days * 24 / MONTH_HOURS
    capture_gb = predictions * o.capture_sample_rate * o.capture_kb / 1e6 if o.capture_enabled else 0.0
    seconds = o.hours * 3600
    puts = (
        min(servers * seconds / o.capture_flush_seconds, requests * o.capture_sample_rate) if o.capture_enabled else 0
    )
    gets = servers * seconds / o.reload_seconds * S3_READS_PER_POLL
    return [
        _line(
            t, "monitoring", f"server metrics, CloudWatch EMF ({o.metrics})", o.metrics, "cloudwatch", "metric_month"
        ),
        _line(t, "monitoring", f"CloudWatch alarm metrics ({o.alarms})", o.alarms, "cloudwatch", "alarm_month"),
        _line(t, "monitoring", f"CloudWatch dashboard ({o.dashboards})", o.dashboards, "cloudwatch", "dashboard_month"),
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
        _line(t, "security", "KMS key (store, logs, topic, image)", 1, "kms", "key_month"),
        _line(t, "security", "SSM parameter (the production pointer)", 1, "ssm", "parameter_month"),
        _line(t, "monitoring", "AWS budget (the month's cost)", 1, "budgets", "budget_month"),
    ]


def athena_tb(o: CostInputs, predictions: float) -> tuple[float, str]:
    """TB Athena scans a month, and why: ``--athena-tb``, else a month of compacted capture (its JSON lines
    PARQUET_SHRINK times smaller) read ATHENA_SCANS times."""
    if o.athena_tb is not None:
        return o.athena_tb, "given"
    capture_gb = predictions * o.capture_sample_rate * o.capture_kb / 1e6 if o.capture_enabled else 0.0
    return (
        capture_gb / PARQUET_SHRINK * ATHENA_SCANS / 1000,
        f"a month of compacted capture read {ATHENA_SCANS:g} times",
    )


def _athena_lines(t: PriceTable, o: CostInputs, predictions: float) -> list[Line]:
    """athena.tf: queries over the capture (TB scanned, ``athena_tb``) and the Glue catalog (free under a
    million objects: itemised to say so)."""
    tb, what = athena_tb(o, predictions)
    return [
        _line(t, "data", f"Athena queries ({what})", tb, "athena", "tb_scanned"),
        _line(t, "data", f"Glue Data Catalog ({GLUE_OBJECTS} objects)", GLUE_OBJECTS, "glue", "object_month"),
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
    lines += network + _shared_lines(t, o, requests, predictions, n) + _athena_lines(t, o, predictions)
    notes = [f"{o.layout} layout", f"public IPv4: {why}"]
    if o.retrain_runs:
        runs, task_hours = o.retrain_runs, o.retrain_runs * o.retrain_minutes / 60
        what = f"{runs:.3g} runs × {o.retrain_minutes:g} min"
        lines += [
            _line(t, "compute", f"retraining vCPU ({what})", task_hours * o.retrain_cpu, "fargate", "vcpu_hour"),
            _line(t, "compute", f"retraining memory ({what})", task_hours * o.retrain_memory, "fargate", "gb_hour"),
        ]
        notes.append(f"scheduled retraining: {o.retrain_schedule}, {o.retrain_cpu:g} vCPU / {o.retrain_memory:g} GB")
    return Estimate("fargate", "ECS Fargate + ALB", lines, notes)


def apply_free_tier(t: PriceTable, e: Estimate) -> None:
    """Add, after each price key's last line, a negative line for the allowance ``[free_tier]`` gives it a month
    (never more than what the lines of that key use)."""
    allowances = t.sections.get("free_tier", {})
    used: dict[str, float] = {}
    last: dict[str, int] = {}
    for i, line in enumerate(e.lines):
        if line.price_key in allowances and line.unit_price > 0:
            used[line.price_key] = used.get(line.price_key, 0.0) + line.quantity
            last[line.price_key] = i
    for key in sorted(last, key=last.__getitem__, reverse=True):
        free = min(used[key], t.value("free_tier", key))
        if free <= 0:
            continue
        base = e.lines[last[key]]
        source, as_of = _dated(t, "free_tier", f"free_tier.{key}")
        what = f"free tier: {t.value('free_tier', key):,g} {t.unit('free_tier', key)}"
        e.lines.insert(last[key] + 1, Line(base.group, what, -free, base.unit, base.unit_price, key, source, as_of))
    e.notes.append("free tier taken off: the always-free allowances and the first 12 months' (--free-tier)")


def sagemaker_realtime(t: PriceTable, o: CostInputs, requests: float, predictions: float) -> Estimate:
    title = "SageMaker real-time endpoint"
    inst = pick_sagemaker_instance(t, o.cpu, o.memory)
    if inst is None:
        why = f"no SageMaker instance in the table sustains {o.cpu:g} vCPU with {o.memory:g} GB"
        return Estimate("sagemaker", title, [], [], available=False, reason=why)
    n = o.replicas
    lines = [
        _instance_line(t, "compute", f"{inst.name} instances ({n})", n * o.hours, "sagemaker", inst),
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
    node = _instance_line(t, "compute", f"{inst.name} nodes ({nodes})", nodes * o.hours, "ec2", inst)
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
