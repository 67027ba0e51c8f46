"""`mlopsctl cost`: the well-known Fargate figure, lines that add up, prices from the table, observed traffic."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import sys
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlopsctl.deploy.cost_prices import builtin_regions, builtin_table_text, check_table, load_prices
from tests.conftest import run_cli, wine_rows

DOCS = Path(__file__).resolve().parents[1] / "docs" / "cost.md"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Any:
    """`mlopsctl ARGS` through the real entry point, in this process: (exit code, stdout, stderr)."""
    from mlopsctl.cli.main import main

    monkeypatch.delenv("MLOPS_STORE", raising=False)
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str, cwd: Path = tmp_path) -> tuple[int, str, str]:
        monkeypatch.chdir(cwd)
        monkeypatch.setattr(sys, "argv", ["mlopsctl", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def cost(cli: Any) -> Any:
    """`mlopsctl cost ARGS --json`, parsed; fails the test on a non-zero exit."""

    def run(*args: str, cwd: Path | None = None, store: Path | None = None) -> dict[str, Any]:
        pre = ("--store", str(store)) if store else ()
        code, out, err = cli(*pre, "cost", *args, "--json", **({"cwd": cwd} if cwd else {}))
        assert code == 0, err
        return dict(json.loads(out))

    return run


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in report["estimates"]}


def line(estimate: dict[str, Any], starts: str) -> dict[str, Any]:
    (found,) = [x for x in estimate["lines"] if x["item"].startswith(starts)]
    return dict(found)


def test_the_well_known_figure_from_the_cli(tmp_path: Path) -> None:
    """One 0.25 vCPU / 0.5 GB Fargate task for 720 hours in us-east-1: $8.89 (0.25·0.04048·720 + 0.5·0.004445·720)."""
    proc = run_cli(
        "cost", "--cpu", "0.25", "--memory", "0.5", "--replicas", "1", "--hours", "720", "--region", "us-east-1",
        "--json", cwd=tmp_path,
    )  # fmt: skip
    report = json.loads(proc.stdout)
    fargate = by_name(report)["fargate"]
    vcpu, mem = line(fargate, "Fargate vCPU"), line(fargate, "Fargate memory")
    assert (vcpu["quantity"], vcpu["unit"], vcpu["unit_price"]) == (180, "vCPU-hour", 0.04048)
    assert (mem["quantity"], mem["unit"], mem["unit_price"]) == (360, "GB-hour", 0.004445)
    assert vcpu["monthly"] + mem["monthly"] == pytest.approx(8.8866, abs=1e-9)
    assert f"{fargate['subtotals']['compute']:.2f}" == "8.89"
    assert report["prices"]["region"] == "us-east-1" and report["prices"]["currency"] == "USD"
    assert report["inputs"]["origin"] == {
        "layout": "default",
        **{k: f"--{k}" for k in ("region", "cpu", "memory", "replicas", "hours")},
    }


def test_seed_000s_bill_line_by_line_with_each_price_dated_and_sourced(cost: Any) -> None:
    """The minimal layout at 0.25 vCPU / 0.5 GB, one task, 720 h: Fargate $8.89 as in seed 000's receipts, and
    the rest itemised as the seed itemises it (load balancer, public IPv4, logs, S3, SSM), each line with the
    page its price comes from and the date of the price."""
    report = cost("--layout", "minimal", "--cpu", "0.25", "--memory", "0.5", "--replicas", "1", "--hours", "720")
    fargate = by_name(report)["fargate"]
    assert report["inputs"]["layout"] == "minimal" and fargate["notes"][0] == "minimal layout"
    assert f"{fargate['subtotals']['compute']:.2f}" == "8.89"
    table = load_prices("us-east-1")
    for x in fargate["lines"]:
        section = x["price_key"].split(".")[0]
        assert x["source"] == table.sources()[section][0] and x["source"].startswith("https://aws.amazon.com/")
        assert x["as_of"] == table.as_of
    seed_items = {
        "load balancer": ("ALB hours", "ALB capacity units"),
        "public IPv4": ("public IPv4 addresses (3)",),  # 2 for the load balancer, 1 for the task
        "logs": ("CloudWatch logs ingested", "CloudWatch logs stored (7 days kept"),
        "S3": ("S3 store", "S3 writes", "S3 reads"),
        "SSM": ("SSM parameter",),
    }
    for what, starts in seed_items.items():
        for start in starts:
            assert line(fargate, start), what
    assert line(fargate, "SSM parameter")["monthly"] == 0  # standard parameters are free: itemised to say so
    assert not [x for x in fargate["lines"] if x["item"].startswith(("NAT", "Container Insights"))]
    # the order of the bill: the load balancer first, then the task, then the addresses; the rest is small
    big = sorted(fargate["subtotals"].items(), key=lambda kv: -kv[1])[:3]
    assert [g for g, _ in big] == ["load balancer", "network", "compute"]
    assert fargate["total"] == pytest.approx(math.fsum(x["monthly"] for x in fargate["lines"]))


def test_text_output_shows_the_lines_the_comparison_and_the_assumptions(cli: Any) -> None:
    code, out, err = cli("cost")
    assert code == 0, err
    assert "compute $8.89" in out  # the Fargate task, line by line and as a group subtotal
    assert re.search(r"Fargate vCPU \(1 × 0\.25 vCPU\)\s+│\s+180\s+│ vCPU-hour\s+│\s+\$0\.04048 │\s+\$7\.29", out)
    assert re.search(r"Fargate memory \(1 × 0\.5 GB\)\s+│\s+360\s+│ GB-hour\s+│\s+\$0\.004445 │\s+\$1\.60", out)
    table = load_prices("us-east-1")
    assert f"Prices as of {table.as_of} in USD" in out
    comparison = out.split("The same service, a month")[1]
    for title in ("ECS Fargate + ALB", "SageMaker real-time endpoint", "SageMaker serverless inference", "EKS"):
        assert title in comparison
    assert "per 1,000 predictions" not in comparison  # traffic is only assumed here
    assert "Traffic: 1,000,000 requests, 1,000,000 predictions a month, 50 ms each (assumed" in out
    for name in ("public_ips", "nat_gateways", "insights_metrics", "alarms", "log_gb", "image_gb", "request_kb"):
        assert re.search(rf"^ {name}\s", out, flags=re.M), name
    assert "ml.t2.medium (2 vCPU, 4 GB, burstable, 0.4 vCPU baseline): the cheapest SageMaker instance" in out


def test_lines_sum_to_the_totals_and_every_price_is_the_tables(cost: Any) -> None:
    report = cost("--replicas", "2")
    table = load_prices("us-east-1")
    for e in report["estimates"]:
        assert e["available"] and e["lines"]
        for x in e["lines"]:
            assert x["monthly"] == pytest.approx(x["quantity"] * x["unit_price"], rel=1e-12)
            section, key = x["price_key"].split(".", 1)
            if key.startswith("instances."):
                (inst,) = [i for i in table.instances(section) if i.name == key.removeprefix("instances.")]
                assert (x["unit_price"], x["unit"]) == (inst.price, inst.unit)
            else:
                assert (x["unit_price"], x["unit"]) == (table.price(section, key), table.unit(section, key))
        assert math.fsum(x["monthly"] for x in e["lines"]) == pytest.approx(e["total"], rel=1e-12)
        assert math.fsum(e["subtotals"].values()) == pytest.approx(e["total"], rel=1e-12)
    assert [(c["name"], c["total"]) for c in report["comparison"]] == [
        (e["name"], e["total"]) for e in report["estimates"]
    ]
    cheapest = min(report["comparison"], key=lambda c: c["total"])
    assert report["cheapest"] == cheapest["name"]


def test_scaling_with_replicas_and_hours(cost: Any) -> None:
    private = ["--layout", "private"]
    base, triple, half = (by_name(cost(*private, *a)) for a in ([], ["--replicas", "3"], ["--hours", "360"]))

    def monthly(r: dict[str, Any], target: str, starts: str) -> float:
        return float(line(r[target], starts)["monthly"])

    for starts in ("Fargate vCPU", "Fargate memory"):  # per task-hour: linear in both
        assert monthly(triple, "fargate", starts) == pytest.approx(3 * monthly(base, "fargate", starts), rel=1e-12)
        assert monthly(half, "fargate", starts) == pytest.approx(monthly(base, "fargate", starts) / 2, rel=1e-12)
    assert triple["fargate"]["subtotals"]["compute"] == pytest.approx(3 * 8.8866, rel=1e-12)
    # one load balancer, one NAT gateway and three addresses however many tasks: hours only
    for starts in ("ALB hours", "NAT gateways", "public IPv4"):
        assert monthly(triple, "fargate", starts) == pytest.approx(monthly(base, "fargate", starts), rel=1e-12)
        assert monthly(half, "fargate", starts) == pytest.approx(monthly(base, "fargate", starts) / 2, rel=1e-12)
    # an instance per replica
    assert monthly(triple, "sagemaker", "ml.t2.medium") == pytest.approx(3 * 40.32, rel=1e-12)
    assert monthly(half, "sagemaker", "ml.t2.medium") == pytest.approx(40.32 / 2, rel=1e-12)
    # the control plane is per cluster; serverless is per request, not per replica or hour
    assert monthly(triple, "eks", "EKS control plane") == monthly(base, "eks", "EKS control plane") == 72.0
    assert monthly(triple, "serverless", "compute") == monthly(base, "serverless", "compute")
    assert monthly(half, "serverless", "compute") == monthly(base, "serverless", "compute")
    # the default public addresses follow the layout: 2 for the ALB + the NAT gateway's, or + 1 per task
    assert line(triple["fargate"], "public IPv4")["item"] == "public IPv4 addresses (3)"
    public = by_name(cost("--replicas", "3", "--nat-gateways", "0", *private))["fargate"]
    assert line(public, "public IPv4")["quantity"] == 5 * 720
    assert not [x for x in public["lines"] if x["item"].startswith("NAT")]
    # the minimal layout gives each task an address and has no NAT gateway
    minimal = by_name(cost("--replicas", "3"))["fargate"]
    assert line(minimal, "public IPv4")["quantity"] == 5 * 720
    assert line(by_name(cost("--public-ips", "7"))["fargate"], "public IPv4")["quantity"] == 7 * 720


def test_each_comparison_target_is_priced_from_the_table(cost: Any, tmp_path: Path) -> None:
    override = tmp_path / "prices.toml"
    override.write_text(
        """
