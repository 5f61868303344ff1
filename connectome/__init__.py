"""connectome: a sparse neural-network engine with per-neuron adjacency lists.

Every neuron owns the list of its outgoing synapses (target, weight) and
nothing is stored for an absent synapse.  Forward and backward passes run over
those lists in C (OpenMP, bitwise identical for any thread count); pruning,
growing synapses and adding or removing neurons happen in place.

>>> import connectome as cx
>>> net = cx.Network(seed=0)
>>> inp = net.add_population("input", 64)
>>> hid = net.add_population("hidden", 256, activation="relu")
>>> proj = net.connect(inp, hid, fanout=32)
"""

import importlib

try:
    importlib.import_module("._core", __name__)  # the C extension: everything below needs it
except ImportError as e:  # pragma: no cover - only without a build
    raise ImportError(
        f"connectome's C extension connectome._core could not be imported ({e}). Build it with "
        "`pip install .` or, in a source tree, `python setup.py build_clib build_ext --inplace`."
    ) from e

from . import datasets, losses, optim, plasticity
from ._threads import get_num_threads, set_num_threads
from .io import load
from .network import Network, Population, Projection
from .training import History, fit

__all__ = [
    "History",
    "Network",
    "Population",
    "Projection",
    "__version__",
    "datasets",
    "fit",
    "get_num_threads",
    "load",
    "losses",
    "optim",
    "plasticity",
    "set_num_threads",
]

__version__ = "0.1.0"
