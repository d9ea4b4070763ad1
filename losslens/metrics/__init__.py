"""Metrics: pure functions of checkpoints that return rows, registered in one registry."""

from losslens.metrics.registry import Metric, Result, all_metrics, get_metric, load_metrics, register

__all__ = ["Metric", "Result", "all_metrics", "get_metric", "load_metrics", "register"]
