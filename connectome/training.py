"""The training loop: :func:`fit` and the :class:`History` it returns.

>>> import numpy as np
>>> import connectome as cx
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(200, 8)).astype(np.float32)
>>> y = (X[:, 0] > 0).astype(np.int64)
>>> net = cx.Network(seed=0)
>>> _ = net.add_population("in", 8)
>>> _ = net.add_population("hid", 16, activation="relu")
>>> _ = net.add_population("out", 2)
>>> _ = net.connect("in", "hid", fanout=8)
>>> _ = net.connect("hid", "out", fanout=2)
>>> h = cx.fit(net, X, y, epochs=5, batch_size=20, progress=False)
>>> len(h), h["loss"][-1] < h["loss"][0]
(5, True)
"""

from __future__ import annotations

import importlib
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from . import losses as _losses
from .network import Network, _as_bool, _as_int, _as_seed, _describe

__all__ = ["History", "fit"]

# Columns of History, in to_table order (keys absent from a run are skipped).
_KEYS = (
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "n_synapses",
    "density",
    "neurons_born",
    "neurons_removed",
    "synapses_pruned",
    "synapses_grown",
    "seconds",
)
_CHANGE_FIELDS = (
    ("pruned", "synapses_pruned"),
    ("grown", "synapses_grown"),
    ("neurons_added", "neurons_born"),
    ("neurons_removed", "neurons_removed"),
)


class History:
    """Per-epoch records of a :func:`fit` run (keras-like).

    Attributes
    ----------
    history : dict[str, list]
        One list per key, one entry per epoch: ``loss`` (mean training loss),
        ``accuracy`` (classification losses only; training batches, with
        dropout active), ``val_loss`` / ``val_accuracy`` (with
        validation_data; eval mode), ``n_synapses`` and ``density`` (at the
        epoch's end: synapses / sum over projections of n_pre * n_post),
        ``neurons_born``, ``neurons_removed``, ``synapses_pruned``
        (plasticity rules plus the optimiser's zero-removal),
        ``synapses_grown`` and ``seconds`` (wall time of the epoch,
        validation and plasticity included).
    epoch : list[int]
        Epoch numbers, from 1.
    """

    def __init__(self, keys: Iterable[str] = ()):
        self.history: dict[str, list[Any]] = {k: [] for k in keys}
        self.epoch: list[int] = []

    def _append(self, epoch: int, logs: Mapping[str, Any]) -> None:
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def __getitem__(self, key: str) -> list[Any]:
        try:
            return self.history[key]
        except KeyError:
            raise KeyError(
                f"{key!r} is not recorded in this History: expected one of {list(self.history)}"
            ) from None

    def __contains__(self, key: object) -> bool:
        return key in self.history

    def __len__(self) -> int:
        return len(self.epoch)

    def keys(self) -> list[str]:
        return list(self.history)

    def to_table(self) -> str:
        """The records as an aligned text table, one row per epoch."""
        keys = [k for k in _KEYS if k in self.history] + [k for k in self.history if k not in _KEYS]
        cells = [[str(e) for e in self.epoch]]
        for k in keys:
            cells.append([_fmt(k, v) for v in self.history[k]])
        header = ["epoch", *keys]
        widths = [max(len(h), *(len(c) for c in col)) if col else len(h) for h, col in zip(header, cells)]
        lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
        for i in range(len(self.epoch)):
            lines.append("  ".join(col[i].rjust(w) for col, w in zip(cells, widths)))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_table()

    def __repr__(self) -> str:
        return f"History(epochs={len(self)}, keys={list(self.history)})"


def _fmt(key: str, v: Any) -> str:
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if key == "seconds":
        return f"{v:.2f}"
    if key == "density":
        return f"{v:.4f}"
    return f"{v:.4f}"


