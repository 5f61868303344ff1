"""Structural plasticity: rules that rewire a network while it learns (``cx.plasticity``).

A rule changes the network's structure in place, on a schedule driven by the
training loop (:func:`connectome.fit` calls :meth:`Rule.bind` once, then
:meth:`Rule.on_step` after every optimiser step and :meth:`Rule.on_epoch` at
every epoch end) or by hand with :meth:`Rule.apply`.  Each call returns the
exact :class:`Changes` it made.

- :class:`SET`: drop the weakest synapses, regrow as many at random (Mocanu et
  al. 2018, "Scalable training of artificial neural networks with adaptive
  sparse connectivity").
- :class:`RigL`: drop the weakest synapses, grow where the gradient of absent
  synapses is largest (Evci et al. 2020, "Rigging the Lottery"), computed block
  by block with a streaming top-k, never as a dense ``n_pre x n_post`` matrix.
- :class:`Neurogenesis`: add neurons to a hidden population when the loss
  plateaus (or on a fixed schedule), up to a cap.
- :class:`RemoveDead` / :func:`remove_dead_neurons`: remove hidden neurons left
  with no fan-in or no fan-out.

Every rule is deterministic given the network's seed: its randomness comes
from ``net._draw_seed()`` and its ties are broken by neuron ids.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core
from .network import Network, Population, Projection, _as_int, _as_real, _describe

__all__ = [
    "SET",
    "Changes",
    "Neurogenesis",
    "RemoveDead",
    "RigL",
    "Rule",
    "gradient_top_k",
    "remove_dead_neurons",
]

Batch = tuple[Any, Any]
LossFn = Callable[[Any, Any], tuple[float, Any]]


# ---------------------------------------------------------------------- Changes
@dataclass
class Changes:
    """What a rule changed: exact counts, added with ``+``.

    Attributes
    ----------
    pruned : int
        Synapses removed (including those removed with dead neurons).
    grown : int
        Synapses added (including those of newborn neurons).
    neurons_added, neurons_removed : int
    """

    pruned: int = 0
    grown: int = 0
    neurons_added: int = 0
    neurons_removed: int = 0

    def __add__(self, other: Changes) -> Changes:
        if not isinstance(other, Changes):
            return NotImplemented
        return Changes(
            self.pruned + other.pruned,
            self.grown + other.grown,
            self.neurons_added + other.neurons_added,
            self.neurons_removed + other.neurons_removed,
        )


# ------------------------------------------------------------------ arguments
def _as_every(every: Any) -> str | int:
    if isinstance(every, str):
        if every != "epoch":
            raise ValueError(f"every={every!r} is invalid: expected 'epoch' or a number of steps >= 1")
        return every
    try:
        return _as_int("every", every, 1)
    except TypeError:
        raise TypeError(
            f"every must be 'epoch' or an integer number of steps, got {_describe(every)}"
        ) from None


def _as_fraction(name: str, value: Any) -> float:
    f = _as_real(name, value, finite=False)
    if not 0.0 <= f <= 1.0:  # also refuses NaN
        raise ValueError(f"{name}={f} is out of range: expected 0 <= {name} <= 1")
    return f


def _check_net(net: Any) -> Network:
    if not isinstance(net, Network):
        raise TypeError(f"net must be a connectome Network, got {_describe(net)}")
    return net


def _check_batch(rule: str, batch: Any, loss_fn: Any) -> tuple[Any, Any, LossFn]:
    if batch is None or loss_fn is None:
        raise ValueError(
            f"{rule} needs the current batch and loss to score absent synapses: pass batch=(x, y) and "
            f"loss_fn(pred, y) -> (loss, grad), got batch={'None' if batch is None else '...'} and "
            f"loss_fn={loss_fn!r}"
        )
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        raise TypeError(f"batch must be a pair (x, y), got {_describe(batch)}")
    if not callable(loss_fn):
        raise TypeError(
            f"loss_fn must be callable as loss_fn(pred, y) -> (loss, grad), got {_describe(loss_fn)}"
        )
    return batch[0], batch[1], loss_fn


def _as_projection_specs(projections: Any) -> list[Projection | tuple[Any, Any]] | None:
    """Check the shape of a ``projections=`` argument; resolved against the network when firing."""
    if projections is None:
        return None
    if isinstance(projections, (str, Projection)) or not isinstance(projections, Sequence):
        raise TypeError(
            "projections must be None or a list of Projection objects or (pre, post) population pairs, "
            f"got {_describe(projections)}"
        )
    specs: list[Projection | tuple[Any, Any]] = []
    for i, item in enumerate(projections):
        if isinstance(item, Projection):
            specs.append(item)
        elif (
            isinstance(item, (tuple, list))
            and len(item) == 2
            and all(isinstance(x, (str, Population)) for x in item)
        ):
            specs.append((item[0], item[1]))
        else:
            raise TypeError(
                f"projections[{i}] must be a Projection or a (pre, post) pair of population names, "
                f"got {_describe(item)}"
            )
    return specs


def _resolve_projections(net: Network, specs: list[Projection | tuple[Any, Any]] | None) -> list[Projection]:
    """The sparse projections a rule acts on, in creation order for the default.

    A projection is sparse when it is not fully connected (``n_synapses <
    n_pre * n_post``): a full one has nowhere to grow, so it is always skipped.
    """
    if specs is None:
        chosen = net.projections
    else:
        chosen = []
        for i, spec in enumerate(specs):
            if isinstance(spec, Projection):
                if spec.network is not net or spec not in net._projections:
                    raise ValueError(f"projections[{i}]={spec!r} is not a projection of this network")
                p = spec
            else:
                pre = net._resolve(f"projections[{i}][0]", spec[0])
                post = net._resolve(f"projections[{i}][1]", spec[1])
                found = [q for q in pre._outgoing if q.post is post]
                if not found:
                    raise ValueError(
                        f"projections[{i}]=({pre.name!r}, {post.name!r}) is not a projection of this network"
                    )
                p = found[0]
            if p not in chosen:
                chosen.append(p)
    return [p for p in chosen if p.n_synapses < p.pre.size * p.post.size]


def _resolve_hidden(net: Network, name: str, pop: Any) -> Population:
    p = net._resolve(name, pop)
    if p.is_input or p.is_output:
        role = "an input" if p.is_input else "an output"
        raise ValueError(
            f"{name}={p.name!r} is {role} population: expected a hidden one (with incoming and outgoing "
            "projections), since adding or removing its neurons would change the network's interface"
        )
    return p


# ------------------------------------------------------------------------ Rule
class Rule:
    """Base class of plasticity rules: a schedule around a structural edit.

    Parameters
    ----------
    every : "epoch" or int
        Fire at every epoch end (``"epoch"``, through :meth:`on_epoch`) or every
        ``every`` optimiser steps (an int >= 1, through :meth:`on_step` when
        ``step % every == 0``).

    Subclasses implement ``_fire`` (a scheduled firing) and may override
    ``apply`` (a firing by hand).
    """

    def __init__(self, every: Any = "epoch"):
        self.every = _as_every(every)
        self.epochs: int | None = None
        self.steps_per_epoch: int | None = None

    def bind(
        self,
        net: Network,
        optimizer: Any = None,
        *,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
    ) -> None:
        """Prepare for a training run (the training loop calls this once, before training).

        Parameters
        ----------
        net : Network
        optimizer : Optimizer or None
        epochs, steps_per_epoch : int or None
            Length of the run (``>= 1``), for schedules that depend on it.
        """
        _check_net(net)
        self.epochs = None if epochs is None else _as_int("epochs", epochs, 1)
        self.steps_per_epoch = (
            None if steps_per_epoch is None else _as_int("steps_per_epoch", steps_per_epoch, 1)
        )

    @property
    def total_steps(self) -> int | None:
        """epochs * steps_per_epoch from :meth:`bind`, or None if either is unknown."""
        if self.epochs is None or self.steps_per_epoch is None:
            return None
        return self.epochs * self.steps_per_epoch

    def on_step(
        self,
        net: Network,
        optimizer: Any,
        *,
        step: int,
        epoch: int,
        batch: Batch | None = None,
        loss_fn: LossFn | None = None,
    ) -> Changes:
        """Called after every optimiser step (step counts from 1); fires when ``step % every == 0``."""
        _check_net(net)
        step = _as_int("step", step, 1)
        epoch = _as_int("epoch", epoch, 1)
        if self.every == "epoch" or step % int(self.every):
            return Changes()
        return self._fire(net, optimizer, step=step, epoch=epoch, batch=batch, loss_fn=loss_fn, logs=None)

    def on_epoch(
        self,
        net: Network,
        optimizer: Any,
        *,
        epoch: int,
        logs: dict[str, float] | None = None,
        batch: Batch | None = None,
        loss_fn: LossFn | None = None,
    ) -> Changes:
        """Called at each epoch end (epoch counts from 1); fires when ``every == "epoch"``."""
        _check_net(net)
        epoch = _as_int("epoch", epoch, 1)
        if self.every != "epoch":
            return Changes()
        step = epoch * self.steps_per_epoch if self.steps_per_epoch is not None else None
        return self._fire(net, optimizer, step=step, epoch=epoch, batch=batch, loss_fn=loss_fn, logs=logs)

    def apply(
        self,
        net: Network,
        optimizer: Any = None,
        *,
        batch: Batch | None = None,
        loss_fn: LossFn | None = None,
    ) -> Changes:
        """Fire now, by hand, whatever the schedule."""
        _check_net(net)
        return self._fire(net, optimizer, step=None, epoch=None, batch=batch, loss_fn=loss_fn, logs=None)

    def _fire(
        self,
        net: Network,
        optimizer: Any,
        *,
        step: int | None,
        epoch: int | None,
        batch: Batch | None,
        loss_fn: LossFn | None,
        logs: dict[str, float] | None,
    ) -> Changes:  # pragma: no cover - abstract
        raise NotImplementedError


# ------------------------------------------------------------------------- SET
class SET(Rule):
    """Sparse Evolutionary Training: drop the weakest synapses, regrow as many at random.

    On each sparse projection, removes the ``k = floor(fraction * n_synapses)``
    synapses of smallest ``|w|`` (ties broken by (pre, post) order, exactly
    what ``prune(fraction=fraction)`` removes) and adds ``k`` synapses at
    distinct absent (pre, post) pairs drawn uniformly, with weights from the
    projection's initialiser, so each projection keeps its synapse count.
    This is the core's fused :meth:`Projection.rewire`, one pass over the rows.

    Regrowth draws from the slots that were absent *before* the call, so a
    synapse just dropped is never regrown at once (SET's reference code, which
    regrows among all zero entries after the drop, may regrow one; the
    difference is ``k / free slots``, small for a sparse projection).  When a
    projection is so dense that fewer than ``k`` slots were free, the rule
    falls back to ``prune(fraction)`` then ``grow(k)``, which may regrow a
    dropped slot (with a fresh weight).

    A scheduled firing at the end of the run (the last epoch, or the last step,
    as :meth:`bind` reports) is skipped, as SET's reference code skips the
    weight evolution after the last epoch: the trained network is returned
    without freshly regrown random synapses.  :meth:`apply` always fires.

    SET's paper drops a fraction of the positive and of the negative weights
    separately; this drops by magnitude, as the issue and RigL's SET baseline do.

    Parameters
    ----------
    fraction : float in [0, 1]
        Fraction of each projection's synapses to rewire at every firing
        (SET's zeta).
    every : "epoch" or int
        See :class:`Rule`.
    projections : None or list of Projection / (pre, post) pairs
        Where to act; None (default) means every projection that is not fully
        connected, chosen at firing time.  Fully connected projections are
        always skipped.
    """

    def __init__(self, fraction: float = 0.3, every: Any = "epoch", projections: Any = None):
        super().__init__(every)
        self.fraction = _as_fraction("fraction", fraction)
        self.projections = _as_projection_specs(projections)

    def _is_last(self, step: int | None, epoch: int | None) -> bool:
        """Whether a scheduled firing falls at the very end of the bound run."""
        if self.every == "epoch":
            return epoch is not None and self.epochs is not None and epoch >= self.epochs
        total = self.total_steps
        return step is not None and total is not None and step >= total

    def _fire(self, net, optimizer, *, step, epoch, batch, loss_fn, logs) -> Changes:
        if self._is_last(step, epoch):
            return Changes()  # as set_mlp.py: no evolution after the last epoch
        changes = Changes()
        for p in _resolve_projections(net, self.projections):
            seed = net._draw_seed()
            n = p.n_synapses
            k = min(n, math.floor(self.fraction * n))  # as rewire / prune(fraction) count
            if k <= p.pre.size * p.post.size - n:
                k = p.rewire(self.fraction, weight=None, seed=seed)
            else:
                k = p.prune(fraction=self.fraction)
                p.grow(k, weight=None, seed=seed)
            changes += Changes(pruned=k, grown=k)
        return changes

    def __repr__(self) -> str:
        return f"SET(fraction={self.fraction}, every={self.every!r}, projections={self.projections!r})"


# ------------------------------------------------------------------------ RigL
_DEFAULT_BLOCK_ELEMENTS = 1 << 19  # scores per block: 4 MiB of float64


def _top_k(score: np.ndarray, key: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k entries of largest score, ties broken by smallest key (any output order)."""
    if score.size <= k:
        return score, key
    kth = score.size - k
    thr = score[np.argpartition(score, kth)[kth]]  # the k-th largest score
    above = np.flatnonzero(score > thr)
    tied = np.flatnonzero(score == thr)
    tied = tied[np.argsort(key[tied], kind="stable")[: k - above.size]]
    sel = np.concatenate([above, tied])
    return score[sel], key[sel]


def gradient_top_k(
    acts_pre: np.ndarray,
    deltas_post: np.ndarray,
    exclude_pre: np.ndarray,
    exclude_post: np.ndarray,
    k: int,
    block_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k (pre, post) pairs of largest ``|dL/dw|`` outside an excluded set, block by block.

    ``dL/dw[i, j] = sum_b acts_pre[i, b] * deltas_post[j, b]``.  Rows of pre
    are scored ``block_rows`` at a time (``block x n_post`` scores, masked
    where excluded) and merged into the running best k, so memory is
    ``O(block_rows * n_post + k)`` and the dense matrix is never formed.

    Scores are computed in float64 (the float32 products are exact there) and
    rounded to float32, the precision of the core's gradients, before ranking:
    the ranking then does not depend on which BLAS kernel a block shape gets,
    so the result is the same for any ``block_rows``.  Ties are broken by
    (pre, post) order.

    Parameters
    ----------
    acts_pre : (n_pre, B) float32
    deltas_post : (n_post, B) float32
    exclude_pre, exclude_post : (E,) integer, sorted by pre
        Pairs that may not be chosen (the synapses that stay).
    k : int
        ``0 <= k <= n_pre * n_post - E``.
    block_rows : int or None
        Rows per block; None picks about 2**19 scores per block.

    Returns
    -------
    pre, post : (k,) int32
        Sorted by decreasing score, then (pre, post).
    score : (k,) float32
    """
    n_pre, n_post = acts_pre.shape[0], deltas_post.shape[0]
    if block_rows is None:
        block_rows = max(1, _DEFAULT_BLOCK_ELEMENTS // max(n_post, 1))
    best_s = np.empty(0, dtype=np.float32)
    best_k = np.empty(0, dtype=np.int64)
    if k > 0:
        d64 = deltas_post.astype(np.float64).T  # (B, n_post)
        ex_pre = np.asarray(exclude_pre, dtype=np.int64)
        ex_post = np.asarray(exclude_post, dtype=np.int64)
        for r0 in range(0, n_pre, block_rows):
            r1 = min(n_pre, r0 + block_rows)
            s = np.abs(acts_pre[r0:r1].astype(np.float64) @ d64).astype(np.float32)
            lo, hi = np.searchsorted(ex_pre, [r0, r1])
            s[ex_pre[lo:hi] - r0, ex_post[lo:hi]] = -1.0  # scores are >= 0: -1 marks excluded
            flat = s.ravel()
            ok = np.flatnonzero(flat >= 0)
            cs, ck = _top_k(flat[ok], ok + r0 * n_post, k)
            best_s, best_k = _top_k(np.concatenate([best_s, cs]), np.concatenate([best_k, ck]), k)
    if best_s.size < k:
        raise ValueError(f"k={k} is more than the {best_s.size} pairs that are not excluded")
    order = np.lexsort((best_k, -best_s))
    best_s, best_k = best_s[order], best_k[order]
    return (best_k // n_post).astype(np.int32), (best_k % n_post).astype(np.int32), best_s


class RigL(Rule):
    """Rigging the Lottery: drop the weakest synapses, grow where ``|dL/dw|`` is largest.

    At a firing at step t, with ``f_t = fraction / 2 * (1 + cos(pi * t / T_end))``
    (schedule "cosine") or ``f_t = fraction`` ("constant") and ``T_end = end *
    epochs * steps_per_epoch`` (from :meth:`bind`), each sparse projection:

    1. scores every pair on the current batch: one forward and backward pass of
       ``batch`` through ``loss_fn`` (the network as it is now, dropout as the
       current train/eval mode says), ``dL/dw[i, j] = sum_b acts[pre][i, b] *
       deltas[post][j, b]``; the accumulated gradients and bias gradients are
       restored afterwards;
    2. drops D: the ``k = floor(f_t * n_synapses)`` synapses of smallest
       ``|w|`` (ties by (pre, post) order: what ``prune(fraction=f_t)`` drops);
    3. grows G: the ``k`` pairs not among the kept synapses with the largest
       ``|dL/dw|`` (ties by (pre, post) order), new weights 0 and zero
       optimiser state, as in the RigL paper.

    Regrowth choice: as in RigL's reference code, the candidates are every pair
    absent *after* the drop, so a just-dropped synapse may be chosen again
    (its gradient, not its weight, decides).  Such a synapse is simply kept, with
    its weight and optimiser state (the reference's default,
    ``reinit_when_same=False``).  Hence the edit is: remove ``D - G``, add
    ``G - D`` at weight 0; the count is unchanged and ``Changes`` reports
    the ``|D - G|`` synapses really removed and added.

    Scores are computed block by block (:func:`gradient_top_k`): memory
    ``O(block_rows * n_post + k)``, never a dense ``n_pre x n_post`` matrix.

    Fires when ``step % every == 0`` and ``step < T_end`` (every="epoch":
    at each epoch end, with ``t = epoch * steps_per_epoch``).  By hand,
    :meth:`apply` uses ``fraction`` itself.

    Parameters
    ----------
    fraction : float in [0, 1]
        Drop fraction at t = 0 (RigL's alpha).
    every : int or "epoch"
        Update interval (RigL's delta T), in steps.
    schedule : "cosine" or "constant"
    end : float in (0, 1]
        Stop updating after this fraction of the run.  "cosine" needs the run's
        length from :meth:`bind`; "constant" without it fires for ever.
    projections : None or list of Projection / (pre, post) pairs
        As for :class:`SET`.
    block_rows : int or None
        Presynaptic rows scored per block (None: about 2**19 scores per block).
    """

    def __init__(
        self,
        fraction: float = 0.3,
        every: Any = 100,
        schedule: str = "cosine",
        end: float = 0.75,
        projections: Any = None,
        *,
        block_rows: int | None = None,
    ):
        super().__init__(every)
        self.fraction = _as_fraction("fraction", fraction)
        if not isinstance(schedule, str):
            raise TypeError(f"schedule must be 'cosine' or 'constant', got {_describe(schedule)}")
        if schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule={schedule!r} is unknown: expected 'cosine' or 'constant'")
        self.schedule = schedule
        end = _as_real("end", end, finite=False)
        if not 0.0 < end <= 1.0:
            raise ValueError(f"end={end} is out of range: expected 0 < end <= 1 (a fraction of the run)")
        self.end = end
        self.projections = _as_projection_specs(projections)
        self.block_rows = None if block_rows is None else _as_int("block_rows", block_rows, 1)

    @property
    def end_step(self) -> float | None:
        """T_end = end * epochs * steps_per_epoch, or None before :meth:`bind` gives them."""
        total = self.total_steps
        return None if total is None else self.end * total

    def fraction_at(self, step: int) -> float:
        """Drop fraction f_t at step t (0 from T_end on)."""
        t_end = self.end_step
        if t_end is None:
            if self.schedule == "constant":
                return self.fraction
            raise RuntimeError(
                "RigL(schedule='cosine') needs the length of the run: call bind(net, epochs=..., "
                "steps_per_epoch=...) first (fit does)"
            )
        if step >= t_end:
            return 0.0
        if self.schedule == "constant":
            return self.fraction
        return self.fraction / 2 * (1 + math.cos(math.pi * step / t_end))

    def _fire(self, net, optimizer, *, step, epoch, batch, loss_fn, logs) -> Changes:
        if step is not None:
            f = self.fraction_at(step)
        elif epoch is None or (self.schedule == "constant" and self.end_step is None):
            f = self.fraction  # by hand, or a constant schedule with no known end
        else:
            raise RuntimeError(
                "RigL(every='epoch') needs steps_per_epoch from bind(...) to place epochs on its schedule"
            )
        return self.drop_and_grow(net, f, batch=batch, loss_fn=loss_fn)

    def drop_and_grow(
        self, net: Network, fraction: float, *, batch: Batch | None, loss_fn: LossFn | None
    ) -> Changes:
        """One drop-and-grow of the given fraction on the selected projections (no schedule)."""
        _check_net(net)
        fraction = _as_fraction("fraction", fraction)
        xb, yb, loss = _check_batch("RigL", batch, loss_fn)
        projs = _resolve_projections(net, self.projections)
        ks = [min(p.n_synapses, math.floor(fraction * p.n_synapses)) for p in projs]
        if not any(ks):
            return Changes()
        acts, deltas = _signals(net, xb, yb, loss)
        # Plan every projection on the same scores before editing any.
        plans = []
        for p, k in zip(projs, ks):
            if k == 0:
                continue
            pre, post, w = p.to_coo()
            n_post = p.post.size
            keys = pre.astype(np.int64) * n_post + post
            drop = np.zeros(keys.size, dtype=bool)
            drop[np.argsort(np.abs(w), kind="stable")[:k]] = True  # ties: (pre, post) order
            g_pre, g_post, _ = gradient_top_k(
                acts[p.pre], deltas[p.post], pre[~drop], post[~drop], k, self.block_rows
            )
            g_keys = g_pre.astype(np.int64) * n_post + g_post
            remove = drop & ~np.isin(keys, g_keys)
            add = ~np.isin(g_keys, keys[drop])
            plans.append((p, pre[remove], post[remove], w[remove], g_pre[add], g_post[add]))
        changes = Changes()
        done: list[tuple[Projection, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        try:
            for p, r_pre, r_post, r_w, a_pre, a_post in plans:
                p.remove_synapses(r_pre, r_post)
                done.append((p, r_pre, r_post, r_w, a_pre[:0], a_post[:0]))
                p.add_synapses(a_pre, a_post, 0.0)
                done[-1] = (p, r_pre, r_post, r_w, a_pre, a_post)
                changes += Changes(pruned=int(r_pre.size), grown=int(a_pre.size))
        except BaseException:
            # Best effort (e.g. MemoryError): put the synapses back with their weights
            # (their optimiser state is lost).
            for p, r_pre, r_post, r_w, a_pre, a_post in reversed(done):
                p.remove_synapses(a_pre, a_post)
                p.add_synapses(r_pre, r_post, r_w)
            raise
        return changes

    def __repr__(self) -> str:
        return (
            f"RigL(fraction={self.fraction}, every={self.every!r}, schedule={self.schedule!r}, "
            f"end={self.end}, projections={self.projections!r})"
        )


def _signals(
    net: Network, xb: Any, yb: Any, loss_fn: LossFn
) -> tuple[dict[Population, np.ndarray], dict[Population, np.ndarray]]:
    """acts (N, B) and deltas dL/dz (N, B) of every population on one batch.

    Runs forward and backward, then puts back the gradients that backward
    accumulated into (synapse GRAD columns and bias_grad), so scoring does not
    disturb a training step in progress.
    """
    saved = []
    for p in net._projections:
        core = p._core
        saved.append(
            np.array(core.get_column(_core.COL_GRAD)) if core.column_enabled(_core.COL_GRAD) else None
        )
    saved_bias = [pop._bias_grad.copy() for pop in net._populations.values()]
    try:
        pred = net.forward(xb)
        _loss, grad = loss_fn(pred, yb)
        net.backward(grad)
        cache = net._cache
        assert cache is not None
        return cache.acts, cache.deltas
    finally:
        for p, g in zip(net._projections, saved):
            if g is None:
                if p._core.column_enabled(_core.COL_GRAD):
                    p._core.disable_column(_core.COL_GRAD)
            else:
                p._core.set_column(_core.COL_GRAD, g)
        for pop, b in zip(net._populations.values(), saved_bias):
            pop._bias_grad[...] = b


# ---------------------------------------------------------------- Neurogenesis
class Neurogenesis(Rule):
    """Add neurons to a hidden population when the loss plateaus (or on a schedule).

    The rule (plateau mode, ``patience`` an int, the default): at each epoch
    end it reads the monitored value (``logs['val_loss']`` if present, else
    ``logs['loss']``; or ``logs[monitor]``; lower is better), as Keras'
    ReduceLROnPlateau does:

    - if it improved on the best value so far by more than ``min_delta``
      (``value < best - min_delta``, or ``value < best - |best| * min_delta``
      with ``threshold_mode="rel"``; the first epoch always sets ``best``),
      the best is updated and the wait counter reset;
    - otherwise the wait counter grows by one, and when it reaches
      ``patience`` the population gets ``n`` new neurons (clipped so its size
      stays ``<= max_size``) and the counter restarts from 0: growing again
      needs another ``patience`` epochs without improvement.  ``best`` is kept
      (the function is unchanged at birth, so the loss is too).

    Schedule mode (``patience=None``): every firing adds ``n`` neurons (up to
    ``max_size``), unconditionally; ``every`` may then be a number of steps.

    New neurons come from :meth:`Population.add_neurons`: fan-in and fan-out by
    each projection's rule, incoming weights from the projection's initialiser,
    outgoing weights exactly 0 (so the network's output is unchanged at
    birth), bias 0, and zero optimiser state (per-synapse columns start at 0;
    per-neuron state in ``pop._neuron_state`` is extended with zeros).
    With ``cx.optim``'s default zero-removal policy (only when ``l1 > 0``, after
    the update) a zero-born synapse gets one update before it could be removed.

    :meth:`apply` adds ``n`` neurons now (up to ``max_size``), whatever the wait.

    Parameters
    ----------
    population : Population or str
        A hidden population (with incoming and outgoing projections), resolved
        when firing.
    n : int
        Neurons added per birth, ``>= 1``.
    every : "epoch" or int
        "epoch" (required in plateau mode), or a number of steps when
        ``patience=None``.
    max_size : int or None
        Cap on the population's size (None: no cap).
    patience : int or None
        Epochs without improvement before a birth (``>= 1``); None for
        schedule mode.
    min_delta : float
        Minimum decrease of the monitored value that counts as an improvement
        (``>= 0``): absolute, or relative to the best with ``threshold_mode="rel"``.
    threshold_mode : "abs" or "rel"
        As torch's ReduceLROnPlateau (for a positive loss, "rel" with e.g.
        ``min_delta=0.01`` means "improved by less than 1%" is a plateau).
    monitor : str
        "auto" (val_loss if in the logs, else loss) or a key of the logs.

    Attributes
    ----------
    births : list of (epoch or step, n_added, size_after)
        One entry per birth (epoch None for :meth:`apply`).
    """

    def __init__(
        self,
        population: Any,
        n: int = 16,
        every: Any = "epoch",
        max_size: int | None = None,
        patience: int | None = 3,
        min_delta: float = 0.0,
        monitor: str = "auto",
        threshold_mode: str = "abs",
    ):
        super().__init__(every)
        if not isinstance(population, (str, Population)):
            raise TypeError(
                f"population must be a Population or a population name, got {_describe(population)}"
            )
        self.population = population
        self.n = _as_int("n", n, 1)
        self.max_size = None if max_size is None else _as_int("max_size", max_size, 1)
        self.patience = None if patience is None else _as_int("patience", patience, 1)
        if self.patience is not None and self.every != "epoch":
            raise ValueError(
                f"every={self.every!r} with patience={self.patience}: the plateau rule monitors the loss "
                "once per epoch, so it needs every='epoch' (or patience=None to grow on a step schedule)"
            )
        md = _as_real("min_delta", min_delta)
        if md < 0:
            raise ValueError(f"min_delta={md} is negative: expected min_delta >= 0")
        self.min_delta = md
        if not isinstance(threshold_mode, str):
            raise TypeError(f"threshold_mode must be 'abs' or 'rel', got {_describe(threshold_mode)}")
        if threshold_mode not in ("abs", "rel"):
            raise ValueError(f"threshold_mode={threshold_mode!r} is unknown: expected 'abs' or 'rel'")
        if threshold_mode == "rel" and md >= 1:
            raise ValueError(f"min_delta={md} with threshold_mode='rel': expected 0 <= min_delta < 1")
        self.threshold_mode = threshold_mode
        if not isinstance(monitor, str) or not monitor:
            raise TypeError(f"monitor must be 'auto' or a key of the epoch logs, got {_describe(monitor)}")
        self.monitor = monitor
        self.best: float | None = None
        self.wait = 0
        self.births: list[tuple[int | None, int, int]] = []

    def bind(self, net, optimizer=None, *, epochs=None, steps_per_epoch=None) -> None:
        super().bind(net, optimizer, epochs=epochs, steps_per_epoch=steps_per_epoch)
        _resolve_hidden(net, "population", self.population)
        self.best = None
        self.wait = 0

    def _monitored(self, logs: dict[str, float] | None) -> float:
        if logs is None:
            raise ValueError("Neurogenesis(patience=...) needs the epoch logs: logs=None was given")
        key = self.monitor
        if key == "auto":
            key = "val_loss" if "val_loss" in logs else "loss"
        if key not in logs:
            raise ValueError(f"monitor={self.monitor!r}: the logs have no {key!r}, only {sorted(logs)}")
        return float(logs[key])

    def _fire(self, net, optimizer, *, step, epoch, batch, loss_fn, logs) -> Changes:
        pop = _resolve_hidden(net, "population", self.population)
        if self.patience is not None and epoch is not None:
            value = self._monitored(logs)
            if self.best is None or value < self._threshold(self.best):  # NaN never improves
                if not math.isnan(value):
                    self.best = value
                self.wait = 0
                return Changes()
            self.wait += 1
            if self.wait < self.patience:
                return Changes()
            self.wait = 0
        return self._grow(net, pop, epoch if step is None or self.every == "epoch" else step)

    def _threshold(self, best: float) -> float:
        if self.threshold_mode == "rel":
            return best - abs(best) * self.min_delta
        return best - self.min_delta

    def _grow(self, net: Network, pop: Population, when: int | None) -> Changes:
        m = self.n if self.max_size is None else min(self.n, self.max_size - pop.size)
        if m <= 0:
            return Changes()
        before = net.n_synapses
        pop.add_neurons(m)
        self.births.append((when, m, pop.size))
        return Changes(grown=net.n_synapses - before, neurons_added=m)

    def __repr__(self) -> str:
        name = self.population.name if isinstance(self.population, Population) else self.population
        return (
            f"Neurogenesis({name!r}, n={self.n}, every={self.every!r}, max_size={self.max_size}, "
            f"patience={self.patience}, min_delta={self.min_delta}, monitor={self.monitor!r}, "
            f"threshold_mode={self.threshold_mode!r})"
        )


# ------------------------------------------------------------------ RemoveDead
def _dead_mask(pop: Population) -> tuple[np.ndarray, np.ndarray]:
    """(dead, no_fanin): neurons with no incoming or no outgoing synapse left."""
    fanin = np.zeros(pop.size, dtype=np.int64)
    for p in pop._incoming:
        fanin += p.fanin()
    fanout = np.zeros(pop.size, dtype=np.int64)
    for p in pop._outgoing:
        fanout += p.fanout()
    return (fanin == 0) | (fanout == 0), fanin == 0


def remove_dead_neurons(net: Network, populations: Any = None) -> int:
    """Remove hidden neurons with no fan-in or no fan-out left; return how many.

    A neuron is dead when the sum of its fan-in over incoming projections is 0
    or the sum of its fan-out over outgoing projections is 0.  Removal repeats
    until none is left, since removing one may leave others dead (a neuron
    whose only targets were removed).  Memory is freed
    (:meth:`Population.remove_neurons`).

    The function of the network is preserved: a neuron with no fan-out
    contributes nothing, and one with no fan-in but some fan-out outputs the
    constant ``act(bias)``, which is folded into its targets' biases
    (``bias[post] += w * act(bias[pre])``) before it is removed (exact in eval
    mode; with dropout on the dead population, in expectation).

    A population keeps at least one neuron: if all of its neurons are dead, the
    one with the smallest id stays.

    Parameters
    ----------
    net : Network
    populations : None or list of Population / names
        Hidden populations to clean (None: every hidden population).  Naming an
        input or output population is an error.

    Returns
    -------
    n_removed : int
    """
    _check_net(net)
    if populations is None:
        pops = [p for p in net._topological_order() if not (p.is_input or p.is_output)]
    else:
        if isinstance(populations, (str, Population)) or not isinstance(populations, Sequence):
            raise TypeError(
                f"populations must be None or a list of populations or names, got {_describe(populations)}"
            )
        pops = []
        for i, item in enumerate(populations):
            pop = _resolve_hidden(net, f"populations[{i}]", item)
            if pop not in pops:
                pops.append(pop)
    total = 0
    changed = True
    while changed:
        changed = False
        for pop in pops:
            dead, no_fanin = _dead_mask(pop)
            ids = np.flatnonzero(dead)
            if ids.size == pop.size:
                ids = ids[1:]
            if ids.size == 0:
                continue
            _fold_constants(pop, ids[no_fanin[ids]])
            pop.remove_neurons(ids)
            total += int(ids.size)
            changed = True
    return total


def _fold_constants(pop: Population, ids: np.ndarray) -> None:
    """Add the constant output act(bias) of fan-in-less neurons ids to their targets' biases."""
    if ids.size == 0:
        return
    c = np.zeros((ids.size, 1), dtype=np.float32)
    _core.pop_forward(c, np.ascontiguousarray(pop._bias[ids]), pop._act, 1)  # act(0 + bias)
    for p in pop._outgoing:
        for i, v in zip(ids, c[:, 0]):
            targets, w = p.synapses(int(i))
            if targets.size and v != 0.0:
                np.add.at(p.post._bias, targets, (w * v).astype(np.float32))


class RemoveDead(Rule):
    """Remove dead hidden neurons (no fan-in or no fan-out left) on a schedule.

    See :func:`remove_dead_neurons` (which does the work, preserving the
    network's function).  ``Changes`` reports the neurons removed and, as
    ``pruned``, the synapses removed with them.

    Parameters
    ----------
    every : "epoch" or int
    populations : None or list of Population / names
        Hidden populations to clean; None means every hidden population.
    """

    def __init__(self, every: Any = "epoch", populations: Any = None):
        super().__init__(every)
        if populations is not None and (
            isinstance(populations, (str, Population)) or not isinstance(populations, Sequence)
        ):
            raise TypeError(
                f"populations must be None or a list of populations or names, got {_describe(populations)}"
            )
        for i, item in enumerate(populations or ()):
            if not isinstance(item, (str, Population)):
                raise TypeError(f"populations[{i}] must be a Population or a name, got {_describe(item)}")
        self.populations = None if populations is None else list(populations)

    def _fire(self, net, optimizer, *, step, epoch, batch, loss_fn, logs) -> Changes:
        before = net.n_synapses
        n = remove_dead_neurons(net, self.populations)
        return Changes(pruned=before - net.n_synapses, neurons_removed=n)

    def __repr__(self) -> str:
        return f"RemoveDead(every={self.every!r}, populations={self.populations!r})"
