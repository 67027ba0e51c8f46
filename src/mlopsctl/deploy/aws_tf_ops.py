"""What `deploy aws` writes to watch the service and hand its names on: monitoring.tf, outputs.tf."""

from __future__ import annotations

MONITORING_TF = """\
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

# 5xx answers per request, from the tasks and from the load balancer itself (502/503/504 when no
# task answers), in percent. No traffic is no alarm.
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
    expression  = "100 * (FILL(target5xx, 0) + FILL(elb5xx, 0)) / FILL(requests, 1)"
    label       = "5xx answers per request (%)"
    return_data = true
  }

  metric_query {
    id = "target5xx"

    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_Target_5XX_Count"
      period      = 60
      stat        = "Sum"
      dimensions = {
        LoadBalancer = aws_lb.this.arn_suffix
      }
    }
  }

  metric_query {
    id = "elb5xx"

    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "HTTPCode_ELB_5XX_Count"
      period      = 60
      stat        = "Sum"
      dimensions = {
        LoadBalancer = aws_lb.this.arn_suffix
      }
    }
  }

  metric_query {
    id = "requests"

    metric {
      namespace   = "AWS/ApplicationELB"
      metric_name = "RequestCount"
      period      = 60
      stat        = "Sum"
      dimensions = {
        LoadBalancer = aws_lb.this.arn_suffix
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "latency" {
  alarm_name          = "${var.name}-p95-latency"
  alarm_description   = "${var.name}: p95 over ${var.alarm_p95_latency_ms} ms for ${var.alarm_latency_minutes} min."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_p95_latency_ms / 1000
  evaluation_periods  = var.alarm_latency_minutes
  datapoints_to_alarm = var.alarm_latency_minutes
  treat_missing_data  = "notBreaching"
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  extended_statistic  = "p95"
  period              = 60
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  dimensions = {
    LoadBalancer = aws_lb.this.arn_suffix
    TargetGroup  = aws_lb_target_group.this.arn_suffix
  }
}

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

output "log_group_name" {
  description = "The servers' logs (aws logs tail --follow NAME)."
  value       = aws_cloudwatch_log_group.service.name
}
"""
