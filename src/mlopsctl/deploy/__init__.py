"""Deployment targets: Docker stack, AWS Terraform, CI workflows, and the sizes they share."""
