"""Metrics, plots and reports (never imports train)."""
