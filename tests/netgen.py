"""Hypothesis strategies for valid networks, shared by the property and fuzz tests.

`networks()` draws networks that are valid by construction (up to shapes that do not fuse
and blocks left without pixels, which only the analysis can tell): every header setting,
one to four stems (RGB, flow, object with an object-class count), blocks that read earlier
nodes with all their weights (from the whole open interval (0, 1)) or none, every block
module (bottleneck, bottleneck3d, lite, a user module: `USER_MODULE`, defined below so
that the analysis can import it), standard networks whose blocks are all lite, the lite
variant, attention none/self/peer, concat fusion, default and explicit heads, and, now and
then, a declaration order that is not a topological one (the list format reorders those).
"""

from __future__ import annotations

from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

from asn.dsl.ir import NAMED_DEPTHS, Block, Header, Input, Network, Stem

__all__ = ["networks", "headers", "names", "weights", "USER_MODULE", "Pointwise"]

# A user block module this file defines; importable while tests/ is on sys.path (pytest).
USER_MODULE = "netgen:Pointwise"


class Pointwise:
    """A user block: one strided 1x1 conv to `filters` channels, no bias."""

    def __new__(cls, filters, level, stride, dilation, units, frames, seed, name):
        import keras  # only the backend builds it; the analysis reads `asn_static`

        init: Any = keras.initializers.GlorotUniform(seed)  # the stubs say str
        return keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=name,
                                   kernel_initializer=init)

    @staticmethod
    def asn_static(c_in, filters, level, stride, dilation, units, frames, height, width):
        return {"channels": filters, "height": -(-height // stride),
                "width": -(-width // stride), "trainable": c_in * filters,
                "non_trainable": 0, "flops": 2 * c_in * filters * frames * height * width}


# Names: identifiers, including the language's own words (they are names where a name goes).
WORDS = ["network", "stem", "block", "heads", "rgb", "flow", "object", "nan", "inf", "x",
         "level", "filters", "bottleneck", "lite", "_", "x224"]
names = st.one_of(st.sampled_from(WORDS),
                  st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True))
# Weights after the sigmoid: anything in the open interval, tiny and near-1 values included.
weights = st.one_of(
    st.floats(min_value=0.0, max_value=1.0, exclude_min=True, exclude_max=True),
    st.sampled_from([5e-324, 2.2250738585072014e-308, 1e-300, 0.9999999999999999,
                     1 - 2 ** -52, 0.5, 0.1]),
)


@st.composite
def headers(draw) -> Header:
    """Every header setting, defaults included (drawn as often as the other values)."""
    variant = draw(st.sampled_from(["standard", "standard", "lite"]))
    combine = draw(st.sampled_from(["sigmoid", "sigmoid", "concat"]))
    # attention needs the sigmoid combine method
    attention = "none" if combine == "concat" else draw(st.sampled_from(["none", "self",
                                                                         "peer"]))
    depth = draw(st.sampled_from(sorted(NAMED_DEPTHS)) | st.tuples(
        *[st.integers(1, 3)] * 4))
    return Header(
        name=draw(names), depth=depth, frames=draw(st.integers(2, 16)),
        size=(draw(st.integers(16, 160)), draw(st.integers(16, 160))),
        classes=draw(st.integers(1, 1000)), combine=combine, attention=attention,
        head_pool=draw(st.sampled_from(["mean", "max"])), variant=variant,
        bn_momentum=draw(st.floats(0.0, 1.0) | st.just(0.99)),
        bn_epsilon=draw(st.floats(0.0, 1.0, exclude_min=True) | st.just(1e-5)),
        flow_iterations=draw(st.none() | st.integers(1, 50)),
    )


def _width(b: Block) -> int:
    """A block's output channels: bottleneck 4 * filters, lite the last width, user filters."""
    if b.module == "lite":
        assert not isinstance(b.filters, int)
        return b.filters[2]
    assert isinstance(b.filters, int)
    return b.filters * 4 if b.module in ("bottleneck", "bottleneck3d") else b.filters


@st.composite
def networks(draw) -> Network:
    header = draw(headers())
    used: set[str] = set()

    def fresh() -> str:
        # Drawn until unused, not `names.filter(...)`: a new filtered strategy per name
        # rebuilt the regex strategy each time (most of the property tests' run time).
        for _ in range(100):
            name = draw(names)
            if name not in used:
                used.add(name)
                return name
        assume(False)  # only a shrinker-forced run of equal names gets here
        raise AssertionError("unreachable")

    lite_variant = header.variant == "lite"
    stem_types = ["rgb", "flow"] + ([] if lite_variant else ["object"])
    stems = [Stem(name=fresh(), type=draw(st.sampled_from(stem_types)),
                  dilation=draw(st.integers(-2, 8))) for _ in range(draw(st.integers(1, 4)))]
    nodes: list[Stem | Block] = list(stems)
    has_objects = any(s.type == "object" for s in stems)
    # an object-class count is needed by object stems, and allowed (a warning) without
    if has_objects or draw(st.integers(0, 9)) == 0:
        header = header.model_copy(update={"object_classes": draw(st.integers(1, 200))})
    # all one module (all-lite standard networks are the case the list format must keep
    # apart from the lite variant), or a mix
    modules = draw(st.sampled_from([["bottleneck"], ["lite"], ["bottleneck3d"],
                                    ["bottleneck", "bottleneck3d", "lite", USER_MODULE]]))
    n_blocks = draw(st.integers(1, 8))
    level = 0
    for k in range(n_blocks):
        # levels never go down in declaration order, so peer attention is always possible
        level = 3 if k == n_blocks - 1 else draw(st.integers(level, 3))
        sources = draw(st.lists(st.sampled_from([n.name for n in nodes]), min_size=1,
                                max_size=min(4, len(nodes)), unique=True))
        weighted = len(sources) > 1 and draw(st.booleans())
        inputs = [Input(source=s, weight=draw(weights) if weighted else None) for s in sources]
        module = draw(st.sampled_from(modules))
        filters = (tuple(draw(st.lists(st.integers(1, 48), min_size=3, max_size=3)))
                   if module == "lite" else draw(st.integers(1, 64)))
        nodes.append(Block(name=fresh(), level=level, inputs=inputs, filters=filters,
                           module=module, dilation=draw(st.integers(1, 8)),
                           stride=draw(st.integers(1, 4))))
    blocks = [n for n in nodes if isinstance(n, Block)]
    last = blocks[-1]
    level3 = [b for b in blocks if b.level == 3]
    widths = {_width(b) for b in level3}
    # heads: the default (every level-3 block; lite: the first one declared) when it is
    # valid, else explicit: the last block, any one block, or every block of its width
    choice = draw(st.sampled_from(["default", "last", "any", "same_width"]))
    heads: list[str] | None
    if choice == "default" and (lite_variant or len(widths) == 1):
        heads = None
    elif choice == "any":
        heads = [draw(st.sampled_from(blocks)).name]
    elif choice == "same_width" and not lite_variant:
        heads = [b.name for b in blocks if _width(b) == _width(last)]
    else:
        heads = [last.name]
    if draw(st.integers(0, 3)) == 0:
        # a declaration order that need not be topological (declarations come in any order)
        nodes = draw(st.permutations(nodes))
    return Network(header=header, nodes=nodes, heads=heads)
