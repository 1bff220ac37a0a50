"""Helpers shared by the TensorFlow backend tests (test_lower.py, test_export.py)."""

from __future__ import annotations

import numpy as np

from conftest import EXAMPLES

from asn.cli.common import load_checked
from asn.dsl.ir import Block, Network
from asn.dsl.loader import load_text

EXAMPLE_NAMES = ("assemblenet50", "assemblenet101", "assemblenet_plus50",
                 "assemblenet_plus_lite", "tutorial")


def example(name: str, frames: int = 4, size: int = 64, classes: int | None = None,
            **header) -> Network:
    """An example network at a small size, header settings optionally replaced."""
    net, _ = load_checked(str(EXAMPLES / f"{name}.asn"), frames, (size, size), classes,
                          warnings=False)
    return with_header(net, **header) if header else net


def with_header(net: Network, **changes) -> Network:
    header = type(net.header).model_validate({**net.header.model_dump(), **changes})
    return net.model_copy(update={"header": header})


def learnable(net: Network) -> Network:
    """The same network with every connection weight left to learn."""
    nodes = []
    for n in net.nodes:
        if isinstance(n, Block):
            n = n.model_copy(update={"inputs": [i.model_copy(update={"weight": None})
                                                for i in n.inputs]})
        nodes.append(n)
    return net.model_copy(update={"nodes": nodes})


def parse(text: str) -> Network:
    from asn.compiler.validation import check

    net = load_text(text, "<test>")
    errors = [d for d in check(net) if d.is_error]
    assert not errors, errors
    return net


def split_counts(model) -> tuple[int, int]:
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    non_trainable = sum(int(np.prod(v.shape)) for v in model.non_trainable_weights)
    return trainable, non_trainable


def randomise(model, seed: int = 0) -> None:
    """Weights with no identity or dead branch: batch norms get random statistics, scales
    and offsets (gamma > 0, including the residual branches' zero-initialised ones), every
    other variable small random values (edge logits and fixed flow kernels are kept)."""
    rng = np.random.default_rng(seed)
    values = []
    for v in model.weights:
        path, shape = v.path, tuple(v.shape)
        w = np.asarray(v.numpy())
        if "moving_variance" in path:
            w = rng.uniform(0.5, 1.5, shape)
        elif "moving_mean" in path or "beta" in path:
            w = rng.normal(0.0, 0.1, shape)
        elif "gamma" in path:
            w = rng.uniform(0.2, 0.6, shape)
        elif "edge_logits" in path or "repflow" in path:
            pass
        elif v.trainable:
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
            w = rng.normal(0.0, 1.0 / np.sqrt(max(fan_in, 1)), shape)
        values.append(np.asarray(w, dtype=np.float32))
    model.set_weights(values)


def video(net: Network, batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    from asn.backends.tensorflow.parity import random_inputs

    return random_inputs(net, batch, seed)


# A small peer-attention network: `side` feeds no block's inputs that reach the head, so
# only peer attention (its candidates) carries its output to the logits.
ATTENTION_NET = """
network att {{
  depth [1, 1, 1, 1]
  frames 2
  size 32x32
  classes 3
  attention {mode}
}}
stem r = rgb
stem q = rgb(dilation=2)
block a = bottleneck(level=0, filters=4) <- r
block side = bottleneck(level=0, filters=4) <- q
block c = bottleneck(level=1, filters=4, stride=2) <- a
block d = bottleneck(level=2, filters=4, stride=2) <- c @0.6, a @0.3
block top = bottleneck(level=3, filters=4, stride=2) <- d
"""
