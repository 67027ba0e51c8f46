"""Monitoring: training baselines now; drift, capture and alerts build on them."""
