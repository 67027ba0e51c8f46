"""What `deploy aws` writes to watch the service and hand its names on: monitoring.tf (alarms), dashboard.tf,
budget.tf, outputs.tf."""

from __future__ import annotations

from mlopsctl.deploy.aws_layout import AlarmSpec, Layout

_TOPIC = """\
resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = aws_kms_key.this.arn
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.alarm_email != "" ? 1 : 0
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# who may publish: CloudWatch alarms and AWS Budgets of this account (the key policy lets both encrypt)
resource "aws_sns_topic_policy" "alarms" {
  arn    = aws_sns_topic.alarms.arn
  policy = data.aws_iam_policy_document.alarm_topic.json
}

data "aws_iam_policy_document" "alarm_topic" {
  statement {
    sid = "TheAccountManagesTheTopic"
    actions = [
      "sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:AddPermission", "sns:RemovePermission",
      "sns:DeleteTopic", "sns:Subscribe", "sns:ListSubscriptionsByTopic", "sns:Publish",
    ]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "BudgetsPublish"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alarms.arn]

    principals {
      type        = "Service"
      identifiers = ["budgets.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:budgets::${local.account_id}:*"]
    }
  }
}

locals {
  # the dimensions of the server's metrics: EMF log lines the server writes every minute
  # (MLOPS_CLOUDWATCH in ecs.tf), one per model it serves
  server_metrics = {
    Service = var.name
    Model   = var.model_name
  }
}
"""

_LATENCY = """\
# p95 of the server's answer time over each minute: each task reports its own, the alarm takes the slowest
resource "aws_cloudwatch_metric_alarm" "latency" {
  alarm_name          = "${var.name}-p95-latency"
  alarm_description   = "${var.name}: p95 over ${var.alarm_p95_latency_ms} ms for ${var.alarm_latency_minutes} min."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_p95_latency_ms
  evaluation_periods  = var.alarm_latency_minutes
  datapoints_to_alarm = var.alarm_latency_minutes
  treat_missing_data  = "notBreaching"
  namespace           = var.metrics_namespace
  metric_name         = "LatencyP95"
  statistic           = "Maximum"
  period              = 60
  dimensions          = local.server_metrics
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}
"""

_ERRORS = """\
# 5xx answers per request of the server, in percent, each minute. No traffic is no alarm.
resource "aws_cloudwatch_metric_alarm" "errors" {
  alarm_name          = "${var.name}-5xx-rate"
  alarm_description   = "${var.name}: over ${var.alarm_5xx_rate_percent} % 5xx for ${var.alarm_5xx_minutes} min."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_5xx_rate_percent
  evaluation_periods  = var.alarm_5xx_minutes
  datapoints_to_alarm = var.alarm_5xx_minutes
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  metric_query {
    id          = "rate"
    expression  = "IF(requests > 0, 100 * errors / requests, 0)"
    label       = "5xx answers per request (%)"
    return_data = true
  }

  metric_query {
    id = "errors"

    metric {
      namespace   = var.metrics_namespace
      metric_name = "Errors5xx"
      period      = 60
      stat        = "Sum"
      dimensions  = local.server_metrics
    }
  }

  metric_query {
    id = "requests"

    metric {
      namespace   = var.metrics_namespace
      metric_name = "Requests"
      period      = 60
      stat        = "Sum"
      dimensions  = local.server_metrics
    }
  }
}
"""

_SILENCE = """\
# Every task reports its requests each minute, 0 included: a quiet service sums to 0, a dead one
# reports nothing. Both fire (missing data is breaching).
resource "aws_cloudwatch_metric_alarm" "silence" {
  alarm_name          = "${var.name}-no-invocations"
  alarm_description   = "${var.name}: no prediction request for ${var.alarm_no_invocations_minutes} min."
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  evaluation_periods  = 1
  treat_missing_data  = "breaching"
  namespace           = var.metrics_namespace
  metric_name         = "Requests"
  statistic           = "Sum"
  period              = var.alarm_no_invocations_minutes * 60
  dimensions          = local.server_metrics
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}
"""

