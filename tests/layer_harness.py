"""One harness for every Keras layer of the TensorFlow backend (STYLE.md, section 2).

`check_layer(make, inputs, expected)` builds the layer `make(seed)` and checks, for one call:

- shapes: the output of a real call, `compute_output_shape` and `expected.shape` agree; with
  the batch axis unknown, `compute_output_shape` and a traced call (`tf.function`) give the
  same shape with batch None;
- weights: trainable and non-trainable values as `expected` says, `count_params` their sum;
- config: `from_config(get_config())` gives the same config, the same weights (paths, shapes,
  values: the seed is in the config) and, on the same input, the same output;
- seeds: two layers with the same seed have identical weights; with another seed, every
  randomly initialised weight differs, and no two random weights of one layer are equal
  (derived seeds are distinct). Weights with a constant initialiser (batch norms, biases,
  given connection weights) have no spread and are left out of the last two checks; a
  constant one with a spread is named in `constant`. Layers without a `seed` argument
  (their config has none) hold constants only;
- a training step: in a `training=True` call every trainable weight gets a finite gradient
  (zero is allowed: a batch norm whose gamma starts at 0 blocks its conv's gradient).

`expected` comes from the static analysis where the layer is a node of a network
(`node_static`: `asn.compiler.analysis`, never TensorFlow), otherwise from the formulas of
SEMANTICS.md written out by the caller.
"""

from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace

import keras
import numpy as np
import tensorflow as tf

from asn.compiler.analysis import NetworkStats, analyse
from asn.compiler.validation import check
from asn.dsl.ir import Network
from asn.dsl.loader import load_text

__all__ = ["Static", "Checked", "check_layer", "analysed", "node_static"]

SEED, OTHER_SEED = 5, 6

Shape = tuple  # one tensor's shape, batch axis first
Inputs = Sequence  # the positional arguments of build/call: each a Shape or a list of Shapes


@dataclass(frozen=True)
class Static:
    """What is known without running the layer: output shape (batch axis included) and
    parameter counts."""

    shape: Shape
    trainable: int
    non_trainable: int = 0

    @property
    def params(self) -> int:
        return self.trainable + self.non_trainable

    def folded(self) -> Static:
        """The same layer built with `fold_bn=True`: every batch norm of C channels (2C
        trainable, 2C non-trainable) becomes C conv biases (trainable). Valid where the
        non-trainable values are exactly the batch norms' moving statistics."""
        return replace(self, trainable=self.trainable - self.non_trainable // 2,
                       non_trainable=0)


@dataclass
class Checked:
    """The layer built with `SEED`, the inputs it was called on and its output."""

    layer: keras.layers.Layer
    inputs: list
    output: np.ndarray


# ------------------------------------------------------------------------------------------
# Expected figures from the static analysis
# ------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def analysed(text: str) -> tuple[Network, NetworkStats]:
    """The network written in `.asn` text, checked (no errors) and analysed."""
    net = load_text(text, "harness.asn")
    errors = [d for d in check(net) if d.is_error]
    assert not errors, errors
    return net, analyse(net)


def node_static(text: str, node: str, clips: int = 2) -> Static:
    """`Static` of node `node` (or `repflow`, `head`) of the network `text`, for `clips`
    clips: a node of shape (T, h, w, C) gives [clips*T, h, w, C]; the head [clips, K]."""
    _, stats = analysed(text)
    s = stats.node(node)
    if s.kind == "head":
        shape = (clips, s.shape[3])
    else:
        shape = (clips * s.shape[0], *s.shape[1:])
    return Static(shape, s.trainable, s.non_trainable)


