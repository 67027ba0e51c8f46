"""The service `deploy aws` writes: ecr.tf, ecs.tf (cluster, task definition, service), alb.tf, autoscaling.tf.

Where the tasks sit depends on the layout (``aws_layout.py``): ``ecs_tf`` and ``alb_tf`` fill it in.
"""

from __future__ import annotations

from mlopsctl.deploy.aws_layout import Layout

ECR_TF = """\
resource "aws_ecr_repository" "this" {
  name                 = var.name
  image_tag_mutability = "IMMUTABLE"
  force_delete         = var.force_destroy # terraform destroy deletes the images only when force_destroy is set

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.this.arn
  }
}

resource "aws_ecr_lifecycle_policy" "this" {
  repository = aws_ecr_repository.this.name

  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "untagged layers of earlier pushes"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = 7
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "keep the last ${var.ecr_keep_images} images"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.ecr_keep_images
        }
        action = { type = "expire" }
      },
    ]
  })
}
"""

ECS_TF = """\
resource "aws_ecs_cluster" "this" {
@CLUSTER_SKIP@  name = var.name

  setting {
    name  = "containerInsights"
    value = var.container_insights
  }
}

resource "aws_cloudwatch_log_group" "service" {
@LOGS_SKIP@  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
}

locals {
  ready_url = "http://127.0.0.1:${var.container_port}/ready"
}

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  skip_destroy             = true # earlier revisions stay registered: a rollback target

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # the root filesystem is read-only; /tmp is this task volume (Fargate ephemeral storage)
  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    {
      name      = local.container_name
      image     = "${aws_ecr_repository.this.repository_url}:${var.image_tag}"
      essential = true
      command = [
        "mlopsctl", "serve", "--host", "0.0.0.0", "--port", tostring(var.container_port),
        "--model", "${var.model_name}@${var.model_alias}",
      ]
      portMappings = [
        { name = "http", containerPort = var.container_port, protocol = "tcp" },
      ]
      environment = [
        { name = "AWS_REGION", value = var.region },
        { name = "HOME", value = "/tmp" },
        { name = "MLOPS_STORE", value = local.store_uri },
        # the server's metrics as CloudWatch EMF log lines: the alarms and the dashboard read them
        { name = "MLOPS_CLOUDWATCH", value = "1" },
        { name = "MLOPS_CLOUDWATCH_NAMESPACE", value = var.metrics_namespace },
        { name = "MLOPS_CLOUDWATCH_SERVICE", value = var.name },
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
      # slim images have no curl: ask /ready with the Python the server runs on
      healthCheck = {
        command = [
          "CMD", "python", "-c",
          "import sys, urllib.request as u; sys.exit(u.urlopen('${local.ready_url}', timeout=4).status != 200)",
        ]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 60
      }
      stopTimeout = 30 # the server flushes captured predictions to the store on SIGTERM
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          "awslogs-group"         = aws_cloudwatch_log_group.service.name
          "awslogs-region"        = var.region
          "awslogs-stream-prefix" = "server"
          "mode"                  = "non-blocking"
          "max-buffer-size"       = "4m"
        }
      }
    },
  ])

  lifecycle {
    precondition {
      condition     = contains(lookup(local.fargate_memory, tostring(var.cpu), []), var.memory)
      error_message = "memory ${var.memory} MiB does not go with cpu ${var.cpu} on Fargate: see local.fargate_memory."
    }
  }
}

# Terraform creates the service and registers task definition revisions; deployments of new
# images register a revision and point the service at it (the GitHub workflow, or
# `aws ecs update-service --task-definition FAMILY`), so Terraform does not move the service
# back: it ignores task_definition. It also ignores desired_count, which the autoscaler owns.
resource "aws_ecs_service" "this" {
@SERVICE_SKIP@  name                               = var.name
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.this.arn
  desired_count                      = var.min_replicas
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  health_check_grace_period_seconds  = 60
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  enable_execute_command             = false
  propagate_tags                     = "SERVICE"

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = @TASK_SUBNETS@
    security_groups  = [aws_security_group.service.id]
    assign_public_ip = @PUBLIC_IP@
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.this.arn
    container_name   = local.container_name
    container_port   = var.container_port
  }

  lifecycle {
    ignore_changes = [task_definition, desired_count]
  }

  # the target group must belong to the load balancer, and the roles must work, before tasks start
  depends_on = [
    aws_lb_listener.http,
    aws_lb_listener.https,
    aws_iam_role_policy.execution,
    aws_iam_role_policy.task,
  ]
}

resource "aws_security_group" "service" {
  name        = "${var.name}-service"
  description = "${var.name} tasks: HTTP from the load balancer, HTTPS out to AWS APIs"
  vpc_id      = aws_vpc.this.id
}

resource "aws_vpc_security_group_ingress_rule" "service_from_alb" {
  security_group_id            = aws_security_group.service.id
  description                  = "the server port, from the load balancer only"
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
  referenced_security_group_id = aws_security_group.alb.id
}

resource "aws_vpc_security_group_egress_rule" "service_https" {
  security_group_id = aws_security_group.service.id
  description       = "HTTPS to AWS APIs: S3 (endpoint), ECR, CloudWatch Logs (@EGRESS@)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}
"""

