"""`drop-padding-taps`: temporal convs whose taps other than the centre read only zero
padding become their centre tap, a pointwise conv.

A temporal conv of kernel 3 and dilation d, SAME over T frames, computes frame t from
frames t-d, t and t+d; when d >= T both outer ones lie outside the clip for every t, in the
zero padding, so they add ``0 * w`` to every output (`analysis.centre_tap_only`). The
(2+1)D bottleneck blocks with such a dilation change in place
(`TemporalConv.keep_centre_tap`): the same layers and weight names, the kernel cut to its
centre tap, the block's configuration saying so (``centre_taps``). The model's frames are
static, so the rewrite holds for every input the model accepts. The proof runs the whole
model: a conv of one tap need not sum its channels in the order the 3-tap conv does.
"""

from __future__ import annotations

import dataclasses

from ....compiler.analysis import centre_tap_only
from ..layers.blocks import BottleneckBlock
from ..layers.conv import TemporalConv
from . import RewriteStep


def rewrite(step: RewriteStep):
    blocks, convs = [], 0
    for layer in step.current.model.layers:
        if not (isinstance(layer, BottleneckBlock) and layer.temporal == "2plus1d"
                and centre_tap_only(layer.dilation, layer.frames)):
            continue
        for unit in layer.units:
            first = unit["first"]
            if isinstance(first, TemporalConv) and first.kernel_size > 1:
                first.keep_centre_tap()
                convs += 1
        layer.centre_taps = True
        blocks.append(layer.name)
    if not convs:
        raise RuntimeError("drop-padding-taps: no temporal conv with a dilation of at least "
                           "the clip's frames")
    new = dataclasses.replace(step.current, form=step.form)
    return new, {"temporal_convs": convs, "blocks": blocks}
