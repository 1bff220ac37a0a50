"""Options that several commands declare (typer reads them from the signature defaults)."""

from __future__ import annotations

import enum

import typer

__all__ = ["FramesOpt", "SizeOpt", "ClassesOpt", "PassesOpt", "DisablePassOpt",
           "PruneThresholdOpt", "TopKOpt", "ImportModulesOpt", "Strategy", "StrategyOpt"]

# The input-size overrides of `import`, `stats`, `viz`, `compile`, `train` and `search`.
FramesOpt = typer.Option(None, "--frames", metavar="T", min=1,
                         help="Override the number of frames.")
SizeOpt = typer.Option(None, "--size", metavar="H W", help="Override the input size (height "
                       "and width).")
ClassesOpt = typer.Option(None, "--classes", metavar="C", min=1,
                          help="Override the number of classes.")
# The pass options of `opt` and `compile`.
PassesOpt = typer.Option(None, "--passes", metavar="PASSES", help="Run exactly these passes "
                         "(comma-separated; overrides -O): graph passes in the order given, "
                         "then the backend passes (`asnc opt --list-passes`).")
DisablePassOpt = typer.Option(None, "--disable-pass", metavar="PASS",
                              help="Never run this pass (repeat, or comma-separate).")
PruneThresholdOpt = typer.Option(None, "--prune-threshold", metavar="T", min=0.0, max=1.0,
                                 help="Prune inputs whose weight (after sigmoid) is below this "
                                 "(default 0.2 at -O2; giving it enables pruning).")
TopKOpt = typer.Option(None, "--top-k", metavar="K", min=1,
                       help="Keep at most K inputs per block (enables pruning).")
# The commands that need a user module's static facts or layer (README, "User modules").
ImportModulesOpt = typer.Option(False, "--import-modules", envvar="ASNC_IMPORT_MODULES",
                                help="Import the user modules the network names (this runs "
                                "their code; they are found on PYTHONPATH, never in the "
                                "current directory). Without it, such a network is refused.")


class Strategy(str, enum.Enum):
    """`train` and `search --strategy` (typer refuses another name as a usage error)."""
    default = "default"
    mirrored = "mirrored"
    multiworker = "multiworker"

    def __str__(self) -> str:  # the name as given, in messages and f-strings alike
        return self.value

    __format__ = str.__format__


StrategyOpt = typer.Option(Strategy.default, "--strategy", metavar="STRATEGY",
                           help="default (one device) | mirrored (all GPUs, or all logical "
                           "CPUs) | multiworker (cluster from TF_CONFIG).")