as_of = 2027-01-15
[fargate]
vcpu_hour = 0.05
[alb]
hour = { price = 0.03, unit = "ALB-hour" }
[sagemaker.instances."ml.t2.medium"]
price = 0.07
[sagemaker_serverless]
gb_second = 0.00003
[eks]
cluster_hour = 0.2
[ec2.instances."t3.medium"]
price = 0.05
"""
    )
    base, moved = by_name(cost()), cost("--prices", str(override))
    new = by_name(moved)
    assert line(new["fargate"], "Fargate vCPU")["monthly"] == pytest.approx(180 * 0.05)
    assert line(new["fargate"], "ALB hours")["monthly"] == pytest.approx(720 * 0.03)
    assert line(new["eks"], "ALB hours")["monthly"] == pytest.approx(720 * 0.03)
    assert line(new["sagemaker"], "ml.t2.medium")["monthly"] == pytest.approx(720 * 0.07)
    serverless = line(new["serverless"], "compute")
    assert serverless["monthly"] == pytest.approx(1.5 * line(base["serverless"], "compute")["monthly"])
    assert line(new["eks"], "EKS control plane")["monthly"] == pytest.approx(720 * 0.2)
    assert line(new["eks"], "t3.medium")["monthly"] == pytest.approx(720 * 0.05)
    for name in ("fargate", "sagemaker", "serverless", "eks"):
        assert new[name]["total"] > base[name]["total"]
    # what did not change stays
    assert line(new["fargate"], "Fargate memory") == line(base["fargate"], "Fargate memory")
    prices = moved["prices"]
    assert prices["files"] == ["built-in prices/us-east-1.toml", str(override)]
    assert set(prices["overridden"]) == {
        "fargate.vcpu_hour",
        "alb.hour",
        "sagemaker.instances.ml.t2.medium",
        "sagemaker_serverless.gb_second",
        "eks.cluster_hour",
        "ec2.instances.t3.medium",
    }
    assert prices["override_as_of"] == "2027-01-15" and prices["as_of"] == load_prices("us-east-1").as_of
    # a cheaper instance type added by the file is picked, and the note says which
    override.write_text(
        '[sagemaker.instances."ml.x1.tiny"]\nprice = 0.01\nunit = "instance-hour"\nvcpu = 1\nmemory_gb = 1\n'
    )
    sm = by_name(cost("--prices", str(override)))["sagemaker"]
    assert line(sm, "ml.x1.tiny instances")["monthly"] == pytest.approx(7.2)
    assert sm["notes"][0].startswith("ml.x1.tiny (1 vCPU, 1 GB): the cheapest SageMaker instance")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[fargate]\nvcpu = 0.05\n", "fargate.vcpu: unknown key: fargate has vcpu_hour, gb_hour"),
        ("[farg]\nvcpu_hour = 1\n", "farg: unknown key: use one of region, region_name, currency, as_of or a section"),
        ("[fargate]\nvcpu_hour = -0.01\n", "fargate.vcpu_hour: -0.01 is negative: prices and values are 0 or more"),
        ('[alb]\nlcu_hour = { price = 0.008, unit = "LCU-second" }\n', "'LCU-second' differs from the table's"),
        ('[s3]\nget_1000 = "cheap"\n', "s3.get_1000: expected a number or { price = NUMBER"),
        ('[ec2.instances."t3.medium"]\ncores = 2\n', "ec2.instances.t3.medium.cores: unknown key: an instance type"),
        ('[ec2.instances."t9.new"]\nprice = 0.01\n', "ec2.instances.t9.new: missing unit, vcpu, memory_gb"),
        ('region = "eu-west-1"\n', "the file prices 'eu-west-1', the estimate is for 'us-east-1': pass --region"),
        ("[fargate\n", "syntax:"),
    ],
)
def test_a_bad_price_file_names_the_key(cli: Any, tmp_path: Path, text: str, message: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    code, out, err = cli("cost", "--prices", str(bad))
    assert code == 1 and out == ""
    assert err.count("error:") == 1 and err.startswith(f"error: {bad}: ") and message in err, err


def test_a_complete_table_prices_a_region_without_a_built_in_one(cost: Any, cli: Any, tmp_path: Path) -> None:
    full = tmp_path / "eu-south-9.toml"
    text = builtin_table_text("us-east-1").replace('region = "us-east-1"', 'region = "eu-south-9"')
    full.write_text(text.replace("vcpu_hour = { price = 0.04048", "vcpu_hour = { price = 0.05"))
    report = cost("--region", "eu-south-9", "--prices", str(full))
    assert report["prices"]["region"] == "eu-south-9" and report["prices"]["files"] == [str(full)]
    assert line(by_name(report)["fargate"], "Fargate vCPU")["monthly"] == pytest.approx(180 * 0.05)
    partial = tmp_path / "partial.toml"
    partial.write_text(text.split("[alb]")[0])
    code, _, err = cli("cost", "--region", "eu-south-9", "--prices", str(partial))
    assert code == 1 and "alb: missing: a table for a region without a built-in one must be complete" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cpu", "-1"], "error: --cpu -1 must be positive: Fargate offers 0.25, 0.5, 1, 2, 4, 8, 16 vCPU"),
        (["--cpu", "0"], "error: --cpu 0 must be positive: Fargate offers 0.25, 0.5, 1, 2, 4, 8, 16 vCPU"),
        (["--memory", "-0.5"], "error: --memory -0.5 GB must be positive (with 0.25 vCPU Fargate offers 0.5, 1, 2 GB)"),
        (
            ["--cpu", "0.25", "--memory", "4"],
            "error: --memory 4 GB does not go with 0.25 vCPU on Fargate: use 0.5, 1, 2 GB",
        ),
        (
            ["--cpu", "3", "--memory", "6"],
            "error: --cpu 3 vCPU is not a Fargate size: use one of 0.25, 0.5, 1, 2, 4, 8, 16",
        ),
        (
            ["--cpu", "4", "--memory", "40"],
            "error: --memory 40 GB does not go with 4 vCPU on Fargate: use 8–30 in steps of 1 GB",
        ),
        (
            ["--region", "eu-west-3"],
            "error: --region eu-west-3: no price table for it: use us-east-1 (or give a complete",
        ),
        (["--target", "gcp"], "error: --target gcp: not a target: use aws"),
        (["--replicas", "0"], "error: --replicas 0: must be at least 1"),
        (["--replicas", "-2"], "error: --replicas -2: must be at least 1"),
        (["--hours", "0"], "error: --hours 0: must be more than 0 and at most 744 (a 31-day month)"),
        (["--hours", "800"], "error: --hours 800: must be more than 0 and at most 744"),
        (["--log-gb", "-1"], "error: --log-gb -1: must be 0 or more"),
        (["--public-ips", "-1"], "error: --public-ips -1: must be 0 or more"),
        (["--requests", "-5"], "error: --requests -5: must be 0 or more"),
        (["--since", "7x"], "error: --since 7x: duration '7x': expected a number and a unit"),
        (["--prices", "/nonexistent/p.toml"], "error: /nonexistent/p.toml: file: not found"),
        (["--window", "30s"], "error: --window: needs --url"),
        (["--url", "http://127.0.0.1:9", "--window", "0s"], "error: --window: must be more than 0s"),
    ],
)
def test_bad_input_is_one_line_naming_the_choices(cli: Any, args: list[str], message: str) -> None:
    code, out, err = cli("cost", *args)
    assert code == 1 and out == ""
    assert err.startswith(message) and err.count("\n") == 1, err


def test_a_usage_error_is_clicks(cli: Any) -> None:
    code, _, err = cli("cost", "--replicas", "two")
    assert code == 2 and "Invalid value for '--replicas'" in err


def test_the_built_in_table_has_region_date_and_sources(cost: Any) -> None:
    assert "us-east-1" in builtin_regions()
    for region in builtin_regions():
        raw = tomllib.loads(builtin_table_text(region))
        assert raw["region"] == region and raw["currency"] == "USD" and raw["region_name"]
        assert isinstance(raw["as_of"], dt.date) and raw["as_of"] <= dt.date.today()
        check_table(raw, region)  # every section a source, every price a unit and a number >= 0
        sections = [k for k, v in raw.items() if isinstance(v, dict)]
        assert len(sections) >= 10
        for name in sections:
            sources = raw[name]["source"]
            for url in [sources] if isinstance(sources, str) else sources:
                assert url.startswith("https://aws.amazon.com/"), (name, url)
    report = cost()
    assert set(report["prices"]["sources"]) == {
        "fargate", "alb", "public_ipv4", "nat_gateway", "cloudwatch", "kms", "ssm", "budgets", "s3", "ecr",
        "sagemaker", "sagemaker_serverless", "eks", "ec2", "athena", "glue", "free_tier",
    }  # fmt: skip


def test_the_project_gives_the_defaults_and_flags_win(cost: Any, tmp_path: Path) -> None:
    (tmp_path / "mlops.toml").write_text(
        '[project]\nname = "Wine_Quality"\n[data]\npath = "x.csv"\ntarget = "quality"\n'
        "[deploy]\ncpu = 0.5\nmemory = 1\nmin_replicas = 2\nmax_replicas = 4\nlog_retention_days = 30\n"
    )
    report = cost()
    assert report["service"] == "wine-quality"
    assert report["inputs"]["origin"] == {
        "region": "[deploy] region", "layout": "[deploy] layout", "cpu": "[deploy] cpu", "memory": "[deploy] memory",
        "replicas": "[deploy] min_replicas", "hours": "default",
    }  # fmt: skip
    est = by_name(report)
    assert line(est["fargate"], "Fargate vCPU")["quantity"] == 2 * 0.5 * 720
    assert line(est["fargate"], "CloudWatch logs stored")["quantity"] == pytest.approx(30 * 24 / 730)
    # 0.5 vCPU is above a t2.medium's 0.4 vCPU baseline: the next cheapest is a c5.large
    assert line(est["sagemaker"], "ml.c5.large instances (2)")["quantity"] == 2 * 720
    assert line(est["eks"], "c5.large nodes (1)")  # 3 pods fit on a c5.large after the kubelet's share
    flags = cost("--cpu", "1", "--memory", "2", "--replicas", "1")
    assert flags["inputs"]["origin"]["cpu"] == "--cpu" and flags["inputs"]["replicas"] == 1


def test_sizes_beyond_serverless_and_the_largest_task(cost: Any, cli: Any) -> None:
    report = cost("--cpu", "2", "--memory", "8")
    serverless = by_name(report)["serverless"]
    assert not serverless["available"] and serverless["total"] is None and serverless["lines"] == []
    assert serverless["reason"] == "serverless inference offers 1–6 GB; this service needs 8 GB"
    assert report["cheapest"] != "serverless"
    code, out, _ = cli("cost", "--cpu", "2", "--memory", "8")
    assert code == 0 and "SageMaker serverless inference: not offered (serverless inference offers 1–6 GB" in out
    largest = by_name(cost("--cpu", "16", "--memory", "120"))
    assert line(largest["sagemaker"], "ml.r5.4xlarge instances (1)")
    assert line(largest["eks"], "m5.8xlarge nodes (1)")
    assert line(by_name(cost("--memory", "2"))["serverless"], "compute (2 GB")  # the memory size that holds 2 GB


def test_given_traffic_moves_the_traffic_lines(cost: Any) -> None:
    quiet, busy = by_name(cost("--requests", "0")), by_name(cost("--requests", "50000000", "--duration-ms", "20"))
    assert line(quiet["serverless"], "compute")["monthly"] == 0
    assert line(busy["serverless"], "compute")["quantity"] == pytest.approx(50e6 * 0.02 * 1)
    lcu = line(busy["fargate"], "ALB capacity units")
    rps = 50e6 / (720 * 3600)
    assert lcu["quantity"] == pytest.approx(720 * max(rps / 25, rps * 3600 * 1.5 / 1e6))
    assert line(busy["sagemaker"], "data processed in")["quantity"] == pytest.approx(50e6 * 1 / 1e6)
    report = cost("--requests", "2000000")
    assert report["traffic"]["source"] == "given"
    fargate = by_name(report)["fargate"]
    assert fargate["per_1000_predictions"] == pytest.approx(fargate["total"] / 2e6 * 1000)


# -- observed traffic ---------------------------------------------------------------------------------


def _send(url: str, n_single: int, n_batch: int, batch_rows: int, n_bad: int, pause: float = 0.0) -> None:
    rows = wine_rows(batch_rows)
    with httpx.Client(base_url=url, timeout=10) as c:
        for _ in range(n_single):
            assert c.post("/predict", json={"features": rows[0]}).status_code == 200
            time.sleep(pause)
        for _ in range(n_batch):
            assert c.post("/predict", json={"instances": rows}).status_code == 200
        for _ in range(n_bad):
            assert c.post("/predict", json={"features": {"alcohol": "high"}}).status_code == 422


@pytest.mark.shared_data
def test_observed_traffic_from_a_server_and_from_its_capture(
    cost: Any, wine_store_copy: Path, start_server: Any, tmp_path: Path
) -> None:
    server = start_server(["--store", str(wine_store_copy), "serve", "--model", "wine@prod"])
    _send(server.url, n_single=20, n_batch=5, batch_rows=3, n_bad=2)
    requests, predictions = 27, 20 + 5 * 3
    report = cost("--url", server.url, "--no-capture")
    traffic = report["traffic"]
    (seen,) = traffic["detail"]["servers"]
    assert traffic["source"] == "url" and seen["url"] == server.url
    assert (seen["requests"], seen["predictions"]) == (requests, predictions)
    assert seen["basis"] in ("process_start_time_seconds", "mlops_model_loaded_timestamp_seconds")
    assert 0 < seen["seconds"] < 300
    month = 720 * 3600
    assert traffic["requests_per_month"] == pytest.approx(requests / seen["seconds"] * month, rel=1e-9)
    assert traffic["predictions_per_month"] == pytest.approx(predictions / seen["seconds"] * month, rel=1e-9)
    assert 0 < traffic["mean_duration_s"] < 1 and traffic["detail"]["duration_observed"]
    est = by_name(report)
    for e in est.values():
        assert e["per_1000_predictions"] == pytest.approx(e["total"] / traffic["predictions_per_month"] * 1000)
    serverless = line(est["serverless"], "compute")
    assert serverless["quantity"] == pytest.approx(traffic["requests_per_month"] * traffic["mean_duration_s"] * 1)

    # the current rate: two scrapes a window apart, traffic in between. The 30 requests are spread over ~1.5 s: sent
    # at once they could all be answered before the first scrape, leaving none in the window
    sender = threading.Thread(target=_send, args=(server.url, 30, 0, 1, 0, 0.05))
    sender.start()
    try:
        windowed = cost("--url", server.url, "--window", "1s", "--no-capture")["traffic"]
    finally:
        sender.join()
    (w,) = windowed["detail"]["servers"]
    assert w["basis"] == "window" and 1 <= w["seconds"] < 5 and 0 < w["requests"] <= 30
    assert windowed["requests_per_month"] == pytest.approx(w["requests"] / w["seconds"] * month, rel=1e-9)

    # the capture the same server wrote (flushed when it stops): counted over --since
    server.stop()
    captured = cost("--model", "wine", "--since", "1h", store=wine_store_copy)
    t = captured["traffic"]
    d = t["detail"]
    assert t["source"] == "capture" and d["models"] == ["wine"] and d["sample_rate"] == 1.0
    assert d["captured_requests"] == requests + 30 and d["captured_predictions"] == predictions + 30
    assert t["requests_per_second"] == pytest.approx(d["captured_requests"] / d["observed_seconds"])
    assert t["predictions_per_month"] == pytest.approx(d["captured_predictions"] / d["observed_seconds"] * month)
    fargate = by_name(captured)["fargate"]
    assert fargate["per_1000_predictions"] == pytest.approx(fargate["total"] / t["predictions_per_month"] * 1000)

    # a project that samples half the requests: the counts are doubled
    project = tmp_path / "project"
    project.mkdir()
    (project / "mlops.toml").write_text(
        f'[project]\nname = "wine"\n[data]\npath = "x.csv"\ntarget = "quality"\n[store]\nuri = "{wine_store_copy}"\n'
        "[monitoring.capture]\nsample_rate = 0.5\n"
    )
    sampled = cost("--since", "1h", cwd=project)["traffic"]
    sd = sampled["detail"]
    assert sd["sample_rate"] == 0.5 and sd["captured_requests"] == requests + 30
    assert sampled["requests_per_second"] == pytest.approx(sd["captured_requests"] / 0.5 / sd["observed_seconds"])


def test_capture_counting_leaves_shadows_out(tmp_path: Path) -> None:
    """Requests are distinct ids, predictions answered rows; shadows' copies are nobody's requests."""
    from mlopsctl.deploy.cost_traffic import captured
    from mlopsctl.monitoring.captured import capture_key, encode_lines
    from mlopsctl.store.local import LocalStore

    store = LocalStore(tmp_path / "store")
    now = time.time()
    t0 = now - 3600

    def rec(rid: str, row: int, status: int = 200, variant: str = "prod", latency: float = 4.0) -> dict[str, Any]:
        return {"request_id": rid, "row": row, "time": t0 + 10, "model": "wine", "version": 1, "variant": variant,
                "endpoint": "predict", "status": status, "latency_ms": latency}  # fmt: skip

    records = [rec("a", 0), rec("b", 0, latency=8.0), rec("b", 1, latency=8.0), rec("c", 0, status=422)]
    records += [rec("a", 0, variant="shadow-v2"), rec("old", 0)]
    records[-1]["time"] = now - 3 * 86400  # outside --since
    store.put(capture_key("wine", t0, "w1", 1), encode_lines(records[:-1]))
    store.put(capture_key("wine", records[-1]["time"], "w1", 2), encode_lines(records[-1:]))
    traffic = captured(store, None, since_seconds=86400, sample_rate=0.25, now=now)
    assert traffic is not None
    d = traffic.detail
    assert (d["captured_requests"], d["captured_predictions"]) == (3, 3)
    assert d["observed_seconds"] == pytest.approx(now - (t0 + 10))  # capture started after the window did
    assert traffic.requests_per_second == pytest.approx(3 / 0.25 / d["observed_seconds"])
    assert traffic.mean_duration_s == pytest.approx((4.0 + 8.0 + 4.0) / 3 / 1000)
    assert captured(store, ["other"], since_seconds=86400, now=now) is None


def test_scrape_prefers_the_process_start_time() -> None:
    from prometheus_client import CollectorRegistry, Counter, ProcessCollector, generate_latest

    from mlopsctl.deploy.cost_traffic import _counters

    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    c = Counter("mlops_requests", "", ["model", "status"], registry=registry)
    c.labels("wine", "200").inc(7)
    c.labels("wine", "422").inc(1)
    Counter("mlops_prediction_rows", "", ["model"], registry=registry).labels("wine").inc(9)
    counters = _counters(generate_latest(registry).decode())
    assert counters["requests"] == 8 and counters["rows"] == 9 and counters["since_basis"] == 1.0
    assert 0 < time.time() - counters["since"] < 7 * 86400
    with pytest.raises(ValueError, match="no mlops_"):
        _counters("# HELP up x\n# TYPE up gauge\nup 1\n")


def test_an_unreachable_url_is_one_line(cli: Any) -> None:
    from tests.conftest import refusing_port

    with refusing_port() as port:
        code, _, err = cli("cost", "--url", f"http://127.0.0.1:{port}")
    assert code == 1 and err.startswith("error: --url http://127.0.0.1:") and "cannot read" in err


def test_the_docs_match_the_table(cli: Any, tmp_path: Path) -> None:
    text = DOCS.read_text()
    (example,) = re.findall(r"```toml\n(.*?)```", text, flags=re.S)
    (tmp_path / "override.toml").write_text(example)
    merged = load_prices("us-east-1", tmp_path / "override.toml")
    assert merged.overridden == ["fargate.vcpu_hour", "fargate.gb_hour", "sagemaker.instances.ml.c6g.large"]
    assert merged.price("fargate", "vcpu_hour") == 0.03238
    (shape,) = re.findall(r"```json\n(.*?)```", text, flags=re.S)
    assert json.loads(shape)["estimates"][0]["lines"][0]["monthly"] == 180 * 0.04048
    documented = re.findall(r"^    (error: .*)$", text, flags=re.M)
    produced = []
    for args in (["--memory", "4"], ["--cpu", "3", "--memory", "6"], ["--region", "eu-west-3"], ["--target", "gcp"],
                 ["--replicas", "0"], ["--hours", "800"]):  # fmt: skip
        produced.append(cli("cost", *args)[2].strip())
    assert documented == produced
    table = load_prices("us-east-1")
    assert table.as_of in text
    for sources in table.sources().values():
        for url in sources:
            assert url in text, url
    assert "$8.89" in text and "0.25 × 0.04048 × 720 + 0.5 × 0.004445 × 720 = 8.8866" in text
    for option in ("--prices", "--public-ips", "--nat-gateways", "--insights-metrics", "--url", "--window", "--since"):
        assert f"`{option}" in text, option
    for option in ("--layout", "--free-tier", "--retrain-runs", "--retrain-minutes", "--metrics", "--alarms"):
        assert f"`{option}" in text, option
    # the example's bill is today's: the minimal layout's total and the comparison
    report = json.loads(
        cli("cost", "--cpu", "0.25", "--memory", "0.5", "--replicas", "1", "--hours", "720", "--json")[1]
    )
    totals = {c["name"]: c["total"] for c in report["comparison"]}
    assert f"ECS Fargate + ALB: ${totals['fargate']:.2f} a month" in text
    assert f"│ ${totals['eks']:,.2f}" in text and f"│  ${totals['sagemaker']:.2f}" in text


# -- the estimate prices what `deploy aws` writes -------------------------------------------------------------

# resource types that AWS bills, and the lines that price them; every other type in the files is free
BILLED = {
    "aws_ecs_service": ("Fargate vCPU", "Fargate memory"),
    "aws_ecs_task_definition": ("Fargate vCPU", "Fargate memory", "retraining vCPU", "retraining memory"),
    "aws_ecs_cluster": ("Container Insights metrics",),  # when the layout turns Insights on
    "aws_lb": ("ALB hours", "ALB capacity units", "public IPv4 addresses"),
    "aws_eip": ("public IPv4 addresses",),
    "aws_nat_gateway": ("NAT gateways", "NAT data processed"),
    "aws_cloudwatch_metric_alarm": ("CloudWatch alarm metrics",),
    "aws_cloudwatch_dashboard": ("CloudWatch dashboard",),
    "aws_cloudwatch_log_group": ("CloudWatch logs ingested", "CloudWatch logs stored", "server metrics"),
    "aws_flow_log": ("CloudWatch logs ingested",),
    "aws_s3_bucket": ("S3 store", "S3 writes", "S3 reads"),
    "aws_ecr_repository": ("ECR image storage",),
    "aws_kms_key": ("KMS key",),
    "aws_ssm_parameter": ("SSM parameter",),
    "aws_budgets_budget": ("AWS budget",),
    "aws_cloudwatch_event_rule": ("retraining vCPU", "retraining memory"),  # when it is enabled
    "aws_athena_workgroup": ("Athena queries",),
    "aws_glue_catalog_database": ("Glue Data Catalog",),  # free under a million objects: itemised to say so
    "aws_glue_catalog_table": ("Glue Data Catalog",),
}
FREE = {
    "aws_vpc", "aws_default_security_group", "aws_internet_gateway", "aws_subnet", "aws_route_table", "aws_route",
    "aws_route_table_association", "aws_vpc_endpoint", "aws_kms_alias", "aws_ecr_lifecycle_policy",
    "aws_security_group", "aws_vpc_security_group_ingress_rule", "aws_vpc_security_group_egress_rule",
    "aws_lb_target_group", "aws_lb_listener", "aws_appautoscaling_target", "aws_appautoscaling_policy",
    "aws_s3_bucket_versioning", "aws_s3_bucket_server_side_encryption_configuration",
    "aws_s3_bucket_public_access_block", "aws_s3_bucket_ownership_controls", "aws_s3_bucket_lifecycle_configuration",
    "aws_s3_bucket_policy", "aws_iam_role", "aws_iam_role_policy", "aws_iam_role_policy_attachment",
    "aws_iam_openid_connect_provider", "aws_sns_topic", "aws_sns_topic_subscription", "aws_sns_topic_policy",
    "aws_cloudwatch_event_target", "aws_iam_policy",
}  # fmt: skip


def _expected_lines(tf: Any, hours: float) -> dict[str, float | None]:
    """Line → quantity, read from the written files alone (None: the quantity is a traffic or size assumption)."""
    from tests.test_deploy_aws import one

    def default(name: str) -> Any:
        return tf.variables[name]["default"]

    types = tf.types()
    service = tf.resource("aws_ecs_service.this")
    tasks = default("min_replicas") if service["desired_count"] == "${var.min_replicas}" else None
    zones = default("az_count")
    assert tf.resource("aws_lb.this")["subnets"] == "${aws_subnet.public[*].id}"
    assert tf.resource("aws_subnet.public")["count"] == "${length(local.azs)}"
    out: dict[str, float | None] = {
        "Fargate vCPU": tasks * default("cpu") / 1024 * hours,
        "Fargate memory": tasks * default("memory") / 1024 * hours,
        "ALB hours": len(tf.of_type("aws_lb")) * hours,
        "ALB capacity units": None,
    }
    ips = zones  # the load balancer's, one per zone
    if "aws_nat_gateway" in types:
        nat = tf.resource("aws_nat_gateway.this")
        assert nat["count"] == "${var.nat_gateway_per_az ? length(local.azs) : 1}" and not default("nat_gateway_per_az")
        assert tf.resource("aws_eip.nat")["count"] == nat["count"]
        out["NAT gateways"], out["NAT data processed"] = 1 * hours, None
        ips += 1
    if one(service, "network_configuration")["assign_public_ip"] is True:
        ips += tasks
    out["public IPv4 addresses"] = ips * hours
    cluster = one(tf.resource("aws_ecs_cluster.this"), "setting")
    assert cluster == {"name": "containerInsights", "value": "${var.container_insights}"}
    if default("container_insights") != "disabled":
        out["Container Insights metrics"] = 13 + 15 + 10
    body = tf.resource("aws_cloudwatch_dashboard.this")["dashboard_body"]
    out["server metrics"] = len(set(re.findall(r'\[var\.metrics_namespace, "(\w+)"\]', body)))
    alarm_metrics = 0
    for alarm in tf.of_type("aws_cloudwatch_metric_alarm").values():
        queries = alarm.get("metric_query", [])
        alarm_metrics += sum(1 for q in queries if "metric" in q) if queries else 1
    out["CloudWatch alarm metrics"] = alarm_metrics
    out["CloudWatch dashboard"] = len(tf.of_type("aws_cloudwatch_dashboard"))
    out["CloudWatch logs ingested"] = None
    out[f"CloudWatch logs stored ({default('log_retention_days')} days kept"] = None
    out.update({"S3 store": None, "S3 writes": None, "S3 reads": None, "ECR image storage": None})
    out["KMS key"] = len(tf.of_type("aws_kms_key"))
    out["SSM parameter"] = len(tf.of_type("aws_ssm_parameter"))
    out["AWS budget"] = len(tf.of_type("aws_budgets_budget"))
    out["Athena queries"] = None  # bytes scanned: an assumption (a month of compacted capture, 30 times)
    out["Glue Data Catalog"] = len(tf.of_type("aws_glue_catalog_database")) + len(tf.of_type("aws_glue_catalog_table"))
    if default("retrain_schedule_enabled"):
        runs = hours / 24  # the test's schedule: rate(1 day)
        assert default("retrain_schedule") == "rate(1 day)"
        out["retraining vCPU"] = runs * 15 / 60 * default("retrain_cpu") / 1024
        out["retraining memory"] = runs * 15 / 60 * default("retrain_memory") / 1024
    return out


@pytest.mark.parametrize(
    ("layout", "extra"),
    [("minimal", ""), ("private", ""), ("minimal", 'retrain_schedule = "rate(1 day)"\nmin_replicas = 2\n')],
    ids=["minimal", "private", "minimal-2-tasks-retraining"],
)
def test_cost_prices_exactly_what_deploy_aws_writes(cost: Any, tmp_path: Path, layout: str, extra: str) -> None:
    """Each priced line maps to resources in the files `deploy aws` wrote for the same project and layout, with
    the quantity the files say; every resource AWS bills has its line; the total is the sum of the lines."""
    from tests.test_deploy_aws import Tf

    (tmp_path / "mlops.toml").write_text(
        '[project]\nname = "wine"\n[data]\npath = "x.csv"\ntarget = "quality"\n[deploy]\nmax_replicas = 4\n' + extra
    )
    run_cli("deploy", "aws", "--layout", layout, cwd=tmp_path)
    tf = Tf(tmp_path / "deploy" / "aws")
    fargate = by_name(cost("--layout", layout, cwd=tmp_path))["fargate"]
    expected = _expected_lines(tf, 720)
    priced = {x["item"]: x for x in fargate["lines"]}
    matched: dict[str, str] = {}
    for item in priced:
        (start,) = [k for k in expected if item.startswith(k)]  # one line of the files' for each priced line
        matched[item] = start
    assert sorted(matched.values()) == sorted(expected)  # and a priced line for each of the files'
    for item, start in matched.items():
        if expected[start] is not None:
            assert priced[item]["quantity"] == pytest.approx(expected[start]), item
    assert fargate["total"] == pytest.approx(math.fsum(x["monthly"] for x in fargate["lines"]), rel=1e-12)
    # every resource type in the files is billed by a line above, or free
    for rtype in tf.types():
        assert rtype in FREE or rtype in BILLED, f"{rtype}: neither priced nor known to be free"
        if rtype in BILLED and rtype not in ("aws_ecs_cluster", "aws_cloudwatch_event_rule"):
            assert any(item.startswith(BILLED[rtype]) for item in priced), rtype


def test_schedules_count_their_runs() -> None:
    from mlopsctl.deploy.cost_targets import runs_per_month

    assert runs_per_month("rate(7 days)", 720) == pytest.approx(720 / 168)
    assert runs_per_month("rate(1 hour)", 720) == 720
    assert runs_per_month("rate(30 minutes)", 720) == 1440
    assert runs_per_month("cron(0 3 * * ? *)", 720) == 30  # daily at 03:00
    assert runs_per_month("cron(0 3 ? * MON *)", 720) == pytest.approx(30 / 7)  # Mondays
    assert runs_per_month("cron(0 3 ? * MON-FRI *)", 720) == pytest.approx(30 * 5 / 7)
    assert runs_per_month("cron(0/15 * * * ? *)", 720) == 30 * 24 * 4
    with pytest.raises(ValueError, match="expected rate"):
        runs_per_month("every day", 720)


def test_the_free_tier_takes_off_what_it_allows_and_no_more(cost: Any) -> None:
    """--free-tier: a negative line after each priced key's lines, of at most the table's allowance and at
    most what the lines use; the bill of a new account (seed 000's receipts came from one)."""
    plain, free = by_name(cost()), by_name(cost("--free-tier"))
    table = load_prices("us-east-1")
    for name in ("fargate", "sagemaker", "serverless", "eks"):
        used: dict[str, float] = {}
        for x in free[name]["lines"]:
            if x["item"].startswith("free tier"):
                allowance = table.value("free_tier", x["price_key"])
                assert 0 < -x["quantity"] <= allowance + 1e-9 and -x["quantity"] <= used[x["price_key"]] + 1e-9
                assert x["unit_price"] == table.price(*x["price_key"].split(".", 1))
            else:
                used[x["price_key"]] = used.get(x["price_key"], 0.0) + x["quantity"]
        assert free[name]["total"] == pytest.approx(math.fsum(x["monthly"] for x in free[name]["lines"]))
        assert free[name]["total"] <= plain[name]["total"]
        assert not [x for x in plain[name]["lines"] if x["item"].startswith("free tier")]
    f = free["fargate"]
    assert line(f, "free tier: 750 ALB-hour")["quantity"] == -720  # all of a 720-hour month
    assert line(f, "free tier: 750 address-hour")["quantity"] == -750  # of 3 × 720
    assert f["subtotals"]["load balancer"] == pytest.approx(0) and f["subtotals"]["compute"] == pytest.approx(8.8866)
    assert line(f, "Fargate vCPU")["monthly"] + line(f, "Fargate memory")["monthly"] == pytest.approx(8.8866)
