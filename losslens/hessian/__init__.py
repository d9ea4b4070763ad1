"""Local curvature: Hessian-vector products, extreme eigenpairs, trace and spectral density.

Everything works on an :class:`HVP` operator (``v ↦ H v`` on flat vectors in the order of
``subject.params``), so any scalar loss of a parameter dict can be analysed; the ``hessian``
metric (:mod:`losslens.hessian.metric`) stores the results in the catalog.
"""

from losslens.hessian.eigen import Eigenpairs, lanczos_eigenpairs, top_eigenpairs
from losslens.hessian.esd import SpectralDensity, gaussian_broadening, spectral_density
from losslens.hessian.hvp import HVP, HVP_METHODS, flatten, hvp_operator, unflatten
from losslens.hessian.trace import TraceEstimate, hutchinson_trace

__all__ = [
    "HVP",
    "HVP_METHODS",
    "Eigenpairs",
    "SpectralDensity",
    "TraceEstimate",
    "flatten",
    "gaussian_broadening",
    "hutchinson_trace",
    "hvp_operator",
    "lanczos_eigenpairs",
    "spectral_density",
    "top_eigenpairs",
    "unflatten",
]
