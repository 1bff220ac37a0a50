"""Graph-level optimisation passes and their manager (`asnc opt`, `-O` levels).

    from asn.compiler.passes import run_pipeline
    net2, reports = run_pipeline(net, level=2)            # exact passes + edge pruning at 0.2
    net3, reports = run_pipeline(net, passes=["prune-edges"], prune_top_k=2)

Levels: `-O0` runs nothing; `-O1` the exact passes (dead-node elimination, and the backend's
repflow-slices, fold-batchnorm, fold-edge-weights); `-O2` also the approximate ones (edge
pruning, threshold 0.2 by default). Passes run in a fixed order:
graph passes in registration order (below), then backend passes (reported, not run).
"""

from __future__ import annotations

from .manager import (DEFAULT_PRUNE_THRESHOLD, BackendPass, GraphPass, PassContext, PassInfo,
                      PassReport, Reports, Sequential, UnknownPassError, backend_pass, get_pass,
                      graph_pass, network_from_graph, pipeline_for_level, registered_passes,
                      run_pipeline)
from . import dce as _dce  # noqa: E402  (registration order is pipeline order)
from . import prune as _prune  # noqa: E402
from . import backend as _backend  # noqa: E402
from .backend import BACKEND_ORDER, LoweringPlan, Optimised, lowering_plan, optimise
from .dce import dead_node_elimination, eliminate_dead_nodes
from .edgefold import EdgeFoldPlan, edge_fold_blocker, plan_edge_folding
from .prune import plan_pruning, prune_edges

__all__ = ["run_pipeline", "graph_pass", "backend_pass", "PassContext", "PassInfo",
           "PassReport", "Reports", "Sequential", "GraphPass", "BackendPass",
           "UnknownPassError", "get_pass", "registered_passes", "pipeline_for_level",
           "network_from_graph", "dead_node_elimination", "eliminate_dead_nodes",
           "prune_edges", "plan_pruning", "DEFAULT_PRUNE_THRESHOLD", "LoweringPlan",
           "lowering_plan", "BACKEND_ORDER", "optimise", "Optimised", "EdgeFoldPlan", "edge_fold_blocker",
           "plan_edge_folding"]
