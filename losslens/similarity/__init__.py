"""Similarity between models: linear CKA (biased and debiased), layer CKA via hooks, and classical MDS."""

from losslens.similarity.cka import Representation, cka, linear_cka
from losslens.similarity.mds import classical_mds

__all__ = ["Representation", "cka", "classical_mds", "linear_cka"]
