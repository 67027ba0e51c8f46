"""The prediction service: HTTP app, protocols, hot reload, metrics."""
