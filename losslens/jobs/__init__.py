"""Jobs: (checkpoint or group, metric, parameters) → rows, planned, executed and stored.

Workers compute and return; only the driver process writes to the catalog.
"""

from losslens.jobs.context import JobContext, Subject, load_subject
from losslens.jobs.runner import ComputeReport, compute

__all__ = ["ComputeReport", "JobContext", "Subject", "compute", "load_subject"]
