"""A/B tests: deployments, routing, analysis, significance, canary guard."""
