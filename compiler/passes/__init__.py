"""Optimisation passes, their registry and their manager (`asnc opt`, `-O` levels).

    from asn.compiler.passes import optimise, run_pipeline
    o = optimise(net, level=1)       # o.network, o.form (backend passes), o.stats()
    net2, reports = run_pipeline(net, level=2)            # exact passes + edge pruning at 0.2
    net3, reports = run_pipeline(net, passes=["prune-edges"], prune_top_k=2)

Levels: `-O0` runs nothing; `-O1` the exact passes (dead-node elimination, and the backend's
repflow-slices, fold-batchnorm, fold-edge-weights); `-O2` also the approximate ones (edge
pruning, threshold 0.2 by default). One registry holds every pass (`registry`); importing
the pass modules below registers them, and their import order is the pipeline order.
"""

from __future__ import annotations

from . import dce, prune  # graph passes, in pipeline order
from . import backend  # backend passes (TF-free parts), in pipeline order
from .context import DEFAULT_PRUNE_THRESHOLD, PassContext
from .dce import dead_node_elimination, eliminate_dead_nodes
from .edgefold import EdgeFoldPlan, edge_fold_blocker, plan_edge_folding
from .form import LoweringForm
from .instrument import PassInstrument, StatsInstrument
from .manager import (Optimised, Sequential, network_from_graph, optimise, run_pipeline,
                      split_pass_names)
from .prune import plan_pruning, prune_edges
from .registry import (BackendPass, GraphPass, PassInfo, UnknownPassError, backend_pass,
                       backend_pass_names, get_backend_pass, get_pass, graph_pass,
                       pipeline_for_level, registered_passes)
from .report import PassReport, Reports

__all__ = ["dce", "prune", "backend", "run_pipeline", "optimise", "Optimised", "graph_pass",
           "backend_pass", "PassContext", "PassInfo", "PassReport", "Reports", "Sequential",
           "GraphPass", "BackendPass", "UnknownPassError", "get_pass", "get_backend_pass",
           "registered_passes", "backend_pass_names", "pipeline_for_level",
           "network_from_graph", "split_pass_names", "dead_node_elimination",
           "eliminate_dead_nodes", "prune_edges", "plan_pruning", "DEFAULT_PRUNE_THRESHOLD",
           "LoweringForm", "PassInstrument", "StatsInstrument", "EdgeFoldPlan",
           "edge_fold_blocker", "plan_edge_folding"]
