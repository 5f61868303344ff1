"""Random sequences of structural edits against a plain Python model.

Model: per projection ``dict[(pre, post)] -> w`` (and a parallel ``dict -> grad``), plus
population sizes, biases and bias grads.  After every step the engine must equal the model
exactly (to_coo, grad, n_synapses, fanout/fanin, sizes, biases) and its forward pass must
match the dense oracle built from the model.  Failing calls (out-of-range ids, duplicates,
absent synapses, too many synapses to grow...) must raise and change nothing, which the
same invariants check because the model is left untouched.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from reference import DenseNetwork, DenseReference, assert_within
from strategies import activations, build_network, from_api, network_specs, seeds, to_api

import connectome as cx


class ConnectomeMachine(RuleBasedStateMachine):
    # ------------------------------------------------------------- set-up
    @initialize(spec=network_specs(max_populations=4, max_size=6, max_batch=3))
    def build(self, spec):
        self.net = build_network(spec)
        self.rng = np.random.default_rng(spec.seed)
        self.batch = spec.batch
        self.names = list(spec.names)
        self.acts = {n: self.net.populations[n].activation for n in self.names}
        self.size = {n: self.net.populations[n].size for n in self.names}
        self.bias = {n: np.array(self.net.populations[n].bias, np.float32) for n in self.names}
        self.bias_grad = {n: np.zeros(self.size[n], np.float32) for n in self.names}
        self.projs = []  # (pre name, post name, fanout rule)
        self.syn = []  # dict[(pre, post)] -> float (a float32 value)
        self.grad = []  # dict[(pre, post)] -> float
        for p in self.net.projections:
            pre, post, w = p.to_coo()
            self.projs.append((p.pre.name, p.post.name, p.fanout_rule))
            self.syn.append({(int(i), int(j)): float(v) for i, j, v in zip(pre, post, w)})
            self.grad.append({key: 0.0 for key in self.syn[-1]})
        self.update_roles()

    def update_roles(self):
        """Inputs / outputs from the model's topology; the network must agree."""
        ref = self.reference()
        self.inputs = ref.inputs
        self.outputs = ref.outputs
        assert sorted(p.name for p in self.net.inputs) == sorted(self.inputs)
        assert sorted(p.name for p in self.net.outputs) == sorted(self.outputs)

    # ------------------------------------------------------------ helpers
    def proj(self, k):
        return self.net.projections[k]

    def dims(self, k):
        pre, post, _ = self.projs[k]
        return self.size[pre], self.size[post]

    def absent(self, k):
        n_pre, n_post = self.dims(k)
        have = self.syn[k]
        return [(i, j) for i in range(n_pre) for j in range(n_post) if (i, j) not in have]

    def reference(self) -> DenseNetwork:
        ref = DenseNetwork()
        for n in self.names:
            ref.add_population(n, self.size[n], self.acts[n], self.bias[n])
        for k, (pre, post, _) in enumerate(self.projs):
            ref.connect(pre, post, DenseReference.from_model(self.size[pre], self.size[post], self.syn[k]))
        return ref

    def random_x(self):
        return {
            n: self.rng.uniform(-1, 1, (self.batch, self.size[n])).astype(np.float32) for n in self.inputs
        }

    def engine_dict(self, k):
        pre, post, w = self.proj(k).to_coo()
        return {(int(i), int(j)): float(v) for i, j, v in zip(pre, post, w)}

    projections = st.integers(0, 10**6)  # reduced modulo the number of projections

    # -------------------------------------------------------------- edits
    @rule(k=projections, data=st.data())
    def add_synapses(self, k, data):
        k %= len(self.projs)
        absent = self.absent(k)
        if not absent:
            return
        chosen = data.draw(
            st.lists(st.sampled_from(absent), min_size=1, max_size=min(5, len(absent)), unique=True)
        )
        w = self.rng.choice([0.0, 0.5, -0.5, 1.0], size=len(chosen)) * (self.rng.random(len(chosen)) < 0.3)
        w = np.where(w == 0, self.rng.uniform(-1, 1, len(chosen)), w).astype(np.float32)
        pre = np.array([c[0] for c in chosen], dtype=np.int64)
        post = np.array([c[1] for c in chosen], dtype=np.int32)
        self.proj(k).add_synapses(pre, post, w)
        for c, v in zip(chosen, w):
            self.syn[k][c] = float(v)
            self.grad[k][c] = 0.0

    @rule(k=projections, data=st.data())
    def add_existing_synapse_fails(self, k, data):
        k %= len(self.projs)
        if not self.syn[k]:
            return
        existing = data.draw(st.sampled_from(sorted(self.syn[k])))
        batch = [existing]
        absent = self.absent(k)
        if absent:
            batch.insert(data.draw(st.integers(0, 1)), data.draw(st.sampled_from(absent)))
        try:
            self.proj(k).add_synapses(
                [b[0] for b in batch], [b[1] for b in batch], np.ones(len(batch), np.float32)
            )
        except ValueError:
            pass
        else:
            raise AssertionError(f"adding existing synapse {existing} did not raise ValueError")

    @rule(k=projections, data=st.data())
    def add_duplicate_in_batch_fails(self, k, data):
        k %= len(self.projs)
        absent = self.absent(k)
        if not absent:
            return
        a = data.draw(st.sampled_from(absent))
        try:
            self.proj(k).add_synapses([a[0], a[0]], [a[1], a[1]], [0.5, 0.25])
        except ValueError:
            pass
        else:
            raise AssertionError(f"duplicate {a} in one batch did not raise ValueError")

    @rule(k=projections, data=st.data())
    def remove_synapses(self, k, data):
        k %= len(self.projs)
        if not self.syn[k]:
            return
        chosen = data.draw(
            st.lists(st.sampled_from(sorted(self.syn[k])), min_size=1, max_size=5, unique=True)
        )
        self.proj(k).remove_synapses([c[0] for c in chosen], [c[1] for c in chosen])
        for c in chosen:
            del self.syn[k][c]
            del self.grad[k][c]

    @rule(k=projections, data=st.data())
    def remove_absent_synapse_fails(self, k, data):
        k %= len(self.projs)
        absent = self.absent(k)
        if not absent:
            return
        batch = [data.draw(st.sampled_from(absent))]
        if self.syn[k]:
            batch.insert(data.draw(st.integers(0, 1)), data.draw(st.sampled_from(sorted(self.syn[k]))))
        try:
            self.proj(k).remove_synapses([b[0] for b in batch], [b[1] for b in batch])
        except (KeyError, ValueError):
            pass
        else:
            raise AssertionError(f"removing absent synapse {batch} did not raise")

    @rule(k=projections, data=st.data(), remove=st.booleans())
    def out_of_range_ids_fail(self, k, data, remove):
        k %= len(self.projs)
        n_pre, n_post = self.dims(k)
        side = data.draw(st.sampled_from(["pre", "post"]))
        n = n_pre if side == "pre" else n_post
        bad = data.draw(st.sampled_from([-1, -n - 1, n, n + 3, 2**31 - 1]))
        good_pre = data.draw(st.integers(0, n_pre - 1))
        good_post = data.draw(st.integers(0, n_post - 1))
        pre, post = ([bad], [good_post]) if side == "pre" else ([good_pre], [bad])
        if data.draw(st.booleans()):  # hide it behind a valid entry
            absent = self.absent(k)
            if absent:
                a = data.draw(st.sampled_from(absent))
                pre, post = [a[0], *pre], [a[1], *post]
        p = self.proj(k)
        try:
            if remove:
                p.remove_synapses(pre, post)
            else:
                p.add_synapses(pre, post, np.full(len(pre), 0.5, np.float32))
        except IndexError:
            pass
        else:
            raise AssertionError(f"out-of-range {side} id {bad} did not raise IndexError")

    @rule(k=projections, t=st.one_of(st.floats(0.0, 1.2), st.sampled_from([0.0, 0.5, 1.0])))
    def prune_threshold(self, k, t):
        k %= len(self.projs)
        removed = self.proj(k).prune(threshold=t)
        t32 = np.float32(t)
        gone = [key for key, w in self.syn[k].items() if not abs(np.float32(w)) >= t32]
        assert removed == len(gone), f"prune(threshold={t}) removed {removed}, expected {len(gone)}"
        for key in gone:
            del self.syn[k][key]
            del self.grad[k][key]

    @rule(k=projections, f=st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0])))
    def prune_fraction(self, k, f):
        k %= len(self.projs)
        n = len(self.syn[k])
        count = math.floor(f * n)
        order = sorted(self.syn[k], key=lambda key: (abs(self.syn[k][key]), key))
        removed = self.proj(k).prune(fraction=f)
        assert removed == count, f"prune(fraction={f}) of {n} removed {removed}, expected floor(f*n)={count}"
        for key in order[:count]:
            del self.syn[k][key]
            del self.grad[k][key]

    @rule(k=projections, f=st.sampled_from([-0.5, 1.0001, 2.0, float("nan"), float("inf")]))
    def prune_bad_fraction_fails(self, k, f):
        k %= len(self.projs)
        try:
            self.proj(k).prune(fraction=f)
        except ValueError:
            pass
        else:
            raise AssertionError(f"prune(fraction={f}) did not raise ValueError")

    @rule(k=projections, data=st.data(), seed=seeds, weight=st.sampled_from([0.0, 0.125, -0.75]))
    def grow(self, k, data, seed, weight):
        k %= len(self.projs)
        n_pre, n_post = self.dims(k)
        free = n_pre * n_post - len(self.syn[k])
        n = data.draw(st.integers(0, min(free, 8)))
        assert self.proj(k).grow(n, weight=weight, seed=seed) == n
        after = self.engine_dict(k)
        new = set(after) - set(self.syn[k])
        assert len(new) == n, f"grow({n}) added {len(new)} new synapses"
        assert len(after) == len(self.syn[k]) + n, "grow removed or duplicated synapses"
        for key in new:
            assert after[key] == np.float32(weight)
            self.syn[k][key] = after[key]
            self.grad[k][key] = 0.0

    @rule(k=projections, f=st.floats(0.0, 1.0), seed=seeds, weight=st.sampled_from([0.0, 0.125, -0.75]))
    def rewire(self, k, f, seed, weight):
        k %= len(self.projs)
        n_pre, n_post = self.dims(k)
        n = len(self.syn[k])
        count = math.floor(f * n)
        if count > n_pre * n_post - n:
            return  # not enough absent slots: the error path is tested in test_rewire.py
        order = sorted(self.syn[k], key=lambda key: (abs(self.syn[k][key]), key))
        before = set(self.syn[k])
        assert self.proj(k).rewire(f, weight=weight, seed=seed) == count
        for key in order[:count]:  # the same synapses prune(fraction=f) removes
            del self.syn[k][key]
            del self.grad[k][key]
        after = self.engine_dict(k)
        new = set(after) - set(self.syn[k])
        assert len(after) == n and len(new) == count, "rewire must keep the count and regrow exactly"
        assert not new & before, "rewire regrew a synapse that existed before the call"
        for key in new:
            assert after[key] == np.float32(weight)
            self.syn[k][key] = after[key]
            self.grad[k][key] = 0.0

    @rule(k=projections, extra=st.integers(1, 3))
    def grow_too_many_fails(self, k, extra):
        k %= len(self.projs)
        n_pre, n_post = self.dims(k)
        free = n_pre * n_post - len(self.syn[k])
        try:
            self.proj(k).grow(free + extra, seed=1)
        except ValueError:
            pass
        else:
            raise AssertionError(f"grow({free + extra}) with {free} free slots did not raise")

    @rule(k=projections)
    def set_weights(self, k):
        k %= len(self.projs)
        keys = sorted(self.syn[k])
        w = self.rng.uniform(-1, 1, len(keys)).astype(np.float32)
        ties = self.rng.random(len(keys)) < 0.3
        w[ties] = np.float32(0.25) * np.sign(w[ties])
        self.proj(k).set_weights(w)
        for key, v in zip(keys, w):
            self.syn[k][key] = float(v)

    # ------------------------------------------------------------ neurons
    @rule(pop=st.integers(0, 10**6), n=st.integers(0, 3))
    def add_neurons(self, pop, n):
        name = self.names[pop % len(self.names)]
        ref = self.reference()
        x = self.random_x()
        y_before = from_api(self.net.forward(to_api(x, self.inputs)), self.outputs)
        tol_before = ref.forward(x).tol
        size0 = self.size[name]

        self.net.populations[name].add_neurons(n)

        self.size[name] = size0 + n
        newbias = np.asarray(self.net.populations[name].bias)
        assert np.array_equal(newbias[:size0], self.bias[name]), "add_neurons changed old biases"
        assert np.all(np.isfinite(newbias))
        self.bias[name] = np.array(newbias, np.float32)
        self.bias_grad[name] = np.concatenate([self.bias_grad[name], np.zeros(n, np.float32)])
        for k, (pre, post, rule_) in enumerate(self.projs):
            after = self.engine_dict(k)
            new = set(after) - set(self.syn[k])
            assert set(self.syn[k]) <= set(after), "add_neurons removed synapses"
            if pre == name:
                assert all(i >= size0 for i, _ in new)
                counts = np.bincount([i - size0 for i, _ in new], minlength=n)
                assert np.all(counts == min(rule_, self.size[post])), (counts, rule_)
                assert all(after[key] == 0.0 for key in new), "outgoing weights of new neurons must be 0"
            elif post == name:
                assert all(j >= size0 for _, j in new)
                x_rule = rule_ * self.size[pre] / size0
                allowed = {
                    min(max(math.floor(x_rule + 0.5), 0), self.size[pre]),
                    min(max(round(x_rule), 0), self.size[pre]),
                }
                counts = np.bincount([j - size0 for _, j in new], minlength=n)
                assert all(int(c) in allowed for c in counts), (counts, allowed)
            else:
                assert not new
            for key in new:
                self.syn[k][key] = after[key]
                self.grad[k][key] = 0.0
        # unchanged function at birth
        x2 = dict(x)
        if name in x2:
            x2[name] = np.concatenate(
                [x[name], self.rng.uniform(-1, 1, (self.batch, n)).astype(np.float32)], axis=1
            )
        y_after = from_api(self.net.forward(to_api(x2, self.inputs)), self.outputs)
        for out in self.outputs:
            keep = y_before[out].shape[1]
            assert_within(
                y_after[out][:, :keep], y_before[out], 2 * tol_before[out], f"output {out} after add_neurons"
            )

    @rule(pop=st.integers(0, 10**6), data=st.data())
    def remove_neurons(self, pop, data):
        name = self.names[pop % len(self.names)]
        size = self.size[name]
        if size < 2:
            return
        idx = data.draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=size - 1, unique=True))
        self.net.populations[name].remove_neurons(idx)
        srt = np.sort(np.array(idx))

        def renumber(i):
            return i - int(np.searchsorted(srt, i))

        gone = set(idx)
        for k, (pre, post, _) in enumerate(self.projs):
            if name not in (pre, post):
                continue
            syn, grad = {}, {}
            for (i, j), w in self.syn[k].items():
                if (pre == name and i in gone) or (post == name and j in gone):
                    continue
                key = (renumber(i) if pre == name else i, renumber(j) if post == name else j)
                syn[key] = w
                grad[key] = self.grad[k][(i, j)]
            self.syn[k], self.grad[k] = syn, grad
        self.size[name] = size - len(idx)
        self.bias[name] = np.delete(self.bias[name], srt)
        self.bias_grad[name] = np.delete(self.bias_grad[name], srt)

    @rule(pop=st.integers(0, 10**6), data=st.data())
    def remove_neurons_out_of_range_fails(self, pop, data):
        name = self.names[pop % len(self.names)]
        size = self.size[name]
        bad = data.draw(st.sampled_from([size, size + 2, -1]))
        try:
            self.net.populations[name].remove_neurons([0, bad] if size > 1 else [bad])
        except IndexError:
            pass
        else:
            raise AssertionError(
                f"remove_neurons([..., {bad}]) of a population of {size} did not raise IndexError"
            )

    # ----------------------------------------------------------- topology
    def reaches(self, src, dst):
        todo, seen = [src], set()
        while todo:
            n = todo.pop()
            if n == dst:
                return True
            if n in seen:
                continue
            seen.add(n)
            todo.extend(post for pre, post, _ in self.projs if pre == n)
        return False

    def add_projection_to_model(self, p, pre, post, fanout):
        e_pre, e_post, e_w = p.to_coo()
        assert np.array_equal(p.fanout(), np.full(self.size[pre], fanout)), (
            "connect: fan-out differs from fanout"
        )
        self.projs.append((pre, post, fanout))
        self.syn.append({(int(i), int(j)): float(v) for i, j, v in zip(e_pre, e_post, e_w)})
        self.grad.append({key: 0.0 for key in self.syn[-1]})

    @precondition(lambda self: len(getattr(self, "names", ())) < 7)
    @rule(pre=st.integers(0, 10**6), size=st.integers(1, 5), act=activations(), frac=st.floats(0, 1))
    def connect_new_population(self, pre, size, act, frac):
        pre = self.names[pre % len(self.names)]
        name = f"q{len(self.names)}"
        self.net.add_population(name, size, activation=act)
        self.names.append(name)
        self.acts[name] = act
        self.size[name] = size
        self.bias[name] = np.array(self.net.populations[name].bias, np.float32)
        assert self.bias[name].shape == (size,)
        self.bias_grad[name] = np.zeros(size, np.float32)
        fanout = int(frac * size)
        p = self.net.connect(pre, name, fanout=fanout)
        assert (p.pre.name, p.post.name) == (pre, name)
        self.add_projection_to_model(p, pre, name, fanout)
        self.update_roles()

    @rule(a=st.integers(0, 10**6), b=st.integers(0, 10**6), frac=st.floats(0, 1))
    def connect_existing_populations(self, a, b, frac):
        pre = self.names[a % len(self.names)]
        post = self.names[b % len(self.names)]
        fanout = int(frac * self.size[post])
        refused = (
            pre == post or any(p == pre and q == post for p, q, _ in self.projs) or self.reaches(post, pre)
        )
        try:
            p = self.net.connect(pre, post, fanout=fanout)
        except ValueError:
            assert refused, f"connect({pre}, {post}) refused although it keeps the graph acyclic"
            return
        assert not refused, f"connect({pre}, {post}) accepted: cycle, self-projection or duplicate"
        self.add_projection_to_model(p, pre, post, fanout)
        self.update_roles()

    # ------------------------------------------------------- gradients
    @rule()
    def forward_backward(self):
        ref = self.reference()
        x = self.random_x()
        dy = {n: self.rng.normal(size=(self.batch, self.size[n])).astype(np.float32) for n in self.outputs}
        fw = ref.forward(x)
        y = from_api(self.net.forward(to_api(x, self.inputs)), self.outputs)
        for n in self.outputs:
            assert_within(y[n], fw.values[n], fw.tol[n], f"forward {n}")
        dx = from_api(self.net.backward(to_api(dy, self.outputs)), self.inputs)
        bw = ref.backward(dy)
        for n in self.inputs:
            assert_within(dx[n], bw.dx[n], bw.dx_tol[n], f"dx {n}")
        for n, g in bw.bias_grad.items():
            got = np.asarray(self.net.populations[n].bias_grad)
            prev = self.bias_grad[n].astype(np.float64)
            assert_within(got, prev + g, bw.bias_grad_tol[n] + 1e-6 * np.abs(prev), f"bias_grad {n}")
            self.bias_grad[n] = np.array(got, np.float32)
        for k in range(len(self.projs)):
            p = self.proj(k)
            keys = sorted(self.syn[k])
            prev = np.array([self.grad[k][key] for key in keys], np.float64)
            got = p.grad()
            assert_within(
                got, prev + bw.grad[k], bw.grad_tol[k] + 1e-6 * np.abs(prev), f"grad of projection {k}"
            )
            for key, g in zip(keys, got):
                self.grad[k][key] = float(g)

    @rule()
    def zero_grad(self):
        self.net.zero_grad()
        for k in range(len(self.projs)):
            self.grad[k] = {key: 0.0 for key in self.syn[k]}
        for n in self.names:
            self.bias_grad[n] = np.zeros(self.size[n], np.float32)

    # ------------------------------------------------------- invariants
    @invariant()
    def structure_matches_model(self):
        if not hasattr(self, "net"):
            return
        net = self.net
        assert list(net.populations) == self.names or sorted(net.populations) == sorted(self.names)
        for n in self.names:
            pop = net.populations[n]
            assert pop.size == len(pop) == self.size[n], f"size of {n}"
            assert np.array_equal(np.asarray(pop.bias), self.bias[n]), f"bias of {n}"
            assert np.array_equal(np.asarray(pop.bias_grad), self.bias_grad[n]), f"bias_grad of {n}"
        assert net.n_neurons == sum(self.size.values())
        assert net.n_synapses == sum(len(s) for s in self.syn)
        assert len(net.projections) == len(self.projs)
        for k, (pre, post, _) in enumerate(self.projs):
            p = self.proj(k)
            assert (p.pre.name, p.post.name) == (pre, post)
            keys = sorted(self.syn[k])
            e_pre, e_post, e_w = p.to_coo()
            assert [(int(i), int(j)) for i, j in zip(e_pre, e_post)] == keys, f"synapses of projection {k}"
            assert e_w.tolist() == [self.syn[k][key] for key in keys], f"weights of projection {k}"
            assert p.grad().tolist() == [self.grad[k][key] for key in keys], f"grads of projection {k}"
            assert p.n_synapses == len(p) == len(keys)
            fo = np.zeros(self.size[pre], np.int64)
            fi = np.zeros(self.size[post], np.int64)
            for i, j in keys:
                fo[i] += 1
                fi[j] += 1
            assert np.array_equal(p.fanout(), fo) and np.array_equal(p.fanin(), fi)

    @invariant()
    def forward_matches_oracle(self):
        if not hasattr(self, "net"):
            return
        ref = self.reference()
        x = self.random_x()
        fw = ref.forward(x)
        prev = cx.get_num_threads()
        try:
            cx.set_num_threads(1)
            y1 = from_api(self.net.forward(to_api(x, self.inputs)), self.outputs)
            cx.set_num_threads(2)
            y = from_api(self.net.forward(to_api(x, self.inputs)), self.outputs)
        finally:
            cx.set_num_threads(prev)
        for n in self.outputs:
            assert y1[n].tobytes() == y[n].tobytes(), f"forward {n} differs between 1 and 2 threads"
            assert_within(y[n], fw.values[n], fw.tol[n], f"forward {n}")


ConnectomeMachine.TestCase.settings = settings(stateful_step_count=40)
TestConnectome = ConnectomeMachine.TestCase
