"""Monitoring: training baselines, captured predictions and feedback, live performance,
drift tests and reports, alert rules, their evaluation and notifiers."""
