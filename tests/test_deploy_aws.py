"""`mlopsctl deploy aws`: the Terraform it writes, in both layouts (minimal and private), is formatted,
parses, holds what the issues ask for with the project's values, passes checkov with every skip said
and fired, and the command refuses what it should.

Terraform's AWS provider cannot be downloaded here, so no `terraform init`/`validate`: the files
are checked with `terraform fmt -check`, parsed with python-hcl2 and scanned with checkov.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import hcl2
import pytest

from mlopsctl.config import parse_config
from mlopsctl.deploy.aws import FILE_NAMES, values_from_config
from tests.conftest import run_cli

DOCS = Path(__file__).resolve().parents[1] / "docs" / "deploy-aws.md"

PROJECT = """
[project]
name = "Wine_API"
[data]
path = "wine.csv"
target = "quality"
[deploy]
region = "eu-west-1"
cpu = 1
memory = 3
min_replicas = 2
max_replicas = 6
cpu_target_percent = 55
requests_per_target = 700
log_retention_days = 400
alarm_email = "ops@example.com"
container_port = 9000
[monitoring.alerts]
error_rate = 0.02
error_for = "4m"
latency_p95_ms = 250
latency_for = "10m"
"""

LAYOUTS = ("minimal", "private")
ISSUE_RESOURCES = {
    "aws_ecr_repository",
    "aws_ecs_cluster",
    "aws_ecs_task_definition",
    "aws_ecs_service",
    "aws_lb",
    "aws_lb_target_group",
    "aws_lb_listener",
    "aws_appautoscaling_target",
    "aws_appautoscaling_policy",
    "aws_s3_bucket",
    "aws_s3_bucket_versioning",
    "aws_s3_bucket_server_side_encryption_configuration",
    "aws_s3_bucket_public_access_block",
    "aws_s3_bucket_lifecycle_configuration",
    "aws_s3_bucket_policy",
    "aws_ssm_parameter",
    "aws_iam_role",
    "aws_iam_role_policy",
    "aws_cloudwatch_log_group",
    "aws_cloudwatch_metric_alarm",
    "aws_sns_topic",
    "aws_sns_topic_subscription",
    "aws_sns_topic_policy",
    "aws_cloudwatch_dashboard",
    "aws_budgets_budget",
    "aws_cloudwatch_event_rule",
    "aws_cloudwatch_event_target",
}
WORKFLOW_OUTPUTS = {"aws_region", "ecr_repository_url", "ecs_cluster_name", "ecs_service_name", "store_uri"}
WORKFLOW_OUTPUTS |= {"github_actions_role_arn", "github_plan_role_arn", "url", "bucket", "container_name"}
SKIP = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


# -- helpers -------------------------------------------------------------------------------------


def load_hcl(text: str) -> dict[str, Any]:
    """python-hcl2 with plain strings (8.x keeps quotes unless told; older versions strip them)."""
    try:
        from hcl2.utils import SerializationOptions

        opts = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
        return hcl2.loads(text, serialization_options=opts)
    except ImportError:
        return hcl2.loads(text)


class Tf:
    """Every block of a folder of .tf files, by kind, type and name."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.blocks: dict[str, dict[str, dict[str, Any]]] = {"resource": {}, "data": {}}
        self.variables: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.locals: dict[str, Any] = {}
        for path in sorted(folder.glob("*.tf")):
            doc = load_hcl(path.read_text())
            for kind in ("resource", "data"):
                for entry in doc.get(kind, []):
                    for rtype, named in entry.items():
                        for name, body in named.items():
                            self.blocks[kind][f"{rtype}.{name}"] = body
            for entry in doc.get("variable", []):
                self.variables.update(entry)
            for entry in doc.get("output", []):
                self.outputs.update(entry)
            for entry in doc.get("locals", []):
                self.locals.update(entry)

    def resource(self, address: str) -> dict[str, Any]:
        return self.blocks["resource"][address]

    def data(self, address: str) -> dict[str, Any]:
        return self.blocks["data"][address]

    def types(self) -> set[str]:
        return {a.split(".")[0] for a in self.blocks["resource"]}

    def of_type(self, rtype: str) -> dict[str, dict[str, Any]]:
        return {a.split(".", 1)[1]: b for a, b in self.blocks["resource"].items() if a.startswith(rtype + ".")}


def one(block: dict[str, Any], key: str) -> dict[str, Any]:
    """A nested block that appears once (python-hcl2 gives every block as a list)."""
    value = block[key]
    assert isinstance(value, list) and len(value) == 1, (key, value)
    return value[0]


def statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["statement"]


def default(tf: Tf, name: str) -> Any:
    return tf.variables[name]["default"]


def container(tf: Tf) -> dict[str, Any]:
    """The container definition, parsed: jsonencode's argument is HCL too."""
    text = tf.resource("aws_ecs_task_definition.this")["container_definitions"]
    assert text.startswith("${jsonencode(") and text.endswith(")}")
    (definition,) = load_hcl("x = " + text[len("${jsonencode(") : -2])["x"]
    return definition


