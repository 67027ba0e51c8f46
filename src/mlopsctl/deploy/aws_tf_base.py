"""The foundation `deploy aws` writes: versions.tf, main.tf (provider, shared names), kms.tf, network.tf.

Texts are Terraform as a person would write it, already ``terraform fmt``-clean. Checks of
checkov that do not apply carry their reason inline (``# checkov:skip=ID: reason``). The network
depends on the layout (``aws_layout.py``): ``network_tf`` puts the pieces together.
"""

from __future__ import annotations

from mlopsctl.deploy.aws_layout import Layout

VERSIONS_TF = """\
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.81"
    }
  }

  # Keep the state in S3 once more than one person applies (create that bucket first):
  # backend "s3" {
  #   bucket       = "my-terraform-state"
  #   key          = "SERVICE/terraform.tfstate"
  #   region       = "us-east-1"
  #   use_lockfile = true
  # }
}
"""

MAIN_TF = """\
provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      Service   = var.name
      ManagedBy = "terraform"
      CreatedBy = "mlopsctl"
    })
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

# the region's standard zones (no Local or Wavelength Zones), in name order; the first az_count
# are used unless availability_zones names them
data "aws_availability_zones" "available" {
  # checkov:skip=CKV_AWS_394: zones are pinned: availability_zones, else the first az_count by name
  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  zones      = sort(data.aws_availability_zones.available.names)
  azs        = length(var.availability_zones) > 0 ? var.availability_zones : slice(local.zones, 0, var.az_count)
  https      = var.certificate_arn != ""
  github     = var.github_repository != ""

  bucket       = var.bucket_name != "" ? var.bucket_name : "${var.name}-mlops-${local.account_id}-${var.region}"
  store_prefix = var.store_prefix
  store_uri    = "s3://${local.bucket}/${local.store_prefix}"

  container_name      = "server"
  log_group_name      = "/ecs/${var.name}"
  flow_log_group_name = "/vpc/${var.name}/flow-logs"
  log_groups_arn      = "arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group"

  # the memory sizes (MiB) Fargate accepts for each CPU size (units)
  fargate_memory = {
@FARGATE_MEMORY@
  }
}
"""

KMS_TF = """\
# One customer managed key for the service's data at rest: the store bucket, both log groups,
# the alarm topic and the image repository ($1 a month; S3 Bucket Keys keep the request charges low).
resource "aws_kms_key" "this" {
  description             = "${var.name}: store bucket, logs, alarm topic, image repository"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

data "aws_iam_policy_document" "kms" {
  # A key policy: "*" is this key. The account administers it through IAM (AWS's default key
  # policy); IAM policies grant its use, each to what a role needs.
  # checkov:skip=CKV_AWS_109: a key policy: "*" is this key; the account administers it via IAM
  # checkov:skip=CKV_AWS_111: a key policy: "*" is this key; the account administers it via IAM
  # checkov:skip=CKV_AWS_356: a key policy: "*" is this key, a key policy cannot name another
  statement {
    sid       = "AccountAdministersThroughIam"
    actions   = ["kms:*"]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  statement {
    sid       = "CloudWatchLogsForTheServiceLogGroups"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values = [
        "${local.log_groups_arn}:${local.log_group_name}",
        "${local.log_groups_arn}:${local.flow_log_group_name}",
      ]
    }
  }

  statement {
    sid       = "BudgetsPublishToTheEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["budgets.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }

  statement {
    sid       = "CloudWatchAlarmsPublishToTheEncryptedTopic"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey*"]
    resources = ["*"]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:cloudwatch:${var.region}:${local.account_id}:alarm:${var.name}-*"]
    }
  }
}
"""

_VPC = """\
resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = {
    Name = var.name
  }
}

# nothing uses the default security group: it allows nothing
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
}

resource "aws_subnet" "public" {
  count                   = length(local.azs)
  vpc_id                  = aws_vpc.this.id
  availability_zone       = local.azs[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 4, count.index)
  map_public_ip_on_launch = false

  tags = {
    Name = "${var.name}-public-${local.azs[count.index]}"
    Tier = "public"
  }
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id

  tags = {
    Name = "${var.name}-public"
  }
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  count          = length(local.azs)
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}
"""