ALB_TF = """\
resource "aws_lb" "this" {
  # Access logs are off: the server's metrics, the ALB's CloudWatch metrics and the captured
  # predictions already record each request. No WAF: AWS's common rule set blocks request bodies
  # over 8 KB, which batch /predict requests exceed; attach a web ACL tuned for this API.
  # checkov:skip=CKV_AWS_91: access logs off: metrics and captured predictions record requests
  # checkov:skip=CKV2_AWS_28: no WAF: the common rule set blocks batch /predict bodies over 8 KB
@ALB_SKIP@  name                       = var.name
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = aws_subnet.public[*].id
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection
  idle_timeout               = 60
}

resource "aws_lb_target_group" "this" {
  # checkov:skip=CKV_AWS_378: TLS ends at the load balancer; HTTP to the tasks stays in the VPC
  name                 = var.name
  port                 = var.container_port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = aws_vpc.this.id
  deregistration_delay = 30

  health_check {
    enabled             = true
    path                = "/ready"
    matcher             = "200"
    protocol            = "HTTP"
    port                = "traffic-port"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

# Port 80 forwards to the service while there is no certificate, and redirects to HTTPS once
# certificate_arn is set.
resource "aws_lb_listener" "http" {
  # checkov:skip=CKV_AWS_2: HTTP until certificate_arn is set, then it only redirects to HTTPS
  # checkov:skip=CKV_AWS_103: no TLS on port 80; the HTTPS listener sets a TLS 1.2/1.3 policy
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type             = local.https ? "redirect" : "forward"
    target_group_arn = local.https ? null : aws_lb_target_group.this.arn

    dynamic "redirect" {
      for_each = local.https ? [1] : []
      content {
        port        = "443"
        protocol    = "HTTPS"
        status_code = "HTTP_301"
      }
    }
  }
}

resource "aws_lb_listener" "https" {
  count             = local.https ? 1 : 0
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this.arn
  }
}

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "${var.name} load balancer: HTTP(S) from allowed_cidrs, to the tasks' port"
  vpc_id      = aws_vpc.this.id
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  # checkov:skip=CKV_AWS_260: a public API: port 80 open to allowed_cidrs, HTTPS-only with a cert
  for_each          = toset(var.allowed_cidrs)
  security_group_id = aws_security_group.alb.id
  description       = "HTTP from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each          = local.https ? toset(var.allowed_cidrs) : toset([])
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "alb_to_service" {
  security_group_id            = aws_security_group.alb.id
  description                  = "to the tasks' server port only"
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
  referenced_security_group_id = aws_security_group.service.id
}
"""

AUTOSCALING_TF = """\
resource "aws_appautoscaling_target" "this" {
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.this.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_replicas
  max_capacity       = var.max_replicas

  lifecycle {
    precondition {
      condition     = var.min_replicas <= var.max_replicas
      error_message = "min_replicas (${var.min_replicas}) is above max_replicas (${var.max_replicas})."
    }
  }
}

# Two target-tracking policies: the service scales out when either asks for more tasks and in
# only when both allow it.
resource "aws_appautoscaling_policy" "cpu" {
  name               = "${var.name}-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.cpu_target_percent
    scale_out_cooldown = 60
    scale_in_cooldown  = 300

    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}

resource "aws_appautoscaling_policy" "requests" {
  name               = "${var.name}-requests"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value       = var.requests_per_target
    scale_out_cooldown = 60
    scale_in_cooldown  = 300

    predefined_metric_specification {
      predefined_metric_type = "ALBRequestCountPerTarget"
      resource_label         = "${aws_lb.this.arn_suffix}/${aws_lb_target_group.this.arn_suffix}"
    }
  }
}
"""


def task_network(layout: Layout) -> tuple[str, str]:
    """(subnets, assign_public_ip) of the tasks, as HCL."""
    if layout.tasks_public_ip:
        return "aws_subnet.public[*].id", "true"
    return "aws_subnet.private[*].id", "false"


def ecs_tf(layout: Layout, log_retention_days: int) -> str:
    """ecs.tf for a layout; checkov's checks for what the layout turns off are skipped with the reason."""
    subnets, public = task_network(layout)
    cluster = (
        "  # checkov:skip=CKV_AWS_65: minimal layout: Insights off (38 metrics, $11.40/month); the server"
        " sends its own\n"
        if layout.container_insights == "disabled"
        else ""
    )
    logs = (
        f"  # checkov:skip=CKV_AWS_338: kept {log_retention_days} days ([deploy] log_retention_days);"
        " metrics and capture outlive them\n"
        if log_retention_days < 365
        else ""
    )
    skip = (
        "  # A public IP per task instead of a NAT gateway ($32.40 a month): the security group admits\n"
        "  # the load balancer only, on the server port.\n"
        "  # checkov:skip=CKV_AWS_333: minimal layout: a public IP reaches ECR and logs; only the ALB gets in\n"
        if layout.tasks_public_ip
        else ""
    )
    return (
        ECS_TF.replace("@SERVICE_SKIP@", skip)
        .replace("@CLUSTER_SKIP@", cluster)
        .replace("@LOGS_SKIP@", logs)
        .replace("@TASK_SUBNETS@", subnets)
        .replace("@PUBLIC_IP@", public)
        .replace("@EGRESS@", "public IP" if layout.tasks_public_ip else "NAT")
    )


def alb_tf(deletion_protection: bool) -> str:
    """alb.tf; with deletion protection off by default, checkov's check for it is skipped with the reason."""
    skip = (
        ""
        if deletion_protection
        else "  # checkov:skip=CKV_AWS_150: deletion_protection = false ([deploy]): terraform destroy works as it is\n"
    )
    return ALB_TF.replace("@ALB_SKIP@", skip)