def checkov_binary() -> str | None:
    found = os.environ.get("MLOPS_CHECKOV") or shutil.which("checkov")
    return found if found and Path(found).exists() else None


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=LAYOUTS)
def written(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The project's Terraform: minimal from the default, private from --layout."""
    proj = tmp_path_factory.mktemp(request.param)
    (proj / "mlops.toml").write_text(PROJECT)
    flags = ["--layout", "private"] if request.param == "private" else []
    result = json.loads(run_cli("deploy", "aws", *flags, "--json", cwd=proj).stdout)
    assert result["layout"] == request.param
    return proj, result


@pytest.fixture(scope="module")
def out(written: tuple[Path, dict[str, Any]]) -> Path:
    proj, result = written
    assert Path(result["out"]) == Path("deploy/aws")
    return proj / "deploy" / "aws"


@pytest.fixture(scope="module")
def layout(written: tuple[Path, dict[str, Any]]) -> str:
    return str(written[1]["layout"])


@pytest.fixture(scope="module")
def tf(out: Path) -> Tf:
    return Tf(out)


def run_checkov(folder: Path) -> dict[str, Any]:
    binary = checkov_binary()
    if binary is None:
        pytest.skip("checkov is not installed: `make checkov` puts it in .venv-checkov (set MLOPS_CHECKOV)")
    proc = subprocess.run(
        [binary, "-d", str(folder), "--framework", "terraform", "--compact", "-o", "json", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(proc.stdout)
    report = report[0] if isinstance(report, list) else report
    assert report["check_type"] == "terraform", proc.stderr[-2000:]
    return dict(report)


@pytest.fixture(scope="module")
def checkov(out: Path) -> dict[str, Any]:
    return run_checkov(out)


# -- the files -----------------------------------------------------------------------------------


def test_writes_one_file_per_concern_with_the_project_values(written: tuple[Path, dict[str, Any]], out: Path) -> None:
    _, result = written
    assert sorted(p.name for p in out.iterdir()) == sorted(FILE_NAMES)
    for name in ("versions.tf", "variables.tf", "network.tf", "ecr.tf", "ecs.tf", "alb.tf", "autoscaling.tf"):
        assert name in FILE_NAMES
    for name in ("s3.tf", "ssm.tf", "iam.tf", "monitoring.tf", "dashboard.tf", "budget.tf", "retrain.tf", "outputs.tf"):
        assert name in FILE_NAMES
    assert result["service"] == "wine-api"  # [project] name, made a resource name
    v = result["variables"]
    assert (v["cpu"], v["memory"]) == (1024, 3072)  # 1 vCPU, 3 GB as Fargate units
    assert (v["min_replicas"], v["max_replicas"], v["container_port"]) == (2, 6, 9000)
    assert v["image_tag"] is None  # required: no default


def test_terraform_fmt_check_passes(out: Path, tmp_path: Path) -> None:
    if shutil.which("terraform") is None:
        pytest.skip("terraform is not on PATH")
    proc = subprocess.run(["terraform", "fmt", "-check", "-recursive", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    example = tmp_path / "example.tfvars"  # fmt only reads .tf and .tfvars
    example.write_text((out / "terraform.tfvars.example").read_text())
    proc = subprocess.run(["terraform", "fmt", "-check", str(example)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_versions_pin_terraform_and_the_aws_provider(tf: Tf, out: Path) -> None:
    doc = load_hcl((out / "versions.tf").read_text())
    (terraform,) = doc["terraform"]
    assert terraform["required_version"].startswith(">= 1.")
    (providers,) = terraform["required_providers"]
    assert providers["aws"]["source"] == "hashicorp/aws"
    assert re.fullmatch(r"~> 5\.\d+", providers["aws"]["version"])


def test_variables_default_to_the_project_and_validate(tf: Tf, layout: str) -> None:
    expected = {
        "name": "wine-api",
        "region": "eu-west-1",
        "model_name": "Wine_API",
        "model_alias": "prod",
        "cpu": 1024,
        "memory": 3072,
        "min_replicas": 2,
        "max_replicas": 6,
        "cpu_target_percent": 55,
        "requests_per_target": 700,
        "log_retention_days": 400,
        "alarm_email": "ops@example.com",
        "container_port": 9000,
        "alarm_5xx_rate_percent": 2,
        "alarm_5xx_minutes": 4,
        "alarm_p95_latency_ms": 250,
        "alarm_latency_minutes": 10,
        "pointer_parameter_name": "/mlopsctl/wine-api/Wine_API/prod",
        "metrics_namespace": "mlopsctl",
        "alarm_no_invocations_minutes": 30,  # [monitoring.alerts] silence_for
        "alarm_drift_share": 0.3,
        "retrain_schedule_enabled": False,  # off: [deploy] retrain_schedule is not set
        "retrain_schedule": "rate(7 days)",
        "retrain_trigger": "schedule",
        "force_destroy": False,
        # what the layout turns on and off
        "deletion_protection": layout == "private",
        "container_insights": "enabled" if layout == "private" else "disabled",
    }
    assert {k: default(tf, k) for k in expected} == expected
    assert ("nat_gateway_per_az" in tf.variables) == (layout == "private")
    assert "alarm_accuracy_min" not in tf.variables  # no floor in [monitoring.alerts]: no accuracy alarm
    # the budget: the estimate of `mlopsctl cost` for the same settings, + 25 %, rounded up to $5
    report = json.loads(
        run_cli("cost", "--layout", layout, "--region", "us-east-1", "--json", cwd=Path(tf.folder).parents[1]).stdout
    )
    total = report["estimates"][0]["total"]
    assert default(tf, "monthly_budget_usd") == 5 * math.ceil(total * 1.25 / 5) >= total * 1.25
    assert "default" not in tf.variables["image_tag"]
    for name in ("name", "region", "cpu", "log_retention_days", "min_replicas", "container_user", "store_prefix"):
        assert tf.variables[name].get("validation"), f"variable {name} has no validation"
    assert "400" in tf.variables["log_retention_days"]["validation"][0]["condition"]
    # the memory/cpu pair is checked against Fargate's sizes before anything is created
    (pre,) = one(tf.resource("aws_ecs_task_definition.this"), "lifecycle")["precondition"]
    assert "local.fargate_memory" in pre["condition"]
    assert tf.locals["fargate_memory"]["1024"] == "${range(2048, 8193, 1024)}"
    assert tf.locals["fargate_memory"]["256"] == [512, 1024, 2048]


def test_every_resource_the_issue_lists_and_the_workflow_outputs(tf: Tf) -> None:
    assert tf.types() >= ISSUE_RESOURCES
    assert set(tf.outputs) >= WORKFLOW_OUTPUTS
    assert tf.outputs["url"]["value"].endswith("://${aws_lb.this.dns_name}")
    assert tf.outputs["bucket"]["value"] == "${aws_s3_bucket.store.bucket}"


def test_the_task_runs_the_server_read_only_as_non_root(tf: Tf, layout: str) -> None:
    task = tf.resource("aws_ecs_task_definition.this")
    assert (task["cpu"], task["memory"]) == ("${var.cpu}", "${var.memory}")
    assert task["requires_compatibilities"] == ["FARGATE"] and task["network_mode"] == "awsvpc"
    assert task["execution_role_arn"] != task["task_role_arn"]
    c = container(tf)
    assert c["command"] == [
        "mlopsctl", "serve", "--host", "0.0.0.0", "--port", "${tostring(var.container_port)}",
        "--model", "${var.model_name}@${var.model_alias}",
    ]  # fmt: skip
    assert c["image"] == "${aws_ecr_repository.this.repository_url}:${var.image_tag}"
    env = {e["name"]: e["value"] for e in c["environment"]}
    assert env["MLOPS_STORE"] == "${local.store_uri}"
    # the server writes its metrics as EMF lines where the alarms read them (tests/test_emf.py runs that)
    assert env["MLOPS_CLOUDWATCH"] == "1" and env["MLOPS_CLOUDWATCH_NAMESPACE"] == "${var.metrics_namespace}"
    assert env["MLOPS_CLOUDWATCH_SERVICE"] == "${var.name}"
    assert tf.locals["store_uri"] == "s3://${local.bucket}/${local.store_prefix}"
    assert c["readonlyRootFilesystem"] is True and c["user"] == "${var.container_user}"
    assert c["mountPoints"] == [{"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}]
    assert one(task, "volume")["name"] == "tmp"
    assert c["linuxParameters"]["capabilities"]["drop"] == ["ALL"]
    assert c["logConfiguration"]["logDriver"] == "awslogs"
    assert c["logConfiguration"]["options"]["awslogs-group"] == "${aws_cloudwatch_log_group.service.name}"
    assert default(tf, "container_user") == "10001:10001"
    service = tf.resource("aws_ecs_service.this")
    assert one(service, "deployment_circuit_breaker") == {"enable": True, "rollback": True}


def test_the_layout_decides_where_the_tasks_sit(tf: Tf, layout: str) -> None:
    """minimal: public subnets, a public IP per task, no NAT gateway, no flow logs; private: the opposite.
    In both the tasks' security group admits the load balancer only, on the server port."""
    net = one(tf.resource("aws_ecs_service.this"), "network_configuration")
    private = layout == "private"
    assert net["assign_public_ip"] is (not private)
    assert net["subnets"] == ("${aws_subnet.private[*].id}" if private else "${aws_subnet.public[*].id}")
    for rtype in ("aws_nat_gateway", "aws_eip", "aws_flow_log"):
        assert bool(tf.of_type(rtype)) is private, rtype
    assert ("aws_subnet.private" in tf.blocks["resource"]) is private
    assert tf.resource("aws_vpc_endpoint.s3")["route_table_ids"] == (
        "${aws_route_table.private[*].id}" if private else ["${aws_route_table.public.id}"]
    )
    ingress = {
        name: rule
        for name, rule in tf.of_type("aws_vpc_security_group_ingress_rule").items()
        if rule["security_group_id"] == "${aws_security_group.service.id}"
    }
    assert list(ingress) == ["service_from_alb"]
    assert ingress["service_from_alb"]["referenced_security_group_id"] == "${aws_security_group.alb.id}"
    # the retraining task runs where the service runs, and admits nothing
    target = one(one(tf.resource("aws_cloudwatch_event_target.retrain"), "ecs_target"), "network_configuration")
    assert (target["subnets"], target["assign_public_ip"]) == (net["subnets"], net["assign_public_ip"])
    assert not [r for r in tf.of_type("aws_vpc_security_group_ingress_rule").values() if "retrain" in str(r)]


def test_the_layout_and_its_defaults_come_from_the_config(tmp_path: Path) -> None:
    """[deploy] layout picks it, --layout wins; retention and deletion protection follow the layout unless set."""
    base = PROJECT.split("[deploy]")[0] + '[deploy]\nregion = "us-east-1"\n'
    cases = [
        ("", [], "minimal", 7, False),
        ('layout = "private"\n', [], "private", 365, True),
        ('layout = "private"\n', ["--layout", "minimal"], "minimal", 7, False),
        ("log_retention_days = 30\ndeletion_protection = true\n", [], "minimal", 30, True),
    ]
    for i, (extra, flags, layout, days, protected) in enumerate(cases):
        proj = tmp_path / f"p{i}"
        proj.mkdir()
        (proj / "mlops.toml").write_text(base + extra)
        result = json.loads(run_cli("deploy", "aws", *flags, "--json", cwd=proj).stdout)
        v = result["variables"]
        assert (result["layout"], v["log_retention_days"], v["deletion_protection"]) == (layout, days, protected), i
        skips = {m.group(1) for m in SKIP.finditer((proj / "deploy/aws/ecs.tf").read_text())}
        skips |= {m.group(1) for m in SKIP.finditer((proj / "deploy/aws/alb.tf").read_text())}
        assert ("CKV_AWS_338" in skips) is (days < 365) and ("CKV_AWS_150" in skips) is (not protected)
    bad = run_cli("deploy", "aws", "-m", "wine", "--layout", "cheap", "-o", "x", cwd=tmp_path, check=False)
    assert bad.returncode == 1 and bad.stderr.strip() == "error: --layout cheap: not a layout: use minimal or private"
    assert not (tmp_path / "x").exists()


class _Ready(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/ready" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def ready_server() -> Iterator[tuple[ThreadingHTTPServer, type[_Ready]]]:
    handler = type("Handler", (_Ready,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, handler
    server.shutdown()


def test_the_container_health_check_asks_ready_without_curl(
    tf: Tf, ready_server: tuple[ThreadingHTTPServer, type[_Ready]]
) -> None:
    server, handler = ready_server
    check = container(tf)["healthCheck"]
    assert check["command"][:3] == ["CMD", "python", "-c"] and check["startPeriod"] >= 30
    assert tf.locals["ready_url"] == "http://127.0.0.1:${var.container_port}/ready"
    url = f"http://127.0.0.1:{server.server_address[1]}/ready"
    code = check["command"][3].replace("${local.ready_url}", url)
    run = [sys.executable, "-c", code]
    assert subprocess.run(run, capture_output=True, timeout=30).returncode == 0
    handler.status = 503  # /ready before the model is loaded
    assert subprocess.run(run, capture_output=True, timeout=30).returncode != 0


def test_load_balancer_checks_ready_and_drops_invalid_headers(tf: Tf) -> None:
    lb = tf.resource("aws_lb.this")
    assert lb["drop_invalid_header_fields"] is True
    assert lb["enable_deletion_protection"] == "${var.deletion_protection}"
    assert lb["subnets"] == "${aws_subnet.public[*].id}"
    tg = tf.resource("aws_lb_target_group.this")
    health = one(tg, "health_check")
    assert (health["path"], health["matcher"]) == ("/ready", "200")
    assert tg["target_type"] == "ip" and tg["deregistration_delay"] == 30
    https = tf.resource("aws_lb_listener.https")
    assert https["count"] == "${local.https ? 1 : 0}" and https["ssl_policy"].startswith("ELBSecurityPolicy-TLS13")
    http = one(tf.resource("aws_lb_listener.http"), "default_action")
    assert http["type"] == '${local.https ? "redirect" : "forward"}'
    assert tf.locals["https"] == '${var.certificate_arn != ""}'
    # the tasks take traffic from the load balancer only
    rule = tf.resource("aws_vpc_security_group_ingress_rule.service_from_alb")
    assert rule["referenced_security_group_id"] == "${aws_security_group.alb.id}"
    assert rule["from_port"] == rule["to_port"] == "${var.container_port}"


def test_autoscaling_tracks_cpu_and_requests_per_target(tf: Tf) -> None:
    target = tf.resource("aws_appautoscaling_target.this")
    assert (target["min_capacity"], target["max_capacity"]) == ("${var.min_replicas}", "${var.max_replicas}")
    assert target["scalable_dimension"] == "ecs:service:DesiredCount"
    policies = tf.of_type("aws_appautoscaling_policy")
    assert len(policies) == 2
    tracked = {}
    for p in policies.values():
        assert p["policy_type"] == "TargetTrackingScaling"
        conf = one(p, "target_tracking_scaling_policy_configuration")
        spec = one(conf, "predefined_metric_specification")
        tracked[spec["predefined_metric_type"]] = (conf["target_value"], spec.get("resource_label"))
    assert tracked == {
        "ECSServiceAverageCPUUtilization": ("${var.cpu_target_percent}", None),
        "ALBRequestCountPerTarget": (
            "${var.requests_per_target}",
            "${aws_lb.this.arn_suffix}/${aws_lb_target_group.this.arn_suffix}",
        ),
    }


def test_the_store_bucket_is_versioned_encrypted_private_and_tls_only(tf: Tf) -> None:
    versioning = one(tf.resource("aws_s3_bucket_versioning.store"), "versioning_configuration")
    assert versioning["status"] == "Enabled"
    rule = one(tf.resource("aws_s3_bucket_server_side_encryption_configuration.store"), "rule")
    sse = one(rule, "apply_server_side_encryption_by_default")
    assert sse["sse_algorithm"] == "aws:kms" and sse["kms_master_key_id"] == "${aws_kms_key.this.arn}"
    assert rule["bucket_key_enabled"] is True
    pab = tf.resource("aws_s3_bucket_public_access_block.store")
    flags = ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
    assert all(pab[f] is True for f in flags)
    (tls, tls12) = statements(tf.data("aws_iam_policy_document.store_bucket"))
    assert tls["effect"] == "Deny" and one(tls, "condition")["variable"] == "aws:SecureTransport"
    assert one(tls, "condition")["values"] == ["false"] and tls12["effect"] == "Deny"
    rules = {r["id"]: r for r in tf.resource("aws_s3_bucket_lifecycle_configuration.store")["rule"]}
    capture = rules["expire-captured-predictions"]
    assert one(capture, "filter")["prefix"] == "${local.store_prefix}/capture/"
    assert one(capture, "expiration")["days"] == "${max(var.capture_expiration_days, 1)}"
    assert "noncurrent_version_expiration" in rules["expire-noncurrent-versions"]
    assert tf.resource("aws_kms_key.this")["enable_key_rotation"] is True


def test_the_production_pointer_parameter_is_left_to_mlopsctl(tf: Tf) -> None:
    param = tf.resource("aws_ssm_parameter.pointer")
    assert param["name"] == "${var.pointer_parameter_name}" and param["type"] == "String"
    assert "value" in one(param, "lifecycle")["ignore_changes"]


def _allows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in statements(doc) if s.get("effect", "Allow") == "Allow"]


def test_the_task_role_reads_the_store_and_writes_only_what_a_server_writes(tf: Tf) -> None:
    task = tf.data("aws_iam_policy_document.task")
    guard = tf.data("aws_iam_policy_document.task_guard")
    arn = "${aws_s3_bucket.store.arn}/${local.store_prefix}/"
    allowed_put = {arn + "capture/*", arn + "feedback/*"}
    guard_put = {arn + "deployments/*", arn + "experiments/*", arn + "models/*/history/*"}
    seen_put: set[str] = set()
    for s in _allows(task) + _allows(guard):
        assert all(a != "*" and not a.endswith(":*") for a in s["actions"]), s
        if "s3:PutObject" in s["actions"]:
            seen_put |= set(s["resources"])
        if s in _allows(guard):
            # the guard's writes are conditional: create-only or replace-what-was-read
            (cond,) = s["condition"]
            assert cond["test"] == "Null" and cond["variable"] in ("s3:if-none-match", "s3:if-match")
            assert cond["values"] == ["false"]
    assert seen_put == allowed_put | guard_put
    assert not any("/versions/" in r or "/aliases/" in r for r in seen_put)
    by_sid = {s["sid"]: s for s in statements(task)}
    listing = by_sid["ListTheStorePrefix"]
    assert listing["actions"] == ["s3:ListBucket"]
    assert one(listing, "condition")["values"] == ["${local.store_prefix}/*"]
    assert by_sid["ReadTheStore"]["resources"] == [arn + "*"] and by_sid["ReadTheStore"]["actions"] == ["s3:GetObject"]
    deny = by_sid["NeverTheRegistry"]
    assert deny["effect"] == "Deny" and {arn + "models/*/versions/*", arn + "models/*/aliases/*"} <= set(
        deny["resources"]
    )
    assert one(by_sid["TheStoreKeyThroughS3"], "condition")["variable"] == "kms:ViaService"
    # the guard's writes hang on one documented switch, on by default
    assert tf.resource("aws_iam_role_policy.task_guard")["count"] == "${var.canary_guard_writes ? 1 : 0}"
    assert default(tf, "canary_guard_writes") is True
    # no policy anywhere allows every action; only the key policy names "*" as a resource (the key)
    for address, body in tf.blocks["data"].items():
        if address.startswith("aws_iam_policy_document."):
            for s in _allows(body):
                assert "*" not in s["actions"] and "s3:*" not in s["actions"], address
                if s.get("resources") == ["*"] and address != "aws_iam_policy_document.kms":
                    assert set(s["actions"]) <= {
                        "ecr:GetAuthorizationToken",
                        "ecs:DescribeTaskDefinition",
                        "ecs:RegisterTaskDefinition",
                    }, (address, s)


def test_the_execution_role_only_pulls_the_image_and_writes_logs(tf: Tf) -> None:
    execution = {s["sid"]: s for s in statements(tf.data("aws_iam_policy_document.execution"))}
    assert execution["PullTheServerImage"]["resources"] == ["${aws_ecr_repository.this.arn}"]
    assert execution["WriteTheServiceLogs"]["resources"] == ["${aws_cloudwatch_log_group.service.arn}:*"]
    assert set(execution) == {"EcrLogin", "PullTheServerImage", "WriteTheServiceLogs"}
    # the GitHub role is trusted for the named repository's subjects only
    (trust,) = statements(tf.data("aws_iam_policy_document.github_assume"))
    conditions = {c["variable"]: c for c in trust["condition"]}
    sub = conditions["token.actions.githubusercontent.com:sub"]
    assert sub["test"] == "StringEquals" and "repo:${var.github_repository}:${s}" in sub["values"]
    assert default(tf, "github_repository") == "" and default(tf, "github_subjects") == ["ref:refs/heads/main"]


def test_alarms_dashboard_and_budget_notify_the_topic(tf: Tf, layout: str) -> None:
    """The seeds' alarms on the server's own metrics (p95 latency, 5xx rate, no invocations, drift share), the
    load balancer's unhealthy hosts, a dashboard of all of it and a monthly budget, all to the SNS topic."""
    from mlopsctl.monitoring.emf import METRICS

    for group in tf.of_type("aws_cloudwatch_log_group").values():
        assert group["retention_in_days"] == "${var.log_retention_days}"
        assert group["kms_key_id"] == "${aws_kms_key.this.arn}"
    alarms = tf.of_type("aws_cloudwatch_metric_alarm")
    assert set(alarms) == {"latency", "errors", "silence", "drift", "unhealthy"}
    topic = ["${aws_sns_topic.alarms.arn}"]
    for alarm in alarms.values():
        assert alarm["alarm_actions"] == topic and alarm["ok_actions"] == topic
    latency = alarms["latency"]
    assert (latency["metric_name"], latency["statistic"], latency["threshold"]) == (
        "LatencyP95",
        "Maximum",
        "${var.alarm_p95_latency_ms}",
    )  # milliseconds, as the server reports it
    queries = {q["id"]: q for q in alarms["errors"]["metric_query"]}
    assert queries["rate"]["expression"] == "IF(requests > 0, 100 * errors / requests, 0)"
    assert {k: one(q, "metric")["metric_name"] for k, q in queries.items() if "metric" in q} == {
        "errors": "Errors5xx",
        "requests": "Requests",
    }
    silence = alarms["silence"]
    assert (silence["metric_name"], silence["statistic"], silence["comparison_operator"]) == (
        "Requests",
        "Sum",
        "LessThanThreshold",
    )
    assert silence["treat_missing_data"] == "breaching"  # a dead server sends nothing: that fires too
    assert silence["period"] == "${var.alarm_no_invocations_minutes * 60}"
    assert (alarms["drift"]["metric_name"], alarms["drift"]["threshold"]) == ("DriftShare", "${var.alarm_drift_share}")
    assert alarms["unhealthy"]["metric_name"] == "UnHealthyHostCount"
    server = {a["metric_name"] for a in alarms.values() if a.get("namespace") == "${var.metrics_namespace}"}
    server |= {one(q, "metric")["metric_name"] for q in alarms["errors"]["metric_query"] if "metric" in q}
    assert server <= set(METRICS)
    assert tf.resource("aws_sns_topic.alarms")["kms_master_key_id"] == "${aws_kms_key.this.arn}"
    assert tf.resource("aws_sns_topic_subscription.email")["count"] == '${var.alarm_email != "" ? 1 : 0}'
    # who may publish: CloudWatch and Budgets of this account; the key lets both encrypt
    publishers = {
        one(s, "principals")["identifiers"][0]: s
        for s in statements(tf.data("aws_iam_policy_document.alarm_topic"))
        if s["actions"] == ["sns:Publish"]
    }
    assert set(publishers) == {"cloudwatch.amazonaws.com", "budgets.amazonaws.com"}
    key_users = {one(s, "principals")["identifiers"][0] for s in statements(tf.data("aws_iam_policy_document.kms"))}
    assert {"cloudwatch.amazonaws.com", "budgets.amazonaws.com"} <= key_users

    # the dashboard: the server's metrics by their names, the load balancer's, the tasks', the alarms
    body = tf.resource("aws_cloudwatch_dashboard.this")["dashboard_body"]
    shown = set(re.findall(r'\[var\.metrics_namespace, "(\w+)"\]', body))
    assert shown == set(METRICS)
    assert '"AWS/ApplicationELB", "RequestCount"' in body and '"AWS/ECS", "CPUUtilization"' in body
    assert all(f"aws_cloudwatch_metric_alarm.{a}.arn" in body for a in alarms)

    budget = tf.resource("aws_budgets_budget.monthly")
    assert (budget["budget_type"], budget["time_unit"], budget["limit_unit"]) == ("COST", "MONTHLY", "USD")
    assert budget["limit_amount"] == '${format("%.2f", var.monthly_budget_usd)}'
    notes = {(n["notification_type"], n["threshold"]) for n in budget["notification"]}
    assert notes == {("ACTUAL", 80), ("FORECASTED", 100)}
    assert all(n["subscriber_sns_topic_arns"] == topic for n in budget["notification"])


def test_an_accuracy_floor_adds_its_alarm(tmp_path: Path) -> None:
    (tmp_path / "mlops.toml").write_text(
        PROJECT.replace("[monitoring.alerts]", "[monitoring.alerts]\naccuracy_min = 0.7\naccuracy_min_samples = 40")
    )
    run_cli("deploy", "aws", "--out", "tf", cwd=tmp_path)
    tf = Tf(tmp_path / "tf")
    alarm = tf.resource("aws_cloudwatch_metric_alarm.accuracy")
    assert (default(tf, "alarm_accuracy_min"), default(tf, "alarm_accuracy_min_samples")) == (0.7, 40)
    assert alarm["threshold"] == "${var.alarm_accuracy_min}" and alarm["comparison_operator"] == "LessThanThreshold"
    queries = {q["id"]: q for q in alarm["metric_query"]}
    assert queries["judged"]["expression"] == "IF(labelled >= ${var.alarm_accuracy_min_samples}, accuracy, 1)"
    assert one(queries["accuracy"], "metric")["metric_name"] == "LiveAccuracy"
    assert one(queries["labelled"], "metric")["metric_name"] == "LiveLabelled"
    assert "aws_cloudwatch_metric_alarm.accuracy.arn" in tf.resource("aws_cloudwatch_dashboard.this")["dashboard_body"]


def test_capture_compaction_in_the_servers_is_granted_when_the_config_turns_it_on(tf: Tf, tmp_path: Path) -> None:
    arn = "${aws_s3_bucket.store.arn}/${local.store_prefix}/"
    policy = tf.resource("aws_iam_role_policy.task_compaction")
    assert policy["count"] == "${var.capture_compaction_writes ? 1 : 0}" and policy["role"] == "${aws_iam_role.task.id}"
    assert default(tf, "capture_compaction_writes") is False  # the project has compact_in_server off
    by_sid = {s["sid"]: s for s in statements(tf.data("aws_iam_policy_document.task_compaction"))}
    create = by_sid["CreateCompactedCapture"]
    assert create["actions"] == ["s3:PutObject"] and create["resources"] == [arn + "capture-parquet/*"]
    assert one(create, "condition")["variable"] == "s3:if-none-match"  # a part is created, never rewritten
    for sid, key in (("CreateTheCompactionLease", "s3:if-none-match"), ("SwapTheCompactionLease", "s3:if-match")):
        assert by_sid[sid]["resources"] == [arn + "leases/*"] and one(by_sid[sid], "condition")["variable"] == key
    delete = by_sid["DeleteCompactedJsonLines"]
    assert delete["actions"] == ["s3:DeleteObject"] and delete["resources"] == [arn + "capture/*"]
    assert set(by_sid) == {"CreateCompactedCapture", "CreateTheCompactionLease", "SwapTheCompactionLease"} | {
        "DeleteCompactedJsonLines"
    }
    rules = {r["id"]: r for r in tf.resource("aws_s3_bucket_lifecycle_configuration.store")["rule"]}
    compacted = rules["expire-compacted-predictions"]
    assert one(compacted, "filter")["prefix"] == "${local.store_prefix}/capture-parquet/"
    assert one(compacted, "expiration")["days"] == "${max(var.capture_expiration_days, 1)}"
    (tmp_path / "mlops.toml").write_text(PROJECT + "[monitoring.capture]\ncompact_in_server = true\n")
    run_cli("deploy", "aws", "--out", "tf", cwd=tmp_path)
    assert default(Tf(tmp_path / "tf"), "capture_compaction_writes") is True


def test_scheduled_retraining_is_off_by_default_and_runs_the_training_image(tf: Tf) -> None:
    rule = tf.resource("aws_cloudwatch_event_rule.retrain")
    assert rule["state"] == '${var.retrain_schedule_enabled ? "ENABLED" : "DISABLED"}'
    assert rule["schedule_expression"] == "${var.retrain_schedule}" and default(tf, "retrain_schedule_enabled") is False
    target = tf.resource("aws_cloudwatch_event_target.retrain")
    assert (
        target["arn"] == "${aws_ecs_cluster.this.arn}" and target["role_arn"] == "${aws_iam_role.retrain_schedule.arn}"
    )
    task = tf.resource("aws_ecs_task_definition.retrain")
    text = task["container_definitions"]
    (definition,) = load_hcl("x = " + text[len("${jsonencode(") : -2])["x"]
    assert definition["command"] == ["mlopsctl", "retrain", "--if", "${var.retrain_trigger}"]
    assert definition["image"] == "${aws_ecr_repository.this.repository_url}:${local.retrain_image_tag}"
    assert (
        tf.locals["retrain_image_tag"]
        == '${var.retrain_image_tag != "" ? var.retrain_image_tag : "train-${var.image_tag}"}'
    )
    assert definition["readonlyRootFilesystem"] is True and definition["user"] == "${var.container_user}"
    assert task["task_role_arn"] == "${aws_iam_role.retrain.arn}"  # not the servers' role: it publishes
    arn = "${aws_s3_bucket.store.arn}/${local.store_prefix}/"
    writes = {s["sid"]: s for s in statements(tf.data("aws_iam_policy_document.retrain"))}
    assert writes["TrainPublishPromote"]["resources"] == [arn + "*"]
    assert "s3:DeleteObject" not in str(writes)
    (run, pass_role) = statements(tf.data("aws_iam_policy_document.retrain_schedule"))
    assert run["actions"] == ["ecs:RunTask"] and one(run, "condition")["values"] == ["${aws_ecs_cluster.this.arn}"]
    assert pass_role["resources"] == ["${aws_iam_role.execution.arn}", "${aws_iam_role.retrain.arn}"]


def test_a_retrain_schedule_in_the_config_turns_it_on(tmp_path: Path) -> None:
    (tmp_path / "mlops.toml").write_text(
        PROJECT.replace("[deploy]", '[deploy]\nretrain_schedule = "cron(0 3 ? * MON *)"')
    )
    v = json.loads(run_cli("deploy", "aws", "--json", cwd=tmp_path).stdout)["variables"]
    assert (v["retrain_schedule_enabled"], v["retrain_schedule"]) == (True, "cron(0 3 ? * MON *)")


def test_pull_requests_get_a_read_only_plan_role(tf: Tf) -> None:
    (trust,) = statements(tf.data("aws_iam_policy_document.github_plan_assume"))
    sub = {c["variable"]: c for c in trust["condition"]}["token.actions.githubusercontent.com:sub"]
    assert sub["values"] == ["repo:${var.github_repository}:pull_request"]
    attached = tf.resource("aws_iam_role_policy_attachment.github_plan")
    assert attached["policy_arn"] == "arn:${local.partition}:iam::aws:policy/ReadOnlyAccess"
    assert tf.resource("aws_iam_role.github_plan")["count"] == "${local.github ? 1 : 0}"


# -- checkov -------------------------------------------------------------------------------------


def test_checkov_finds_nothing_and_every_skip_says_why(checkov: dict[str, Any], out: Path, layout: str) -> None:
    summary = checkov["summary"]
    failed = [(f["check_id"], f["resource"], f["check_name"]) for f in checkov["results"]["failed_checks"]]
    assert summary["failed"] == 0 and not failed, failed
    assert summary["parsing_errors"] == 0 and summary["passed"] > 250
    skips = [m for p in sorted(out.glob("*.tf")) for m in SKIP.finditer(p.read_text())]
    assert skips
    for m in skips:
        reason = (m.group(2) or "").strip()
        assert len(reason) >= 30, f"checkov skip {m.group(1)} without a written reason"
    # each skip is a real check id that fired on a resource here (no stale or mistyped skips)
    skipped_by_checkov = {s["check_id"] for s in checkov["results"]["skipped_checks"]}
    assert {m.group(1) for m in skips} == skipped_by_checkov
    # what the minimal layout leaves out is skipped there, with its reason, and only there
    minimal_only = {"CKV2_AWS_11", "CKV_AWS_65", "CKV_AWS_333", "CKV_AWS_150"}  # the project keeps 400 days of logs
    assert (minimal_only <= skipped_by_checkov) is (layout == "minimal")
    assert not (minimal_only & skipped_by_checkov) or layout == "minimal"


# -- the command ---------------------------------------------------------------------------------


def test_refuses_to_overwrite_without_force_and_keeps_tfvars(tmp_path: Path) -> None:
    run_cli("deploy", "aws", "--model", "iris", "--out", "tf", cwd=tmp_path)
    (tmp_path / "tf" / "terraform.tfvars").write_text('image_tag = "abc123"\n')
    (tmp_path / "tf" / "ecs.tf").write_text("# edited\n")
    refused = run_cli("deploy", "aws", "--model", "iris", "--out", "tf", cwd=tmp_path, check=False)
    assert refused.returncode == 1 and f"{Path('tf') / 'variables.tf'} exists: pass --force" in refused.stderr
    assert f"(and {len(FILE_NAMES) - 1} more); terraform.tfvars and the state are never touched" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr
    assert (tmp_path / "tf" / "ecs.tf").read_text() == "# edited\n"
    result = json.loads(run_cli("deploy", "aws", "-m", "iris", "-o", "tf", "--force", "--json", cwd=tmp_path).stdout)
    assert "tf/ecs.tf" in result["overwritten"] and (tmp_path / "tf" / "ecs.tf").read_text().startswith("# Written")
    assert (tmp_path / "tf" / "terraform.tfvars").read_text() == 'image_tag = "abc123"\n'
    assert result["service"] == "iris" and result["variables"]["pointer_parameter_name"] == "/mlopsctl/iris/iris/prod"


def test_bad_input_is_one_line_naming_the_field(tmp_path: Path) -> None:
    nowhere = run_cli("deploy", "aws", cwd=tmp_path, check=False)
    assert nowhere.returncode == 1 and "--model" in nowhere.stderr and "Traceback" not in nowhere.stderr
    bad_alias = run_cli("deploy", "aws", "-m", "iris", "--alias", "a b", cwd=tmp_path, check=False)
    assert bad_alias.returncode == 1 and "--alias 'a b'" in bad_alias.stderr
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "mlops.toml").write_text(PROJECT.replace("memory = 3", "memory = 9"))
    wrong = run_cli("deploy", "aws", cwd=proj, check=False)
    assert wrong.returncode == 1 and len(wrong.stderr.strip().splitlines()) == 1
    assert "deploy" in wrong.stderr and "memory 9 GB does not go with 1 vCPU" in wrong.stderr
    assert "use 2–8 in steps of 1 GB" in wrong.stderr
    (proj / "mlops.toml").write_text(PROJECT.replace("[deploy]", '[deploy]\nname = "Wine-API"'))
    upper = run_cli("deploy", "aws", cwd=proj, check=False)
    assert upper.returncode == 1 and "deploy.name: got 'Wine-API'" in upper.stderr
    assert not (proj / "deploy").exists()
    file = tmp_path / "file"
    file.write_text("mine\n")
    not_a_folder = run_cli("deploy", "aws", "-m", "iris", "--out", str(file), cwd=tmp_path, check=False)
    assert not_a_folder.returncode == 1 and f"--out {file}: is a file, not a folder" in not_a_folder.stderr


def test_service_names_start_with_a_letter_in_a_project_and_outside(tmp_path: Path) -> None:
    """A project named "1wine" gives the service "wine" (AWS names start with a letter); outside a project
    the model's name is made a service name by the same rule."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "mlops.toml").write_text(PROJECT.replace('name = "Wine_API"', 'name = "1wine"'))
    inside = json.loads(run_cli("deploy", "aws", "--json", cwd=proj).stdout)
    assert inside["service"] == inside["variables"]["name"] == "wine"
    outside = json.loads(run_cli("deploy", "aws", "-m", "2024", "-o", "o", "--json", cwd=tmp_path).stdout)
    assert outside["service"] == "mlops-2024" and outside["variables"]["model_name"] == "2024"


def test_the_pointer_follows_the_registry_mirror_pattern() -> None:
    raw = {
        "project": {"name": "wine"},
        "data": {"path": "w.csv", "target": "quality"},
        "registry": {"ssm_parameter": "/teams/{model}/{alias}"},
        "serving": {"alias": "live"},
        "monitoring": {"alerts": {"error_rate": False, "latency_p95_ms": False}},
    }
    v = values_from_config(parse_config(raw))
    assert (v.pointer_parameter, v.alias) == ("/teams/wine/live", "live")
    assert (v.error_rate_percent, v.latency_p95_ms) == (5.0, 500.0)  # rules off: the alarms keep AWS-side defaults
    assert values_from_config(parse_config(raw), alias="prod").pointer_parameter == "/teams/wine/prod"


def test_help_and_docs_match(tf: Tf, out: Path) -> None:
    """Every option, file, variable, output and checkov skip is in docs/deploy-aws.md."""
    from typer.main import get_command
    from typer.testing import CliRunner

    from mlopsctl.cli.main import app

    result = CliRunner().invoke(app, ["deploy", "aws", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    group: Any = get_command(app)
    text = DOCS.read_text()
    for param in group.commands["deploy"].commands["aws"].params:
        for opt in param.opts:
            if opt.startswith("--"):
                assert opt in result.output and f"`{opt}" in text, opt
    for name in [*FILE_NAMES, *tf.variables, *tf.outputs]:
        assert f"`{name}`" in text, name
    for path in out.glob("*.tf"):
        for m in SKIP.finditer(path.read_text()):
            assert f"`{m.group(1)}`" in text, m.group(1)


def test_the_docs_show_both_bills_beside_seed_000_and_how_to_tear_down() -> None:
    """docs/deploy-aws.md: the totals of `mlopsctl cost` for each layout, with and without the free tier, beside
    seed 000's receipts (Fargate $8.89 of $12.34); the destroy commands with the variables' defaults beside them."""
    from mlopsctl.deploy.cost import estimate, inputs_from
    from mlopsctl.deploy.cost_traffic import assumed

    text = DOCS.read_text()
    bill = text[text.index("## What it costs a month, beside seed 000's receipts") :]
    bill = bill[: bill.index("\n## ")]
    assert "| **total** | **$12.34** |" in bill and "| **$8.89** |" in bill
    totals = []
    for layout in LAYOUTS:
        for free in (False, True):
            report = estimate(inputs_from(None, layout=layout, free_tier=free), assumed())
            totals.append(f"**${report['estimates'][0]['total']:.2f}**")
            assert f"{report['estimates'][0]['subtotals']['compute']:.2f}" == "8.89"
    assert "| **total** | **$12.34** | " + " | ".join(totals) + " |" in bill
    overview = (DOCS.parent / "deploy.md").read_text()  # docs/deploy.md quotes three of them
    assert all(t.strip("*") in overview for t in totals[:3])
    down = text[text.index("## Tearing down") :]
    for line in (
        "terraform apply   -var image_tag=$TAG -var deletion_protection=false -var force_destroy=true",
        "terraform destroy -var image_tag=$TAG -var deletion_protection=false -var force_destroy=true",
    ):
        assert line in down
    assert "`deletion_protection` (default **`false` in minimal, `true` in private**" in down
    assert "`force_destroy` (default **`false`** in both)" in down
