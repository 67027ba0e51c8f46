"""mlopsctl: from a CSV to a monitored, versioned prediction service."""

__version__ = "0.1.0"
