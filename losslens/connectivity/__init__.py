"""Mode connectivity: curves between modes, their fitted bends, profiles and the mc score."""

from losslens.connectivity.curves import coefficients, initial_bends, point_on_curve
from losslens.connectivity.fit import fit_bends
from losslens.connectivity.score import mode_connectivity

__all__ = ["coefficients", "fit_bends", "initial_bends", "mode_connectivity", "point_on_curve"]
