"""Pictures of runs and evaluations, drawn with matplotlib's Agg canvas (headless: no display,
no pyplot state), each written as PNG and SVG, atomically (`dsl.outputs`).

* `curves`: loss and accuracy per epoch, training and validation (`RUN/curves.png`);
* `connections`: how each learnable connection weight moved over training, one panel per
  target block (`RUN/connections.png`), and the learned weights as a heat map (target block x
  input, the value in each cell: `RUN/connection_weights.png`);
* `confusion`: the confusion matrix of an evaluation, class names on both axes, readable at
  101 classes (`confusion.png`);
* `evolution`: `asnc evolve`'s trials over time with the best so far, and accuracy against
  GFLOPs with the Pareto front (`RUN/evolution.png`).
"""

from .confusion import draw_confusion
from .connections import draw_connection_heatmap, draw_connection_trajectories
from .curves import draw_curves
from .evolution import draw_evolution
from .files import save_figure
from .run import draw_run

__all__ = ["draw_curves", "draw_confusion", "draw_connection_trajectories",
           "draw_connection_heatmap", "draw_evolution", "save_figure", "draw_run"]