_DRIFT = """\
# the share of drifted features in the served model's latest drift report (`mlopsctl drift` writes it)
resource "aws_cloudwatch_metric_alarm" "drift" {
  alarm_name          = "${var.name}-drift-share"
  alarm_description   = "${var.name}: over ${var.alarm_drift_share * 100} % of the features drifted."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_drift_share
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  namespace           = var.metrics_namespace
  metric_name         = "DriftShare"
  statistic           = "Maximum"
  period              = 300
  dimensions          = local.server_metrics
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}
"""

_ACCURACY = """\
# live accuracy of the predictions that got feedback, judged once the task holds enough labels
resource "aws_cloudwatch_metric_alarm" "accuracy" {
  alarm_name          = "${var.name}-live-accuracy"
  alarm_description   = "${var.name}: live accuracy under ${var.alarm_accuracy_min}."
  comparison_operator = "LessThanThreshold"
  threshold           = var.alarm_accuracy_min
  evaluation_periods  = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  metric_query {
    id          = "judged"
    expression  = "IF(labelled >= ${var.alarm_accuracy_min_samples}, accuracy, 1)"
    label       = "live accuracy (1 until enough labels)"
    return_data = true
  }

  metric_query {
    id = "accuracy"

    metric {
      namespace   = var.metrics_namespace
      metric_name = "LiveAccuracy"
      period      = 300
      stat        = "Minimum"
      dimensions  = local.server_metrics
    }
  }

  metric_query {
    id = "labelled"

    metric {
      namespace   = var.metrics_namespace
      metric_name = "LiveLabelled"
      period      = 300
      stat        = "Minimum"
      dimensions  = local.server_metrics
    }
  }
}
"""

_UNHEALTHY = """\
resource "aws_cloudwatch_metric_alarm" "unhealthy" {
  alarm_name          = "${var.name}-unhealthy-hosts"
  alarm_description   = "A task of ${var.name} failed its /ready health check for 3 minutes."
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  treat_missing_data  = "notBreaching"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "UnHealthyHostCount"
  statistic           = "Maximum"
  period              = 60
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  dimensions = {
    LoadBalancer = aws_lb.this.arn_suffix
    TargetGroup  = aws_lb_target_group.this.arn_suffix
  }
}
"""

ALARM_TEXTS = {
    "latency": _LATENCY,
    "errors": _ERRORS,
    "silence": _SILENCE,
    "drift": _DRIFT,
    "accuracy": _ACCURACY,
    "unhealthy": _UNHEALTHY,
}


def monitoring_tf(alarms: list[AlarmSpec]) -> str:
    """monitoring.tf: the topic, who may publish to it, and the alarms (``aws_layout.alarms_written``)."""
    return _TOPIC + "".join("\n" + ALARM_TEXTS[a.key] for a in alarms)


