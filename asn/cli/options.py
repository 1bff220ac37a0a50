"""Options that several commands declare (typer reads them from the signature defaults)."""

from __future__ import annotations

import typer

__all__ = ["FramesOpt", "SizeOpt", "ClassesOpt", "PassesOpt", "DisablePassOpt",
           "PruneThresholdOpt", "TopKOpt", "ImportModulesOpt"]

# The input-size overrides of `import`, `stats`, `viz`, `compile`, `train` and `search`.
FramesOpt = typer.Option(None, "--frames", help="Override the number of frames.", min=1)
SizeOpt = typer.Option(None, "--size", help="Override the input size: --size H W.")
ClassesOpt = typer.Option(None, "--classes", help="Override the number of classes.", min=1)
# The pass options of `opt` and `compile`.
PassesOpt = typer.Option(None, "--passes", help="Run exactly these passes (comma-separated; "
                         "overrides -O): graph passes in the order given, then the backend "
                         "passes (`asnc opt --list-passes`).")
DisablePassOpt = typer.Option(None, "--disable-pass", help="Never run this pass (repeat, or "
                              "comma-separate).")
PruneThresholdOpt = typer.Option(None, "--prune-threshold", min=0.0, max=1.0,
                                 help="Prune inputs whose weight (after sigmoid) is below this "
                                 "(default 0.2 at -O2; giving it enables pruning).")
TopKOpt = typer.Option(None, "--top-k", min=1, help="Keep at most K inputs per block "
                       "(enables pruning).")
# The commands that need a user module's static facts or layer (README, "User modules").
ImportModulesOpt = typer.Option(False, "--import-modules", envvar="ASNC_IMPORT_MODULES",
                                help="Import the user modules the network names (this runs "
                                "their code; they are found on PYTHONPATH, never in the "
                                "current directory). Without it, such a network is refused.")
