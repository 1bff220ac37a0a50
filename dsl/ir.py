"""The intermediate representation: one pydantic model tree for every surface form.

`.asn` text, the JSON form and the official list format all load into a `Network`.
Every IR node may carry a `span` (where it came from) and `attr_spans` (where each of
its attributes came from); both are excluded from serialisation and from equality, so
the same network read from two surface forms compares equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, Strict, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

__all__ = [
    "Span", "Header", "Stem", "Input", "Block", "Node", "Network",
    "NAMED_DEPTHS", "INTER_CHANNELS", "LITE_UNITS", "BLOCK_MODULES", "STEM_LIST_CODES",
    "units_per_level",
]

# Residual units per level for the named depths (SEMANTICS.md, "The structure list").
NAMED_DEPTHS: dict[int, tuple[int, int, int, int]] = {
    26: (2, 2, 2, 2),
    38: (2, 4, 4, 2),
    50: (3, 4, 6, 3),
    68: (3, 4, 12, 3),
    77: (3, 4, 15, 3),
    101: (3, 4, 23, 3),
}
# Middle ("inter") channels of the bottleneck's 3x3 conv, per level.
INTER_CHANNELS = (64, 128, 256, 512)
# Units per level of the AssembleNet++lite run script (it has no depth table).
LITE_UNITS = (3, 5, 11, 7)

STEM_LIST_CODES = {"rgb": -1, "flow": -2, "object": -3}
# Built-in block modules; anything else must be a user module "package.module:Factory".
BLOCK_MODULES = ("bottleneck", "bottleneck3d", "lite")


@dataclass(frozen=True, slots=True)
class Span:
    """A source region, 1-based, end exclusive on the column.

    A plain frozen dataclass, not a pydantic model: the parser makes one for every token it
    keeps, and pydantic construction cost more than the parse (spans are never validated
    input; they are excluded from the JSON form).
    """

    line: int
    col: int
    end_line: int
    end_col: int

    def __init__(self, line: int, col: int, end_line: int, end_col: int) -> None:
        # Written out, not generated: a frozen dataclass's own `__init__` sets each field
        # through `object.__setattr__` (0.44 us a span); the slots' setters take 0.27 us,
        # and the parser makes a span for every token it keeps (57,000 at 5,000 nodes).
        _set_line(self, line)
        _set_col(self, col)
        _set_end_line(self, end_line)
        _set_end_col(self, end_col)


_set_line, _set_col, _set_end_line, _set_end_col = (
    Span.__dict__[f].__set__ for f in ("line", "col", "end_line", "end_col"))


# Source-only fields: set by the loaders after validation, never read from input.
SOURCE_FIELDS = frozenset({"span", "attr_spans", "comments_before", "comment_after",
                           "setting_comments", "heads_comments"})


# Strict: no form coerces a value to a field's type (`"8"` or `true` is no integer, `1.5` no
# level); an int is still a float. A tuple also comes from a JSON list (`_Seq`): JSON has
# no tuples, and the lax tuple check admits lists only, its items stay strict.
_Seq = Strict(False)


class IRModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False, strict=True)

    span: SkipJsonSchema[Span | None] = Field(default=None, exclude=True, repr=False)
    attr_spans: SkipJsonSchema[dict[str, Span]] = Field(default_factory=dict, exclude=True,
                                                        repr=False)
    # Comments travel with the node they precede (or end the line of), so `fmt` keeps them.
    comments_before: SkipJsonSchema[list[str]] = Field(default_factory=list, exclude=True,
                                                       repr=False)
    comment_after: SkipJsonSchema[str | None] = Field(default=None, exclude=True, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _no_source_fields(cls, data: object) -> object:
        # Positions and comments come from the source text; a JSON document that names them
        # would smuggle arbitrary text into `fmt` output and positions into diagnostics.
        if isinstance(data, dict) and not SOURCE_FIELDS.isdisjoint(data):
            given = sorted(k for k in data if k in SOURCE_FIELDS)
            raise ValueError(f"unknown field `{given[0]}`")
        return data

    def __eq__(self, other: object) -> bool:  # positions never take part in equality
        return type(self) is type(other) and self.model_dump() == other.model_dump()

    __hash__ = None  # type: ignore[assignment]

    def where(self, attr: str | None = None) -> Span | None:
        """The span of one attribute if it was recorded, else the node's span."""
        if attr is not None and attr in self.attr_spans:
            return self.attr_spans[attr]
        return self.span