_DASHBOARD = """\
# One page for the service: the server's own figures (its EMF metrics), the load balancer's and the
# tasks' (free ECS service metrics), and the alarms.
locals {
  server_dims = ["Service", var.name, "Model", var.model_name]
  alb_dims    = ["LoadBalancer", aws_lb.this.arn_suffix]
  ecs_dims    = ["ClusterName", aws_ecs_cluster.this.name, "ServiceName", aws_ecs_service.this.name]
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name
  dashboard_body = jsonencode({
    widgets = [
      {
        type   = "metric"
        x      = 0
        y      = 0
        width  = 12
        height = 6

        properties = {
          region = var.region
          view   = "timeSeries"
          title  = "Prediction requests and 5xx, a minute"
          period = 60
          stat   = "Sum"
          metrics = [
            concat([var.metrics_namespace, "Requests"], local.server_dims),
            concat([var.metrics_namespace, "Errors5xx"], local.server_dims),
          ]
        }
      },
      {
        type   = "metric"
        x      = 12
        y      = 0
        width  = 12
        height = 6

        properties = {
          region = var.region
          view   = "timeSeries"
          title  = "p95 latency (ms), slowest task"
          period = 60
          stat   = "Maximum"
          metrics = [
            concat([var.metrics_namespace, "LatencyP95"], local.server_dims),
          ]

          annotations = {
            horizontal = [{ label = "alarm", value = var.alarm_p95_latency_ms }]
          }
        }
      },
      {
        type   = "metric"
        x      = 0
        y      = 6
        width  = 12
        height = 6

        properties = {
          region = var.region
          view   = "timeSeries"
          title  = "Drift share of the latest report"
          period = 300
          stat   = "Maximum"
          metrics = [
            concat([var.metrics_namespace, "DriftShare"], local.server_dims),
          ]

          annotations = {
            horizontal = [{ label = "alarm", value = var.alarm_drift_share }]
          }
        }
      },
      {
        type   = "metric"
        x      = 12
        y      = 6
        width  = 12
        height = 6

        properties = {
          region = var.region
          view   = "timeSeries"
          title  = "Live accuracy (lowest task) and labels"
          period = 300
          metrics = [
            concat([var.metrics_namespace, "LiveAccuracy"], local.server_dims, [{ stat = "Minimum" }]),
            concat([var.metrics_namespace, "LiveLabelled"], local.server_dims, [{ stat = "Sum", yAxis = "right" }]),
          ]
        }
      },
      {
        type   = "metric"
        x      = 0
        y      = 12
        width  = 12
        height = 6

        properties = {
          region = var.region
          view   = "timeSeries"
          title  = "Load balancer"
          period = 60
          metrics = [
            concat(["AWS/ApplicationELB", "RequestCount"], local.alb_dims, [{ stat = "Sum" }]),
            concat(["AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count"], local.alb_dims, [{ stat = "Sum" }]),
            concat(["AWS/ApplicationELB", "TargetResponseTime"], local.alb_dims, [{ stat = "p95", yAxis = "right" }]),
          ]
        }
      },
      {
        type   = "metric"
        x      = 12
        y      = 12
        width  = 12
        height = 6

        properties = {
          region = var.region
          view   = "timeSeries"
          title  = "Tasks: CPU and memory (%)"
          period = 60
          stat   = "Average"
          metrics = [
            concat(["AWS/ECS", "CPUUtilization"], local.ecs_dims),
            concat(["AWS/ECS", "MemoryUtilization"], local.ecs_dims),
          ]
        }
      },
      {
        type   = "alarm"
        x      = 0
        y      = 18
        width  = 24
        height = 3

        properties = {
          title  = "Alarms"
          alarms = @ALARM_ARNS@
        }
      },
    ]
  })
}
"""


def dashboard_tf(alarms: list[AlarmSpec]) -> str:
    """The dashboard: the server's metrics, the load balancer's, the tasks', and the alarms' states."""
    arns = "[" + ", ".join(f"aws_cloudwatch_metric_alarm.{a.key}.arn" for a in alarms) + "]"
    return _DASHBOARD.replace("@ALARM_ARNS@", arns)


BUDGET_TF = """\
# The month's cost against monthly_budget_usd: the alarm topic (and alarm_email) hear at 80 % of it
# spent and when the forecast passes it. AWS updates the figures a few times a day.
resource "aws_budgets_budget" "monthly" {
  name         = "${var.name}-monthly"
  budget_type  = "COST"
  limit_amount = format("%.2f", var.monthly_budget_usd)
  limit_unit   = "USD"
  time_unit    = "MONTHLY"

  dynamic "cost_filter" {
    for_each = var.budget_by_service_tag ? [1] : []
    content {
      name   = "TagKeyValue"
      values = [format("user:Service$%s", var.name)]
    }
  }

  notification {
    comparison_operator        = "GREATER_THAN"
    threshold                  = 80
    threshold_type             = "PERCENTAGE"
    notification_type          = "ACTUAL"
    subscriber_sns_topic_arns  = [aws_sns_topic.alarms.arn]
    subscriber_email_addresses = var.alarm_email != "" ? [var.alarm_email] : []
  }

  notification {
    comparison_operator        = "GREATER_THAN"
    threshold                  = 100
    threshold_type             = "PERCENTAGE"
    notification_type          = "FORECASTED"
    subscriber_sns_topic_arns  = [aws_sns_topic.alarms.arn]
    subscriber_email_addresses = var.alarm_email != "" ? [var.alarm_email] : []
  }

  depends_on = [aws_sns_topic_policy.alarms]
}
"""

