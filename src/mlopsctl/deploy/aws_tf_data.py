"""The data `deploy aws` writes: s3.tf (the store bucket; Athena's results expire there) and ssm.tf (the pointer)."""

from __future__ import annotations

S3_TF = """\
resource "aws_s3_bucket" "store" {
  # No server access logs (each capture write would add a log object; CloudTrail data events are
  # the audit trail to turn on), no replication (versioning guards against overwrites and deletes;
  # replicate for disaster recovery), no event notifications (servers poll the aliases).
  # checkov:skip=CKV_AWS_18: access logs off: turn on CloudTrail S3 data events for an audit trail
  # checkov:skip=CKV_AWS_144: no cross-region replication: versioning guards the store in-region
  # checkov:skip=CKV2_AWS_62: no event notifications: nothing reacts to new objects (servers poll)
  bucket        = local.bucket
  force_destroy = false

  lifecycle {
    precondition {
      condition     = length(local.bucket) <= 63
      error_message = "bucket name ${local.bucket} is longer than 63 characters: set bucket_name."
    }
  }
}

resource "aws_s3_bucket_versioning" "store" {
  bucket = aws_s3_bucket.store.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "store" {
  bucket = aws_s3_bucket.store.id

  rule {
    bucket_key_enabled = true

    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.this.arn
    }
  }
}

resource "aws_s3_bucket_public_access_block" "store" {
  bucket                  = aws_s3_bucket.store.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "store" {
  bucket = aws_s3_bucket.store.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "store" {
  bucket = aws_s3_bucket.store.id

  rule {
    id     = "expire-captured-predictions"
    status = var.capture_expiration_days > 0 ? "Enabled" : "Disabled"

    filter {
      prefix = "${local.store_prefix}/capture/"
    }

    expiration {
      days = max(var.capture_expiration_days, 1)
    }
  }

  rule {
    id     = "expire-compacted-predictions"
    status = var.capture_expiration_days > 0 ? "Enabled" : "Disabled"

    filter {
      prefix = "${local.store_prefix}/capture-parquet/"
    }

    expiration {
      days = max(var.capture_expiration_days, 1)
    }
  }

  rule {
    id     = "expire-athena-results"
    status = "Enabled"

    filter {
      prefix = "athena-results/"
    }

    expiration {
      days = var.athena_results_days
    }
  }

  rule {
    id     = "expire-noncurrent-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.store]
}

resource "aws_s3_bucket_policy" "store" {
  bucket = aws_s3_bucket.store.id
  policy = data.aws_iam_policy_document.store_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.store]
}

data "aws_iam_policy_document" "store_bucket" {
  statement {
    sid       = "TlsOnly"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.store.arn, "${aws_s3_bucket.store.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "Tls12OrLater"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.store.arn, "${aws_s3_bucket.store.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "NumericLessThan"
      variable = "s3:TlsVersion"
      values   = ["1.2"]
    }
  }
}
"""

SSM_TF = """\
# The production pointer for tools outside mlopsctl: mlopsctl writes {"model", "alias", "version",
# "event", "store", "updated_at"} here each time the alias moves ([registry] ssm_parameter); the
# store stays the truth. Terraform creates it and then leaves the value alone.
resource "aws_ssm_parameter" "pointer" {
  # checkov:skip=CKV2_AWS_34: not a secret (a model name and version): a String needs no KMS grant
  name        = var.pointer_parameter_name
  description = "mlopsctl: ${var.model_name}@${var.model_alias}, mirrored from the store (the store is the truth)"
  type        = "String"
  tier        = "Standard"
  value = jsonencode({
    model   = var.model_name
    alias   = var.model_alias
    version = null
    store   = local.store_uri
  })

  lifecycle {
    ignore_changes = [value, description]
  }
}
"""
