"""Shared pieces of the example scripts: data preparation, MLP builders, runs and tables.

The scripts in this folder reproduce the learning results quoted in the README
(and in the issue that asked for them).  Each prints a table; ``--help`` lists
its options, and ``--quick`` runs a short version for a smoke test.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

import connectome as cx


def standardize(X_train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale features to zero mean and unit variance using the training set's statistics."""
    mu = X_train.mean(axis=0)
    sd = X_train.std(axis=0)
    sd[sd == 0] = 1.0
    return [((X - mu) / sd).astype(np.float32) for X in (X_train, *others)]


def fanout_for_density(density: float, n_post: int) -> int:
    """Synapses per presynaptic neuron giving ``density`` of an n_pre x n_post projection."""
    return int(max(1, min(n_post, round(density * n_post))))


def set_density(epsilon: float, n_pre: int, n_post: int) -> float:
    """SET's Erdos-Renyi density ``epsilon * (n_pre + n_post) / (n_pre * n_post)`` (at most 1)."""
    return min(1.0, epsilon * (n_pre + n_post) / (n_pre * n_post))


# Uniform initialisers whose bound is gain / sqrt(n_pre) on the dense shape: PyTorch
# nn.Linear's default, and Kaiming's uniform for ReLU.
FAN_IN_GAINS = {"dense-uniform": 1.0, "he-uniform": float(np.sqrt(6.0))}


def mlp(
    sizes: Sequence[int],
    densities: Sequence[float],
    *,
    seed: int,
    activation: str = "relu",
    init: str = "normal",
    dropout: float = 0.0,
) -> cx.Network:
    """input -> hidden1 -> ... -> output, one projection per consecutive pair.

    ``densities[i]`` is the density of projection i (1.0 = fully connected);
    hidden populations use ``activation`` and ``dropout``; the output is linear
    (the loss applies the softmax).  ``init`` is a connect() initialiser, or
    "xavier" for U(+-sqrt(6 / (n_pre + n_post))) as in SET's reference code, or
    "dense-uniform" for U(+-1/sqrt(n_pre)), PyTorch nn.Linear's default for the
    dense shape (what a masked dense layer starts from), or "he-uniform" for
    U(+-sqrt(6 / n_pre)), Kaiming's uniform for ReLU on the dense shape.  All three
    use the dense shape's bound, so sparse projections start (and SET regrows) with
    small weights; connect()'s own "uniform" scales by the mean sparse fan-in instead.
    """
    if len(densities) != len(sizes) - 1:
        raise ValueError(f"need {len(sizes) - 1} densities, got {len(densities)}")
    net = cx.Network(seed=seed)
    pops = [net.add_population("input", sizes[0])]
    for i, n in enumerate(sizes[1:-1], start=1):
        pops.append(net.add_population(f"hidden{i}", n, activation=activation, dropout=dropout))
    pops.append(net.add_population("output", sizes[-1]))
    for pre, post, d in zip(pops[:-1], pops[1:], densities):
        fanout = fanout_for_density(d, post.size)
        if init == "xavier":  # Glorot uniform on the dense shape, as SET's reference code
            bound = float(np.sqrt(6.0 / (pre.size + post.size)))
            net.connect(pre, post, fanout=fanout, init="uniform", scale=bound)
        elif init in FAN_IN_GAINS:  # U(+-gain / sqrt(n_pre)) on the dense shape
            scale = FAN_IN_GAINS[init] / float(np.sqrt(pre.size))
            net.connect(pre, post, fanout=fanout, init="uniform", scale=scale)
        else:
            net.connect(pre, post, fanout=fanout, init=init)
    return net


def accuracy(net: cx.Network, X: np.ndarray, y: np.ndarray) -> float:
    """Share of samples whose largest output is the label (evaluation mode)."""
    return float(np.mean(np.argmax(net.predict(X, batch_size=1024), axis=1) == y))


def density(net: cx.Network) -> float:
    """Synapses over possible synapses, over every projection."""
    possible = sum(p.pre.size * p.post.size for p in net.projections)
    return net.n_synapses / possible


@dataclass
class Run:
    """What one training run produced."""

    label: str
    seed: int
    test_accuracy: float
    history: cx.History
    seconds: float
    n_synapses: int
    density: float
    extra: dict = field(default_factory=dict)


def train(
    label: str,
    net: cx.Network,
    data: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    *,
    optimizer: cx.optim.Optimizer,
    epochs: int,
    batch_size: int,
    seed: int,
    plasticity: Sequence[object] = (),
    progress: bool = False,
    validate: bool = True,
    lr_schedule: Callable[[int], float] | None = None,
) -> Run:
    """fit() on the training set, report test accuracy; the test set doubles as validation data."""
    (X_train, y_train), (X_test, y_test) = data
    t0 = time.perf_counter()
    history = cx.fit(
        net,
        X_train,
        y_train,
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        plasticity=list(plasticity),
        validation_data=(X_test, y_test) if validate else None,
        progress=progress,
        seed=seed,
        lr_schedule=lr_schedule,
    )
    seconds = time.perf_counter() - t0
    return Run(label, seed, accuracy(net, X_test, y_test), history, seconds, net.n_synapses, density(net))


def summarize(runs: Sequence[Run], target: dict[str, float] | None = None) -> str:
    """A table with one line per label: mean and std of test accuracy over seeds, and more."""
    target = target or {}
    labels = list(dict.fromkeys(r.label for r in runs))
    lines = [
        (
            f"{'run':<24} {'seeds':>5} {'test acc mean':>13} {'std':>7} {'min':>7} {'max':>7} "
            f"{'synapses':>10} {'density':>8} {'s/run':>7}  target"
        )
    ]
    lines.append("-" * len(lines[0]))
    for label in labels:
        rs = [r for r in runs if r.label == label]
        acc = np.array([r.test_accuracy for r in rs]) * 100
        t = target.get(label)
        verdict = ""
        if t is not None:
            verdict = f">= {t:.1f}%: {'PASS' if acc.mean() >= t else 'MISS'}"
        lines.append(
            f"{label:<24} {len(rs):>5} {acc.mean():>12.2f}% {acc.std():>7.2f} {acc.min():>7.2f} "
            f"{acc.max():>7.2f} {int(np.mean([r.n_synapses for r in rs])):>10,} "
            f"{np.mean([r.density for r in rs]):>8.4f} {np.mean([r.seconds for r in rs]):>7.1f}  {verdict}"
        )
    return "\n".join(lines)
