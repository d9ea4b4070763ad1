"""Yang et al.'s loss-landscape taxonomy: per-setting summaries, thresholds and phases."""

from losslens.taxonomy.rules import SettingSummary, assign_phases, phase_of, summarize
from losslens.taxonomy.table import taxonomy_table

__all__ = ["SettingSummary", "assign_phases", "phase_of", "summarize", "taxonomy_table"]
