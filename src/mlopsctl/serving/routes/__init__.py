"""The HTTP routes, one module per concern; each `routes(service)` returns a FastAPI router over the parts."""