class Header(IRModel):
    """Network-wide settings. Defaults are the reference's (SEMANTICS.md, "Model configs")."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    depth: int | Annotated[tuple[int, int, int, int], _Seq] = 50
    frames: int = Field(default=32, ge=1, le=4096)
    size: Annotated[tuple[Annotated[int, Field(ge=1, le=16384)],
                          Annotated[int, Field(ge=1, le=16384)]], _Seq] = (224, 224)
    classes: int = Field(default=400, ge=1, le=1_000_000)
    combine: Literal["sigmoid", "concat"] = "sigmoid"
    attention: Literal["none", "self", "peer"] = "none"
    object_classes: int | None = Field(default=None, ge=1, le=100_000)
    head_pool: Literal["mean", "max"] = "mean"
    bn_momentum: float = Field(default=0.99, ge=0.0, le=1.0, allow_inf_nan=False)
    bn_epsilon: float = Field(default=1e-5, gt=0.0, le=1.0, allow_inf_nan=False)
    variant: Literal["standard", "lite"] = "standard"
    flow_iterations: int | None = Field(default=None, ge=1, le=1000)
    # Comments inside the braces, per setting: (comments before it, comment after it).
    setting_comments: SkipJsonSchema[dict[str, tuple[list[str], str | None]]] = Field(
        default_factory=dict, exclude=True, repr=False
    )

    @field_validator("depth")
    @classmethod
    def _depth_known(cls, d: int | tuple[int, int, int, int]) -> int | tuple[int, int, int, int]:
        # a field validator, so the error points at the depth value, not the whole header
        if isinstance(d, int):
            if d not in NAMED_DEPTHS:
                names = ", ".join(str(k) for k in NAMED_DEPTHS)
                raise ValueError(
                    f"unknown depth {d}: use one of {names} or four per-level unit counts"
                )
        elif any(u < 1 or u > 1000 for u in d):
            raise ValueError(f"per-level unit counts must be between 1 and 1000, got {list(d)}")
        return d

    @property
    def units(self) -> tuple[int, ...]:
        return units_per_level(self.depth, self.variant)

    @property
    def iterations(self) -> int:
        if self.flow_iterations is not None:
            return self.flow_iterations
        return 20 if self.variant == "lite" else 40


def units_per_level(depth: int | tuple[int, ...], variant: str = "standard") -> tuple[int, ...]:
    if isinstance(depth, int):
        return NAMED_DEPTHS[depth]
    return tuple(depth)


class Stem(IRModel):
    """A stem reading a raw input: RGB frames, flow computed from them, or object maps."""

    kind: Literal["stem"] = "stem"
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    type: Literal["rgb", "flow", "object"]
    dilation: int = Field(default=1, ge=-1000, le=1000)


class Input(IRModel):
    """One connection into a block; `weight` is the value after sigmoid, or None (learn it)."""

    source: str
    weight: float | None = Field(default=None, allow_inf_nan=True)


class Block(IRModel):
    """A group of residual units at one level, fed by a fusion of its inputs."""

    kind: Literal["block"] = "block"
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    level: int
    inputs: list[Input]
    filters: int | Annotated[tuple[int, int, int], _Seq]
    dilation: int = 1
    stride: int = 1
    module: str = "bottleneck"

    @model_validator(mode="before")
    @classmethod
    def _default_module(cls, data: object) -> object:
        # Three filter widths mean the lite inverted bottleneck unless a module is named.
        if isinstance(data, dict) and "module" not in data:
            f = data.get("filters")
            if isinstance(f, (list, tuple)) and len(f) == 3:
                data = {**data, "module": "lite"}
        return data

    @property
    def weighted(self) -> bool:
        return any(i.weight is not None for i in self.inputs)

    @property
    def is_user_module(self) -> bool:
        return self.module not in BLOCK_MODULES


Node = Annotated[Union[Stem, Block], Field(discriminator="kind")]


class Network(IRModel):
    """A whole architecture: header, nodes in declaration order, optional explicit heads."""

    header: Header
    nodes: list[Node]
    heads: list[str] | None = None
    heads_comments: SkipJsonSchema[tuple[list[str], str | None]] = Field(
        default=([], None), exclude=True, repr=False
    )

    def node_map(self) -> dict[str, Stem | Block]:
        return {n.name: n for n in self.nodes}

    @property
    def stems(self) -> list[Stem]:
        return [n for n in self.nodes if isinstance(n, Stem)]

    @property
    def blocks(self) -> list[Block]:
        return [n for n in self.nodes if isinstance(n, Block)]

    def head_names(self) -> list[str]:
        """Explicit heads, else the reference's: every level-3 block (lite: the first one)."""
        if self.heads is not None:
            return list(self.heads)
        level3 = [b.name for b in self.blocks if b.level == 3]
        if self.header.variant == "lite":
            return level3[:1]
        return level3