_PRIVATE = """\
resource "aws_subnet" "private" {
  count             = length(local.azs)
  vpc_id            = aws_vpc.this.id
  availability_zone = local.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 4, count.index + 8)

  tags = {
    Name = "${var.name}-private-${local.azs[count.index]}"
    Tier = "private"
  }
}

resource "aws_eip" "nat" {
  count  = var.nat_gateway_per_az ? length(local.azs) : 1
  domain = "vpc"

  tags = {
    Name = "${var.name}-nat-${count.index}"
  }
}

resource "aws_nat_gateway" "this" {
  count         = var.nat_gateway_per_az ? length(local.azs) : 1
  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.public[count.index].id

  tags = {
    Name = "${var.name}-${local.azs[count.index]}"
  }

  depends_on = [aws_internet_gateway.this]
}

resource "aws_route_table" "private" {
  count  = length(local.azs)
  vpc_id = aws_vpc.this.id

  tags = {
    Name = "${var.name}-private-${local.azs[count.index]}"
  }
}

resource "aws_route" "private_nat" {
  count                  = length(local.azs)
  route_table_id         = aws_route_table.private[count.index].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[count.index % length(aws_nat_gateway.this)].id
}

resource "aws_route_table_association" "private" {
  count          = length(local.azs)
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[count.index].id
}

# store traffic goes to S3 directly (free), not through the NAT gateway (charged per GB)
resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${var.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = aws_route_table.private[*].id
}
"""

_MINIMAL_ENDPOINT = """\
# store traffic goes to S3 over AWS's network (a free gateway endpoint), not the internet
resource "aws_vpc_endpoint" "s3" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${var.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.public.id]
}
"""

_FLOW_LOGS = """\
resource "aws_flow_log" "this" {
  vpc_id                   = aws_vpc.this.id
  traffic_type             = "ALL"
  log_destination_type     = "cloud-watch-logs"
  log_destination          = aws_cloudwatch_log_group.flow.arn
  iam_role_arn             = aws_iam_role.flow_logs.arn
  max_aggregation_interval = 600
}

resource "aws_cloudwatch_log_group" "flow" {
  name              = local.flow_log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
}

resource "aws_iam_role" "flow_logs" {
  name               = "${var.name}-flow-logs"
  assume_role_policy = data.aws_iam_policy_document.flow_logs_assume.json
}

data "aws_iam_policy_document" "flow_logs_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ec2:${var.region}:${local.account_id}:vpc-flow-log/*"]
    }
  }
}

resource "aws_iam_role_policy" "flow_logs" {
  name   = "write-flow-logs"
  role   = aws_iam_role.flow_logs.id
  policy = data.aws_iam_policy_document.flow_logs.json
}

data "aws_iam_policy_document" "flow_logs" {
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.flow.arn}:*"]
  }

  statement {
    actions   = ["logs:DescribeLogGroups"]
    resources = ["${local.log_groups_arn}:*"]
  }
}
"""


_PRIVATE_HEAD = """\
# A VPC of its own: public subnets for the load balancer and the NAT gateway, private subnets for
# the tasks (no public IP). Public IPv4 addresses: one per zone for the load balancer (more while it
# scales) and one per NAT gateway: 3 with the defaults. VPC flow logs go to CloudWatch Logs.
"""

_MINIMAL_HEAD = """\
# A VPC of its own, public subnets only (the minimal layout): the load balancer and the tasks share
# them. Each task has a public IP so that it reaches ECR and CloudWatch Logs without a NAT gateway
# ($32.40 a month); its security group (ecs.tf) admits only the load balancer, so nothing else can
# reach it. Public IPv4 addresses: one per zone for the load balancer (more while it scales) and one
# per task: 3 with one task. No VPC flow logs (their CloudWatch ingestion grows with the traffic).
"""


def network_tf(layout: Layout) -> str:
    """network.tf for a layout."""
    if layout.name == "private":
        return _PRIVATE_HEAD + _VPC + "\n" + _PRIVATE + "\n" + _FLOW_LOGS
    vpc = _VPC.replace(
        'resource "aws_vpc" "this" {\n',
        'resource "aws_vpc" "this" {\n'
        "  # checkov:skip=CKV2_AWS_11: minimal layout: no flow logs (CloudWatch ingestion grows with traffic)\n",
        1,
    )
    return _MINIMAL_HEAD + vpc + "\n" + _MINIMAL_ENDPOINT


def kms_tf(layout: Layout) -> str:
    """kms.tf: the key's policy names the log groups the layout has (no flow-log group in minimal)."""
    if layout.flow_logs:
        return KMS_TF
    return KMS_TF.replace('        "${local.log_groups_arn}:${local.flow_log_group_name}",\n', "").replace(
        "the store bucket, both log groups,", "the store bucket, the log group,"
    )