# ------------------------------------------------------------------------------------------
# The harness
# ------------------------------------------------------------------------------------------
def check_layer(make: Callable[[int], keras.layers.Layer], inputs: Inputs, expected: Static,
                *, constant: Collection[str] = ()) -> Checked:
    """Run every check of the module docstring on `make(SEED)` called on random `inputs`
    (shapes with a concrete batch axis); return the layer, its inputs and its output."""
    rng = np.random.default_rng(0)
    data = [_map_shapes(a, lambda s: rng.standard_normal(s).astype(np.float32)) for a in inputs]

    layer = make(SEED)
    y = _call(layer, data)
    # -- shapes
    assert tuple(y.shape) == tuple(layer.compute_output_shape(*inputs)) == tuple(
        expected.shape), (tuple(y.shape), expected.shape)
    unknown = [_map_shapes(a, lambda s: (None, *s[1:])) for a in inputs]
    dynamic = (None, *expected.shape[1:])
    assert tuple(layer.compute_output_shape(*unknown)) == dynamic
    assert _traced_shape(layer, unknown) == dynamic
    # -- weights
    counts = (_size(layer.trainable_weights), _size(layer.non_trainable_weights))
    assert counts == (expected.trainable, expected.non_trainable), (counts, expected)
    assert layer.count_params() == expected.params
    # -- config round trip
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    y_clone = _call(clone, data)
    assert _paths_and_shapes(clone) == _paths_and_shapes(layer)
    _assert_same_weights(clone, layer)
    np.testing.assert_array_equal(y_clone, y)
    # -- seeds
    twin = _built(make(SEED), inputs)
    _assert_same_weights(twin, layer)
    if "seed" in config:
        random = [w for w in layer.weights if _spread(w) and _name(w) not in constant]
        assert random, f"{layer.name}: no randomly initialised weight"
        other_layer = _built(make(OTHER_SEED), inputs)
        other = {_relative(w, other_layer): w for w in other_layer.weights}
        for w in random:
            assert not np.array_equal(w.numpy(), other[_relative(w, layer)].numpy()), (
                f"{w.path} does not follow the layer's seed")
        for a, b in itertools.combinations(random, 2):
            assert a.shape != b.shape or not np.array_equal(a.numpy(), b.numpy()), (
                f"{a.path} and {b.path} have the same derived seed")
    # -- a training step (on the twin: a training call moves batch-norm statistics)
    _assert_gradients(twin, data)
    return Checked(layer, data, y)


# ------------------------------------------------------------------------------------------
def _map_shapes(arg, fn):
    """Apply `fn` to one shape, or to each shape of a list of shapes."""
    if isinstance(arg, list):
        return [fn(tuple(s)) for s in arg]
    return fn(tuple(arg))


def _call(layer, data) -> np.ndarray:
    kwargs = {"training": False} if "training" in inspect.signature(layer.call).parameters else {}
    return np.asarray(layer(*data, **kwargs))


def _assert_gradients(layer, data) -> None:
    if not layer.trainable_weights:
        return
    kwargs = {"training": True} if "training" in inspect.signature(layer.call).parameters else {}
    with tf.GradientTape() as tape:
        y = layer(*data, **kwargs)
        loss = tf.reduce_sum(y * np.random.default_rng(1).standard_normal(y.shape, np.float32))
    grads = tape.gradient(loss, layer.trainable_weights)
    for w, g in zip(layer.trainable_weights, grads):
        assert g is not None, f"{w.path} gets no gradient"
        assert np.isfinite(np.asarray(g)).all(), f"{w.path}: gradient not finite"


def _traced_shape(layer, unknown) -> tuple:
    """Output shape of the real call traced with the batch axis unknown."""
    spec = [_map_shapes(a, lambda s: tf.TensorSpec(s, tf.float32)) for a in unknown]
    kwargs = {"training": False} if "training" in inspect.signature(layer.call).parameters else {}
    fn = tf.function(lambda *xs: layer(*xs, **kwargs))
    return tuple(fn.get_concrete_function(*spec).structured_outputs.shape)


def _built(layer, inputs):
    layer.build(*inputs)
    return layer


def _size(weights) -> int:
    return sum(int(np.prod(w.shape)) for w in weights)


def _spread(w) -> bool:
    values = w.numpy()
    return values.size > 1 and bool(values.std() > 0)


def _name(w) -> str:
    return w.path.rsplit("/", 1)[-1]


def _relative(w, layer) -> str:
    return w.path.removeprefix(layer.name + "/")


def _paths_and_shapes(layer) -> list:
    return [(_relative(w, layer), tuple(w.shape), w.trainable) for w in layer.weights]


def _assert_same_weights(a, b) -> None:
    assert _paths_and_shapes(a) == _paths_and_shapes(b)
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(wa.numpy(), wb.numpy(), err_msg=wa.path)
