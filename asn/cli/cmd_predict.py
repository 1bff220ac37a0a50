"""`asnc predict`: the top classes of video files, by name, with scores.

    asnc predict NET --weights W VIDEO...   a network and trained weights (Keras)
    asnc predict RUN/ VIDEO...              a training run directory (net.asn, final weights)
    asnc predict OUT/ VIDEO...              an `asnc compile` output (its model.onnx, in ONNX
                                            Runtime)

Class names: `--labels FILE`, else the labels.txt beside the weights / in the run or compile
output directory, else `class <i>`. TensorFlow and ONNX Runtime are imported inside the
command.
"""

from __future__ import annotations

import json
import os
import sys
from typing import List, Optional

import typer

from .app import app
from .common import EXIT_BAD_INPUT, allow_user_modules, err_console, load_checked, out
from .options import ImportModulesOpt

__all__ = ["predict"]

RUN_NETWORK, RUN_WEIGHTS = "net.asn", "final.weights.h5"  # as backends.tensorflow.train


def _fail(path: str, message: str) -> typer.Exit:
    err_console.print(f"{path}: error: {message}")
    return typer.Exit(EXIT_BAD_INPUT)


def _is_compile_output(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "report.json")) and \
        os.path.isfile(os.path.join(path, "model.onnx"))


def _model(target: str, weights: Optional[str]):
    """The model `target` names, and the folder where its labels.txt would be."""
    from ..backends.tensorflow.predict import KerasModel, OnnxModel, PredictError

    try:
        if os.path.isdir(target):
            if weights is not None:
                raise _fail(target, "--weights goes with a network file, not a directory")
            if _is_compile_output(target):
                return OnnxModel(target), target
            if os.path.isfile(os.path.join(target, RUN_NETWORK)) and \
                    os.path.isfile(os.path.join(target, RUN_WEIGHTS)):
                net, _ = load_checked(os.path.join(target, RUN_NETWORK))
                return KerasModel(net, os.path.join(target, RUN_WEIGHTS)), target
            raise _fail(target, "a directory that is neither an `asnc compile` output "
                        "(report.json, model.onnx) nor a training run (net.asn, "
                        "final.weights.h5)")
        if weights is None:
            raise _fail(target, "predict needs trained weights: pass --weights W.weights.h5 "
                        "(or give a run directory or an `asnc compile` output)")
        net, _ = load_checked(target)
        return KerasModel(net, weights), os.path.dirname(os.path.abspath(weights))
    except PredictError as exc:
        raise _fail(target, str(exc)) from None


def _labels(given: Optional[str], folder: str, classes: int) -> list[str]:
    from .labels import LABELS_FILE, LabelsError, read_labels

    path = given or os.path.join(folder, LABELS_FILE)
    if given is None and not os.path.isfile(path):
        return [f"class {i}" for i in range(classes)]
    try:
        return read_labels(path, classes)
    except LabelsError as exc:
        err_console.print(str(exc))
        raise typer.Exit(EXIT_BAD_INPUT) from None


@app.command()
def predict(
    target: str = typer.Argument(..., metavar="NET|RUN|OUT", help="A network file (with "
                                 "--weights), a training run directory, or an `asnc "
                                 "compile` output directory."),
    videos: List[str] = typer.Argument(..., metavar="VIDEO", help="Video files."),
    weights: Optional[str] = typer.Option(None, "--weights", metavar="FILE", help="Trained "
                                          "weights (`.weights.h5`) of the network file."),
    labels: Optional[str] = typer.Option(None, "--labels", metavar="FILE", help="Class names, "
                                         "one per line (default: labels.txt beside the "
                                         "weights or in the directory)."),
    top: int = typer.Option(5, "--top", min=1, metavar="K", help="How many classes to show "
                            "per video."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: one object per video."),
    import_modules: bool = ImportModulesOpt,
) -> None:
    """The top classes of each video by name, with softmax scores."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads
    allow_user_modules(import_modules)
    if weights is not None and not os.path.isfile(weights):
        raise _fail(weights, "weights file does not exist")
    model, folder = _model(target, weights)
    names = _labels(labels, folder, model.classes)
    from ..backends.tensorflow.predict import PredictError, read_clip, top_k

    results, failed = [], 0
    for video in videos:
        try:
            clip = read_clip(video, model.frames, (model.size[0], model.size[1]))
        except PredictError as exc:
            err_console.print(f"{video}: error: {exc}")
            failed += 1
            continue
        best = top_k(model.logits(clip), names, top)
        results.append({"video": video, "top": best})
        if not as_json:
            out.print(video)
            width = max(len(c["label"]) for c in best)
            for rank, c in enumerate(best, 1):
                out.print(f"  {rank}. {c['label']:<{width}}  {c['score']:.4f}")
    if as_json:
        sys.stdout.write(json.dumps({"frames": model.frames, "size": list(model.size),
                                     "videos": results}, indent=1) + "\n")
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)
