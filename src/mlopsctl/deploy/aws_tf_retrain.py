"""Scheduled retraining `deploy aws` writes: retrain.tf (a task definition for the training image, an
EventBridge rule that runs it, off unless ``retrain_schedule_enabled``, and the roles both need).

The task runs ``mlopsctl retrain --if <retrain_trigger>`` from the image that `mlopsctl deploy docker`
writes as ``Dockerfile.train`` (the project inside, the same pinned versions as the server), against the
S3 store. Its role may write the store (a retraining publishes and promotes); the servers' may not.
"""

from __future__ import annotations

from mlopsctl.deploy.aws_layout import Layout
from mlopsctl.deploy.aws_tf_service import task_network

RETRAIN_TF = """\
locals {
  retrain_image_tag = var.retrain_image_tag != "" ? var.retrain_image_tag : "train-${var.image_tag}"
}

resource "aws_ecs_task_definition" "retrain" {
  family                   = "${var.name}-retrain"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.retrain_cpu
  memory                   = var.retrain_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.retrain.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    {
      name      = "retrain"
      image     = "${aws_ecr_repository.this.repository_url}:${local.retrain_image_tag}"
      essential = true
      command   = ["mlopsctl", "retrain", "--if", var.retrain_trigger]
      environment = [
        { name = "AWS_REGION", value = var.region },
        { name = "HOME", value = "/tmp" },
        { name = "MLOPS_STORE", value = local.store_uri },
        { name = "MLOPS_ACTOR", value = "ecs/${var.name}-retrain" },
        { name = "PYTHONDONTWRITEBYTECODE", value = "1" },
        { name = "PYTHONUNBUFFERED", value = "1" },
      ]
      user                   = var.container_user
      readonlyRootFilesystem = true
      mountPoints = [
        { sourceVolume = "tmp", containerPath = "/tmp", readOnly = false },
      ]
      linuxParameters = {
        initProcessEnabled = true
        capabilities       = { drop = ["ALL"] }
      }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          "awslogs-group"         = aws_cloudwatch_log_group.service.name
          "awslogs-region"        = var.region
          "awslogs-stream-prefix" = "retrain"
        }
      }
    },
  ])

  lifecycle {
    precondition {
      condition     = contains(lookup(local.fargate_memory, tostring(var.retrain_cpu), []), var.retrain_memory)
      error_message = "retrain_memory ${var.retrain_memory} MiB does not go with retrain_cpu ${var.retrain_cpu}."
    }
  }
}

resource "aws_cloudwatch_event_rule" "retrain" {
  name                = "${var.name}-retrain"
  description         = "Runs mlopsctl retrain --if ${var.retrain_trigger} for ${var.name}."
  schedule_expression = var.retrain_schedule
  state               = var.retrain_schedule_enabled ? "ENABLED" : "DISABLED"
}

resource "aws_cloudwatch_event_target" "retrain" {
  rule     = aws_cloudwatch_event_rule.retrain.name
  arn      = aws_ecs_cluster.this.arn
  role_arn = aws_iam_role.retrain_schedule.arn

  ecs_target {
    task_definition_arn = aws_ecs_task_definition.retrain.arn_without_revision
    launch_type         = "FARGATE"
    platform_version    = "LATEST"
    task_count          = 1

    network_configuration {
      subnets          = @TASK_SUBNETS@
      security_groups  = [aws_security_group.retrain.id]
      assign_public_ip = @PUBLIC_IP@
    }
  }
}

resource "aws_security_group" "retrain" {
  name        = "${var.name}-retrain"
  description = "${var.name} retraining task: no inbound traffic, HTTPS out to AWS APIs"
  vpc_id      = aws_vpc.this.id
}

resource "aws_vpc_security_group_egress_rule" "retrain_https" {
  security_group_id = aws_security_group.retrain.id
  description       = "HTTPS to AWS APIs: S3, ECR, CloudWatch Logs, SSM"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# -- what EventBridge may do: start this task, handing it its two roles -------------------------
resource "aws_iam_role" "retrain_schedule" {
  name               = "${var.name}-retrain-schedule"
  assume_role_policy = data.aws_iam_policy_document.retrain_schedule_assume.json
}

data "aws_iam_policy_document" "retrain_schedule_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role_policy" "retrain_schedule" {
  name   = "run-the-retraining-task"
  role   = aws_iam_role.retrain_schedule.id
  policy = data.aws_iam_policy_document.retrain_schedule.json
}

data "aws_iam_policy_document" "retrain_schedule" {
  statement {
    sid       = "RunTheRetrainingTask"
    actions   = ["ecs:RunTask"]
    resources = ["${aws_ecs_task_definition.retrain.arn_without_revision}:*"]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [aws_ecs_cluster.this.arn]
    }
  }

  statement {
    sid       = "HandItsRolesToEcs"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.execution.arn, aws_iam_role.retrain.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}

# -- what the retraining task may do: train from the store, publish, promote ---------------------
resource "aws_iam_role" "retrain" {
  name               = "${var.name}-retrain"
  assume_role_policy = data.aws_iam_policy_document.task_assume.json
}

resource "aws_iam_role_policy" "retrain" {
  name   = "train-publish-promote"
  role   = aws_iam_role.retrain.id
  policy = data.aws_iam_policy_document.retrain.json
}

data "aws_iam_policy_document" "retrain" {
  statement {
    sid       = "ListTheStorePrefix"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.store.arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.store_prefix}/*"]
    }
  }

  statement {
    sid       = "TrainPublishPromote"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${aws_s3_bucket.store.arn}/${local.store_prefix}/*"]
  }

  statement {
    sid       = "TheStoreKeyThroughS3"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.region}.amazonaws.com"]
    }
  }

  statement {
    sid       = "MirrorTheAliasToSsm"
    actions   = ["ssm:GetParameter", "ssm:PutParameter"]
    resources = [aws_ssm_parameter.pointer.arn]
  }
}
"""


def retrain_tf(layout: Layout) -> str:
    subnets, public = task_network(layout)
    return RETRAIN_TF.replace("@TASK_SUBNETS@", subnets).replace("@PUBLIC_IP@", public)
