"""The permissions `deploy aws` writes: iam.tf (execution, task and GitHub Actions roles; the retraining
task's are in retrain.tf).

The task role is the one that matters: the servers read the whole store prefix and write only
what a server writes (docs/store.md): captured predictions and feedback, and, for the A/B
canary guard, deployments, experiment records and history events, by conditional writes only.
Model versions and aliases are never writable from a task.
"""

from __future__ import annotations

IAM_TF = """\
# -- execution role: what ECS needs to start the task (pull the image, write its logs) ----------
resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.execution_assume.json
}

data "aws_iam_policy_document" "execution_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-image-write-logs"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"] # account-wide by design: it has no resource
    resources = ["*"]
  }

  statement {
    sid       = "PullTheServerImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [aws_ecr_repository.this.arn]
  }

  statement {
    sid       = "WriteTheServiceLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.service.arn}:*"]
  }
}

# -- task role: what the server itself may do --------------------------------------------------
resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.task_assume.json
}

data "aws_iam_policy_document" "task_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${var.region}:${local.account_id}:*"]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  name   = "read-store-write-capture"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}

data "aws_iam_policy_document" "task" {
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
    sid       = "ReadTheStore"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.store.arn}/${local.store_prefix}/*"]
  }

  statement {
    sid     = "WriteCapturedPredictionsAndFeedback"
    actions = ["s3:PutObject"]
    resources = [
      "${aws_s3_bucket.store.arn}/${local.store_prefix}/capture/*",
      "${aws_s3_bucket.store.arn}/${local.store_prefix}/feedback/*",
    ]
  }

  # a server never publishes, promotes or approves: whatever else is allowed, not these
  statement {
    sid     = "NeverTheRegistry"
    effect  = "Deny"
    actions = ["s3:PutObject", "s3:DeleteObject"]
    resources = [
      "${aws_s3_bucket.store.arn}/${local.store_prefix}/models/*/versions/*",
      "${aws_s3_bucket.store.arn}/${local.store_prefix}/models/*/aliases/*",
      "${aws_s3_bucket.store.arn}/${local.store_prefix}/models/*/approvals/*",
    ]
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
}

# The A/B canary guard in each server pulls a failing candidate back: it moves the deployment
# and the experiment record by compare-and-swap and appends a history event. S3 checks that
# every such write is conditional (If-Match or If-None-Match), so a server can create a history
# event but never rewrite one, and can only replace a deployment it has read.
resource "aws_iam_role_policy" "task_guard" {
  count  = var.canary_guard_writes ? 1 : 0
  name   = "canary-guard-conditional-writes"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task_guard.json
}

data "aws_iam_policy_document" "task_guard" {
  statement {
    sid       = "AppendHistoryEvents"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.store.arn}/${local.store_prefix}/models/*/history/*"]

    condition {
      test     = "Null"
      variable = "s3:if-none-match"
      values   = ["false"]
    }
  }

  statement {
    sid     = "CreateDeploymentsAndExperimentRecords"
    actions = ["s3:PutObject"]
    resources = [
      "${aws_s3_bucket.store.arn}/${local.store_prefix}/deployments/*",
      "${aws_s3_bucket.store.arn}/${local.store_prefix}/experiments/*",
    ]

    condition {
      test     = "Null"
      variable = "s3:if-none-match"
      values   = ["false"]
    }
  }

  statement {
    sid     = "SwapDeploymentsAndExperimentRecords"
    actions = ["s3:PutObject"]
    resources = [
      "${aws_s3_bucket.store.arn}/${local.store_prefix}/deployments/*",
      "${aws_s3_bucket.store.arn}/${local.store_prefix}/experiments/*",
    ]

    condition {
      test     = "Null"
      variable = "s3:if-match"
      values   = ["false"]
    }
  }
}

# Capture compaction in the servers ([monitoring.capture] compact_in_server): a server writes an hour's
# Parquet only if it does not exist (If-None-Match), takes and renews the compaction lease only by
# conditional writes, and deletes the JSON lines of capture/ it has verified in the Parquet.
resource "aws_iam_role_policy" "task_compaction" {
  count  = var.capture_compaction_writes ? 1 : 0
  name   = "capture-compaction"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task_compaction.json
}

data "aws_iam_policy_document" "task_compaction" {
  statement {
    sid       = "CreateCompactedCapture"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.store.arn}/${local.store_prefix}/capture-parquet/*"]

    condition {
      test     = "Null"
      variable = "s3:if-none-match"
      values   = ["false"]
    }
  }

  statement {
    sid       = "CreateTheCompactionLease"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.store.arn}/${local.store_prefix}/leases/*"]

    condition {
      test     = "Null"
      variable = "s3:if-none-match"
      values   = ["false"]
    }
  }

  statement {
    sid       = "SwapTheCompactionLease"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.store.arn}/${local.store_prefix}/leases/*"]

    condition {
      test     = "Null"
      variable = "s3:if-match"
      values   = ["false"]
    }
  }

  statement {
    sid       = "DeleteCompactedJsonLines"
    actions   = ["s3:DeleteObject"]
    resources = ["${aws_s3_bucket.store.arn}/${local.store_prefix}/capture/*"]
  }
}

# -- GitHub Actions (optional): push images, deploy revisions, publish and promote ---------------
resource "aws_iam_openid_connect_provider" "github" {
  count          = local.github && var.github_oidc_provider_arn == "" ? 1 : 0
  url            = "https://token.actions.githubusercontent.com"
  client_id_list = ["sts.amazonaws.com"]
}

locals {
  github_oidc_created      = one(aws_iam_openid_connect_provider.github[*].arn)
  github_oidc_provider_arn = local.github ? coalesce(var.github_oidc_provider_arn, local.github_oidc_created) : ""
}

resource "aws_iam_role" "github" {
  count                = local.github ? 1 : 0
  name                 = "${var.name}-github-actions"
  assume_role_policy   = data.aws_iam_policy_document.github_assume[0].json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "github_assume" {
  count = local.github ? 1 : 0

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [local.github_oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = [for s in var.github_subjects : "repo:${var.github_repository}:${s}"]
    }
  }
}

resource "aws_iam_role_policy" "github" {
  count  = local.github ? 1 : 0
  name   = "push-deploy-publish"
  role   = aws_iam_role.github[0].id
  policy = data.aws_iam_policy_document.github.json
}

data "aws_iam_policy_document" "github" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"] # account-wide by design: it has no resource
    resources = ["*"]
  }

  statement {
    sid = "PushTheServerImage"
    actions = [
      "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:CompleteLayerUpload", "ecr:DescribeImages",
      "ecr:GetDownloadUrlForLayer", "ecr:InitiateLayerUpload", "ecr:PutImage", "ecr:UploadLayerPart",
    ]
    resources = [aws_ecr_repository.this.arn]
  }

  statement {
    sid       = "RegisterTaskDefinitionRevisions"
    actions   = ["ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition"] # no resource-level permissions
    resources = ["*"]
  }

  statement {
    sid       = "DeployTheService"
    actions   = ["ecs:DescribeServices", "ecs:UpdateService"]
    resources = [aws_ecs_service.this.id]
  }

  statement {
    sid       = "HandTheRolesToEcsOnly"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.execution.arn, aws_iam_role.task.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

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

# -- pull requests (optional): `terraform plan` reads what exists, changes nothing -----------------
resource "aws_iam_role" "github_plan" {
  count                = local.github ? 1 : 0
  name                 = "${var.name}-github-plan"
  assume_role_policy   = data.aws_iam_policy_document.github_plan_assume[0].json
  max_session_duration = 3600
}

data "aws_iam_policy_document" "github_plan_assume" {
  count = local.github ? 1 : 0

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [local.github_oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }

    # pull requests of branches in the repository (GitHub gives forks' pull requests no token)
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:sub"
      values   = ["repo:${var.github_repository}:pull_request"]
    }
  }
}

resource "aws_iam_role_policy_attachment" "github_plan" {
  count      = local.github ? 1 : 0
  role       = aws_iam_role.github_plan[0].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/ReadOnlyAccess"
}
"""
