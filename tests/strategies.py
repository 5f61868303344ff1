"""Hypothesis strategies and builders for connectome tests.

Structure (shapes, densities, activations, DAG shape) comes from hypothesis; numbers
(weights, biases, inputs) come from a numpy Generator seeded by a hypothesis-drawn seed, so
values are generic (no accidental cancellation exactly at a relu kink) and cheap to draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from reference import ACTIVATIONS, DenseNetwork

seeds = st.integers(min_value=0, max_value=2**32 - 1)


@dataclass
class NetSpec:
    """A random DAG: populations (name, size, activation), edges (i, j, fanout) with i < j
    in topological index order, and the order in which populations/projections are created."""

    names: list
    sizes: list
    activations: list
    edges: list  # (i, j, fanout)
    creation_order: list  # permutation of population indices
    seed: int
    batch: int

    def __repr__(self):
        pops = ", ".join(f"{n}:{s}:{a}" for n, s, a in zip(self.names, self.sizes, self.activations))
        edges = ", ".join(f"{self.names[i]}->{self.names[j]}/{f}" for i, j, f in self.edges)
        return f"NetSpec([{pops}], [{edges}], order={self.creation_order}, seed={self.seed}, B={self.batch})"


def activations(smooth: bool = False):
    """One activation name; smooth=True leaves out relu (for finite differences)."""
    names = [a for a in ACTIVATIONS if not (smooth and a == "relu")]
    return st.sampled_from(names)


@st.composite
def network_specs(draw, max_populations=5, max_size=12, max_batch=6, smooth=False, min_populations=2):
    """Random DAGs: several inputs/outputs, skip connections, every population on >= 1 edge."""
    n = draw(st.integers(min_populations, max_populations))
    sizes = draw(st.lists(st.integers(1, max_size), min_size=n, max_size=n))
    acts = draw(st.lists(activations(smooth), min_size=n, max_size=n))
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    chosen = draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=len(pairs), unique=True))
    touched = {k for e in chosen for k in e}
    for k in range(n):  # no isolated population (it would be both input and output)
        if k not in touched:
            e = (k, k + 1) if k + 1 < n else (k - 1, k)
            if e not in chosen:
                chosen.append(e)
            touched.update(e)
    # density: fanout anywhere in [0, n_post], biased towards both ends sometimes
    edges = [(i, j, draw(st.integers(0, sizes[j]))) for i, j in sorted(chosen)]
    order = draw(st.permutations(range(n)))
    seed = draw(seeds)
    batch = draw(st.integers(1, max_batch))
    names = [f"p{k}" for k in range(n)]
    return NetSpec(names, sizes, acts, edges, list(order), seed, batch)


def build_network(spec: NetSpec, weight_scale: float = 1.0, bias_scale: float = 0.5):
    """Build a connectome.Network for spec, with random weights and biases set explicitly."""
    import connectome as cx

    rng = np.random.default_rng(spec.seed)
    net = cx.Network(seed=spec.seed % 1000)
    pops = {}
    for k in spec.creation_order:
        pops[k] = net.add_population(spec.names[k], spec.sizes[k], activation=spec.activations[k])
    # create projections in an order unrelated to the topological one
    edge_order = rng.permutation(len(spec.edges))
    for e in edge_order:
        i, j, fanout = spec.edges[e]
        net.connect(pops[i], pops[j], fanout=fanout)
    for p in net.projections:
        n = p.n_synapses
        p.set_weights((rng.uniform(-1.0, 1.0, n) * weight_scale).astype(np.float32))
    for k in range(len(spec.names)):
        pops[k].bias[:] = (rng.uniform(-1.0, 1.0, spec.sizes[k]) * bias_scale).astype(np.float32)
    return net


def random_inputs(ref: DenseNetwork, batch: int, rng, scale: float = 1.0) -> dict:
    """float32 inputs for every input population of ref: name -> (B, size)."""
    return {
        n: (rng.uniform(-1.0, 1.0, (batch, ref.pops[n].size)) * scale).astype(np.float32) for n in ref.inputs
    }


def random_dy(ref: DenseNetwork, batch: int, rng) -> dict:
    return {n: rng.normal(size=(batch, ref.pops[n].size)).astype(np.float32) for n in ref.outputs}


def to_api(values: dict, names: list):
    """The API takes a plain array for a single population, else a dict by name."""
    if len(names) == 1:
        return values[names[0]]
    return {n: values[n] for n in names}


def from_api(result, names: list) -> dict:
    if len(names) == 1:
        assert isinstance(result, np.ndarray), f"expected an array for one population, got {type(result)}"
        return {names[0]: result}
    assert isinstance(result, dict), f"expected a dict for {len(names)} populations, got {type(result)}"
    assert set(result) == set(names), f"keys {sorted(result)} != {sorted(names)}"
    return dict(result)


@st.composite
def coo_BS(draw, max_pre=12, max_post=12, max_synapses=None):
    """(n_pre, n_post, pre, post, w): a random synapse set, distinct pairs, random order."""
    n_pre = draw(st.integers(0, max_pre))
    n_post = draw(st.integers(0, max_post))
    total = n_pre * n_post
    hi = total if max_synapses is None else min(total, max_synapses)
    k = draw(st.integers(0, hi))
    seed = draw(seeds)
    rng = np.random.default_rng(seed)
    flat = rng.choice(total, size=k, replace=False) if k else np.zeros(0, np.int64)
    pre = (flat // max(n_post, 1)).astype(np.int32)
    post = (flat % max(n_post, 1)).astype(np.int32)
    w = rng.uniform(-1, 1, k).astype(np.float32)
    return n_pre, n_post, pre, post, w


def arrays_NB(n: int, batch: int, rng, scale: float = 1.0) -> np.ndarray:
    """Neuron-major (N, B) float32 C-contiguous array (the core's layout)."""
    return np.ascontiguousarray((rng.uniform(-1, 1, (n, batch)) * scale).astype(np.float32))