OUTPUTS_TF = """\
output "url" {
  description = "The service's address (the load balancer)."
  value       = "${local.https ? "https" : "http"}://${aws_lb.this.dns_name}"
}

output "bucket" {
  description = "The store bucket."
  value       = aws_s3_bucket.store.bucket
}

output "store_uri" {
  description = "The store, for MLOPS_STORE or --store: publish and promote here."
  value       = local.store_uri
}

output "aws_region" {
  description = "The region of every resource."
  value       = var.region
}

output "ecr_repository_url" {
  description = "Push the server image here (docker push URL:TAG)."
  value       = aws_ecr_repository.this.repository_url
}

output "ecs_cluster_name" {
  description = "The ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "ecs_service_name" {
  description = "The ECS service."
  value       = aws_ecs_service.this.name
}

output "ecs_task_family" {
  description = "The task definition family: a deployment registers a revision of it with the new image."
  value       = aws_ecs_task_definition.this.family
}

output "container_name" {
  description = "The container in the task definition whose image a deployment replaces."
  value       = local.container_name
}

output "task_definition_arn" {
  description = "The revision Terraform registered last (roll it out with aws ecs update-service)."
  value       = aws_ecs_task_definition.this.arn
}

output "github_actions_role_arn" {
  description = "The role GitHub Actions assumes (empty without github_repository)."
  value       = local.github ? aws_iam_role.github[0].arn : ""
}

output "pointer_parameter_name" {
  description = "The SSM parameter mlopsctl mirrors the served alias into."
  value       = aws_ssm_parameter.pointer.name
}

output "alarm_topic_arn" {
  description = "The SNS topic the alarms notify: subscribe more endpoints to it."
  value       = aws_sns_topic.alarms.arn
}

output "dashboard_url" {
  description = "The service's CloudWatch dashboard."
  value = format(
    "https://%s.console.aws.amazon.com/cloudwatch/home?region=%s#dashboards/dashboard/%s",
    var.region, var.region, aws_cloudwatch_dashboard.this.dashboard_name,
  )
}

output "budget_name" {
  description = "The AWS budget that warns the alarm topic."
  value       = aws_budgets_budget.monthly.name
}

output "github_plan_role_arn" {
  description = "The read-only role pull requests' terraform plan assumes (empty without github_repository)."
  value       = local.github ? aws_iam_role.github_plan[0].arn : ""
}

output "retrain_task_family" {
  description = "The retraining task (aws ecs run-task --task-definition FAMILY runs it now)."
  value       = aws_ecs_task_definition.retrain.family
}

output "retrain_image" {
  description = "Push the training image here (Dockerfile.train of mlopsctl deploy docker)."
  value       = "${aws_ecr_repository.this.repository_url}:${local.retrain_image_tag}"
}

output "task_subnets" {
  description = "The subnets the tasks run in (aws ecs run-task --network-configuration)."
  value       = @TASK_SUBNETS@
}

output "retrain_security_group" {
  description = "The retraining task's security group (aws ecs run-task --network-configuration)."
  value       = aws_security_group.retrain.id
}

output "log_group_name" {
  description = "The servers' logs (aws logs tail --follow NAME)."
  value       = aws_cloudwatch_log_group.service.name
}
"""


def outputs_tf(layout: Layout) -> str:
    from mlopsctl.deploy.aws_tf_service import task_network

    return OUTPUTS_TF.replace("@TASK_SUBNETS@", task_network(layout)[0])
