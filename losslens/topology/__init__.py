"""Topology of loss landscapes: persistence (gudhi), merge trees by union-find, layout, summaries."""