# --------------------------------------------------------------- argument checks
def _inputs(net: Network, X: Any, arg: str) -> tuple[np.ndarray | dict[str, np.ndarray], int]:
    """X as float32 (n, N) C-contiguous (one copy at most), or a dict of them per input name."""
    inputs = net.inputs
    if isinstance(X, Mapping):
        given: dict[str, Any] = {}
        for key, v in X.items():
            if not isinstance(key, str) and not hasattr(key, "name"):
                raise TypeError(f"{arg} keys must be population names, got {_describe(key)}")
            pop = net._resolve(f"{arg} key", key)
            if pop not in inputs:
                raise ValueError(
                    f"{arg} has key {pop.name!r}, expected only input populations {[p.name for p in inputs]}"
                )
            given[pop.name] = v
        missing = [p.name for p in inputs if p.name not in given]
        if missing:
            raise ValueError(f"{arg} is missing input population(s) {missing}")
        items = given
    else:
        if len(inputs) != 1:
            raise TypeError(
                f"{arg} must be a dict keyed by input population name, since the network has "
                f"{len(inputs)} inputs: {[p.name for p in inputs]}"
            )
        items = {inputs[0].name: X}
    out: dict[str, np.ndarray] = {}
    n = None
    for name, v in items.items():
        label = arg if not isinstance(X, Mapping) else f"{arg}[{name!r}]"
        size = net[name].size
        a = _losses._real_array(label, v)
        if a.ndim != 2 or a.shape[1] != size:
            raise ValueError(f"{label} has shape {a.shape}, expected (n_samples, {size}) for input {name!r}")
        if n is not None and a.shape[0] != n:
            raise ValueError(f"{label} has {a.shape[0]} samples, expected {n} like the other inputs")
        n = a.shape[0]
        with np.errstate(over="ignore", invalid="ignore"):
            a32 = np.ascontiguousarray(a, dtype=np.float32)
        _losses._check_finite(label, a32)
        out[name] = a32
    assert n is not None
    if n == 0:
        raise ValueError(f"{arg} has no samples: expected at least one")
    if isinstance(X, Mapping):
        return out, n
    return next(iter(out.values())), n


def _targets(net: Network, y: Any, n: int, loss: Any, arg: str) -> tuple[Any, np.ndarray | None]:
    """Checked targets and, for classification, the (n,) class of each sample."""
    named = loss if isinstance(loss, str) else None
    if named is None:  # a user's callable: only the number of samples is checked
        items = y.values() if isinstance(y, Mapping) else [y]
        for v in items:
            if not hasattr(v, "__len__") or not hasattr(v, "__getitem__"):
                raise TypeError(f"{arg} must be an array (or a dict of arrays), got {_describe(v)}")
            if len(v) != n:
                raise ValueError(f"{arg} has {len(v)} samples, expected {n} (one per row of X)")
        if isinstance(y, Mapping):
            return {k: np.asarray(v) for k, v in y.items()}, None
        return np.asarray(y), None
    outputs = net.outputs
    if len(outputs) != 1:
        raise ValueError(
            f"loss={named!r} needs a single output population, the network has {[p.name for p in outputs]}: "
            "pass a callable loss taking and returning dicts"
        )
    size = outputs[0].size
    t = _losses._real_array(arg, y)
    if t.ndim == 0 or t.shape[0] != n:
        raise ValueError(f"{arg} has shape {t.shape}, expected {n} samples (one per row of X)")
    if named == "softmax_cross_entropy":
        try:
            t = _losses._check_labels(t, n, size)
        except (TypeError, ValueError) as e:
            raise type(e)(str(e).replace("labels", arg)) from None
        return t, (t if t.ndim == 1 else t.argmax(axis=1))
    if t.shape != (n, size):
        raise ValueError(
            f"{arg} has shape {t.shape}, expected ({n}, {size}) like the output {outputs[0].name!r}"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        t = np.ascontiguousarray(t, dtype=np.float32)
    _losses._check_finite(arg, t)
    return t, None


def _rules(plasticity: Any) -> list[Any]:
    if plasticity is None:
        return []
    rules = [plasticity] if hasattr(plasticity, "on_epoch") else plasticity
    try:
        rules = list(rules)
    except TypeError:
        raise TypeError(
            f"plasticity must be a rule or a sequence of rules, got {_describe(plasticity)}"
        ) from None
    for i, r in enumerate(rules):
        for m in ("bind", "on_step", "on_epoch"):
            if not callable(getattr(r, m, None)):
                raise TypeError(
                    f"plasticity[{i}]={_describe(r)} has no method {m}(): expected a cx.plasticity rule"
                )
    return rules


def _take(data: Any, idx: Any) -> Any:
    if isinstance(data, dict):
        return {k: v[idx] for k, v in data.items()}
    return data[idx]


def _density(net: Network) -> tuple[int, float]:
    n = 0
    slots = 0
    for p in net._projections:
        n += p.n_synapses
        slots += p._core.n_pre * p._core.n_post
    return n, (n / slots if slots else 0.0)


def _summary(logs: Mapping[str, Any]) -> str:
    parts = [f"loss {logs['loss']:.4f}"]
    for k in ("accuracy", "val_loss", "val_accuracy"):
        if k in logs:
            parts.append(f"{k} {logs[k]:.4f}")
    parts.append(f"synapses {logs['n_synapses']:,} (density {logs['density']:.4f})")
    churn = [
        f"{word} {logs[k]:,}"
        for word, k in (
            ("pruned", "synapses_pruned"),
            ("grown", "synapses_grown"),
            ("born", "neurons_born"),
            ("removed", "neurons_removed"),
        )
        if logs[k]
    ]
    if churn:
        parts.append(" ".join(churn))
    parts.append(f"{logs['seconds']:.2f}s")
    return "  ".join(parts)


# ------------------------------------------------------------------------- fit
def fit(
    net: Network,
    X: Any,
    y: Any,
    epochs: int = 10,
    batch_size: int = 32,
    optimizer: Any = None,
    loss: str | Callable[[Any, Any], tuple[float, Any]] = "softmax_cross_entropy",
    plasticity: Any = (),
    validation_data: tuple[Any, Any] | None = None,
    progress: bool = True,
    seed: int | None = None,
    shuffle: bool = True,
    drop_last: bool = False,
    lr_schedule: Callable[[int], float] | None = None,
) -> History:
    """Train net on (X, y) with mini-batches, applying plasticity rules on schedule.

    Each step: ``optimizer.zero_grad()``, ``net.forward(xb)``, ``loss(pred, yb)``,
    ``net.backward(grad)``, ``optimizer.step()`` (whose return value, the
    synapses its zero-removal deleted, counts as pruned), then
    ``rule.on_step(...)`` for every rule.  At each epoch's end: the
    validation loss (if validation_data, in eval mode), then
    ``rule.on_epoch(...)`` for every rule, then the History record.  Each
    rule decides whether a call fires (``every``); see :mod:`connectome.plasticity`.
    The last batch of an epoch may be smaller.  The network is in training
    mode (dropout active) during the run and back in its previous mode after
    it, even on error.  Every argument is checked before anything changes.

    Parameters
    ----------
    net : Network
    X : (n, N) real array
        Inputs, finite; a dict ``{name: array}`` when there are several
        input populations.  Converted to float32 once (no copy if it already
        is float32 C-contiguous).
    y : array
        Targets: for ``"softmax_cross_entropy"``, (n,) integer class ids in
        ``[0, C)`` or (n, C) probabilities; for ``"mse"``, (n, C) reals; for a
        callable loss, anything indexable along its first axis (or a dict of
        such arrays), sliced like X.
    epochs : int
        ``>= 1``.
    batch_size : int
        ``>= 1``.
    optimizer : optimiser or None
        Anything with ``zero_grad()`` and ``step() -> int``, e.g.
        :class:`connectome.optim.Adam`.  None (default) builds
        ``cx.optim.SGD(net, lr=0.01, momentum=0.9)``.
    loss : str or callable
        ``"softmax_cross_entropy"`` (default) or ``"mse"`` (see
        :mod:`connectome.losses`; both need a single output population), or
        a callable ``(pred, yb) -> (loss: float, grad)`` with pred and grad
        shaped like forward's output.  ``accuracy`` is recorded for
        ``"softmax_cross_entropy"`` only.
    plasticity : rule or sequence of rules
        Objects following the :class:`connectome.plasticity.Rule` protocol:
        ``bind(net, optimizer, epochs=, steps_per_epoch=)`` is called once
        before training; ``on_step(net, optimizer, step=, epoch=, batch=,
        loss_fn=)`` after every optimiser step (step counts from 1 over the
        whole run); ``on_epoch(net, optimizer, epoch=, logs=, batch=,
        loss_fn=)`` at each epoch's end, with logs holding the epoch's
        ``loss`` (and ``accuracy``, ``val_loss``, ``val_accuracy`` when
        recorded) and batch the epoch's last ``(xb, yb)``.  Each returns a
        ``Changes`` (pruned, grown, neurons_added, neurons_removed) or None.
    validation_data : (X_val, y_val) or None
        Checked like X and y; evaluated at each epoch's end with
        :meth:`Network.predict`.
    progress : bool
        True: a tqdm bar per epoch if tqdm is installed (the optional extra),
        otherwise one line per epoch on stdout.  False: silent.
    seed : int or None
        Seeds the shuffling.  None draws a seed from the network's
        generator, so a network built with a seed trains reproducibly.
    shuffle : bool
        Reshuffle the samples every epoch (default); False keeps their order.
    drop_last : bool
        False (default): the last batch of an epoch holds the remaining
        ``n % batch_size`` samples.  True: every batch is full and those
        samples sit the epoch out (a different few each epoch when
        shuffling), as PyTorch's ``DataLoader(drop_last=True)``.
    lr_schedule : callable or None
        ``lr_schedule(epoch) -> lr`` (epoch from 1), set as ``optimizer.lr``
        at the start of each epoch, as Keras' LearningRateScheduler does; e.g.
        ``lambda e: 0.1 * 0.5 ** ((e - 1) // 20)``.  A value that is not a
        positive finite number raises ValueError before that epoch runs.
        None (default): the optimiser's lr is left alone.

    Returns
    -------
    History
        Per-epoch records; see :class:`History`.

    Raises
    ------
    FloatingPointError
        The loss became NaN or infinite (training diverged; try a smaller
        learning rate).  The network keeps the state it had reached.
    """
    # -- every check first: nothing below this block may fail on bad arguments
    if not isinstance(net, Network):
        raise TypeError(f"net must be a connectome Network, got {_describe(net)}")
    if not net._projections:
        raise ValueError("net has no projections: there is nothing to train")
    epochs = _as_int("epochs", epochs, 1)
    batch_size = _as_int("batch_size", batch_size, 1)
    progress = _as_bool("progress", progress)
    shuffle = _as_bool("shuffle", shuffle)
    drop_last = _as_bool("drop_last", drop_last)
    if seed is not None:
        seed = _as_seed("seed", seed)
    if isinstance(loss, str) and loss not in _losses.LOSSES:
        raise ValueError(f"loss={loss!r} is unknown: expected one of {list(_losses.LOSSES)} or a callable")
    loss_fn = _losses.get(loss)
    Xd, n = _inputs(net, X, "X")
    yd, y_cls = _targets(net, y, n, loss, "y")
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError(
                f"validation_data must be a pair (X_val, y_val), got {_describe(validation_data)}"
            )
        Xv, nv = _inputs(net, validation_data[0], "validation_data[0]")
        yv, yv_cls = _targets(net, validation_data[1], nv, loss, "validation_data[1]")
        val = (Xv, yv, yv_cls)
    if optimizer is not None:
        for m in ("zero_grad", "step"):
            if not callable(getattr(optimizer, m, None)):
                raise TypeError(
                    f"optimizer={_describe(optimizer)} has no method {m}(): expected a cx.optim optimiser"
                )
        bound = getattr(optimizer, "net", None)
        if isinstance(bound, Network) and bound is not net:
            raise ValueError("optimizer was built for another network: expected one built with this net")
    rules = _rules(plasticity)
    if drop_last and n < batch_size:
        raise ValueError(
            f"drop_last=True with batch_size={batch_size} > {n} samples would train on nothing: "
            "expected batch_size <= the number of samples"
        )
    if lr_schedule is not None:
        if not callable(lr_schedule):
            raise TypeError(f"lr_schedule must be a callable epoch -> lr, got {_describe(lr_schedule)}")
        if optimizer is not None and not hasattr(optimizer, "lr"):
            raise TypeError(
                f"lr_schedule needs an optimizer with an lr attribute, got {_describe(optimizer)}"
            )
    bar_cls: Any = None
    if progress:
        try:  # the optional extra; plain lines without it
            bar_cls = importlib.import_module("tqdm.auto").tqdm
        except ImportError:
            bar_cls = None

    # Internal losses skip the per-step checks: the targets were checked above.
    if loss == "softmax_cross_entropy" or loss is _losses.softmax_cross_entropy:
        step_loss: Callable[[Any, Any], tuple[float, Any]] = _losses._softmax_cross_entropy
    elif loss == "mse" or loss is _losses.mse:
        step_loss = _losses._mse
    else:
        step_loss = loss_fn
    classify = y_cls is not None

    if optimizer is None:
        from . import optim

        optimizer = optim.SGD(net, lr=0.01, momentum=0.9)
    if seed is None:
        seed = net._draw_seed()
    rng = np.random.default_rng(seed)
    steps = n // batch_size if drop_last else -(-n // batch_size)
    n_used = steps * batch_size if drop_last else n  # samples seen per epoch
    history = History(k for k in _KEYS if (k != "accuracy" or classify) and (not k.startswith("val") or val))
    if val is not None and not classify:
        history.history.pop("val_accuracy", None)

    was_training = net.training
    net.train()
    try:
        for r in rules:
            r.bind(net, optimizer, epochs=epochs, steps_per_epoch=steps)
        step = 0
        xb: Any = None
        yb: Any = None
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            if lr_schedule is not None:
                optimizer.lr = _scheduled_lr(lr_schedule, epoch)
            counts = dict.fromkeys(
                ("synapses_pruned", "synapses_grown", "neurons_born", "neurons_removed"), 0
            )
            perm = rng.permutation(n) if shuffle else None
            loss_sum = 0.0
            correct = 0
            bar = bar_cls(total=steps, desc=f"epoch {epoch}/{epochs}", leave=True) if bar_cls else None
            try:
                for b in range(steps):
                    idx: Any = slice(b * batch_size, (b + 1) * batch_size)
                    if perm is not None:
                        idx = perm[idx]
                    xb = _take(Xd, idx)
                    yb = _take(yd, idx)
                    optimizer.zero_grad()
                    pred = net.forward(xb)
                    lval, grad = step_loss(pred, yb)
                    lval = float(lval)
                    if not math.isfinite(lval):
                        raise FloatingPointError(
                            f"the loss is {lval} at epoch {epoch}, step {step + 1}: training diverged "
                            "(try a smaller learning rate)"
                        )
                    net.backward(grad)
                    removed = optimizer.step()
                    if removed:
                        counts["synapses_pruned"] += int(removed)
                    step += 1
                    size = len(pred) if not isinstance(pred, dict) else len(next(iter(pred.values())))
                    loss_sum += lval * size
                    if y_cls is not None:
                        correct += int(np.count_nonzero(pred.argmax(axis=1) == y_cls[idx]))
                    for r in rules:
                        _count(
                            counts,
                            r.on_step(
                                net, optimizer, step=step, epoch=epoch, batch=(xb, yb), loss_fn=loss_fn
                            ),
                        )
                    if bar is not None:
                        bar.update(1)
                logs: dict[str, Any] = {"loss": loss_sum / n_used}
                if classify:
                    logs["accuracy"] = correct / n_used
                if val is not None:
                    Xv, yv, yv_cls = val
                    pv = net.predict(Xv, batch_size=max(256, batch_size))
                    logs["val_loss"] = float(step_loss(pv, yv)[0])
                    if classify:
                        logs["val_accuracy"] = float(np.mean(pv.argmax(axis=1) == yv_cls))
                for r in rules:
                    _count(
                        counts,
                        r.on_epoch(
                            net, optimizer, epoch=epoch, logs=dict(logs), batch=(xb, yb), loss_fn=loss_fn
                        ),
                    )
                logs["n_synapses"], logs["density"] = _density(net)
                logs.update(counts)
                logs["seconds"] = time.perf_counter() - t0
                history._append(epoch, logs)
                if bar is not None:
                    bar.set_postfix_str(_summary(logs), refresh=True)
                elif progress:
                    print(f"epoch {epoch}/{epochs}  {_summary(logs)}", file=sys.stdout, flush=True)
            finally:
                if bar is not None:
                    bar.close()
    finally:
        net.train(was_training)
    return history


def _scheduled_lr(schedule: Callable[[int], float], epoch: int) -> float:
    """lr_schedule(epoch), checked."""
    value = schedule(epoch)
    try:
        lr = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"lr_schedule({epoch}) returned {_describe(value)}: expected a float") from None
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr_schedule({epoch}) returned {lr}: expected a positive finite learning rate")
    return lr


def _count(counts: dict[str, int], changes: Any) -> None:
    """Add a rule's Changes (or None) to the epoch's counters."""
    if changes is None:
        return
    for attr, key in _CHANGE_FIELDS:
        v = getattr(changes, attr, 0)
        if v:
            counts[key] += int(v)
