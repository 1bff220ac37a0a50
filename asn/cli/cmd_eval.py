"""`asnc eval`: accuracy as the papers measure it, of a trained or a deployed model.

    asnc eval NET --weights W --data DIR    a network and trained weights (Keras)
    asnc eval RUN/ --data DIR               a training run directory (net.asn, final weights)
    asnc eval OUT/ --data DIR               an `asnc compile` output: its model.onnx in ONNX
                                            Runtime, or --artifact savedmodel in TensorFlow

Every video of the split's test set (a plain folder: every video) is scored under the
multi-clip x multi-crop protocol (`--clips K --crops C`, softmax averaged per video); the
figures are top-1, top-5 and mean per-class accuracy, the confusion matrix (`OUT/eval/
confusion.png` and `.svg`, class names on the axes) and the worst-confused pairs;
`eval.json` (and `--json` on stdout) has every figure and every video's prediction.
"""

from __future__ import annotations

import enum
import json
import os
import sys
from typing import Optional

import typer

from .app import app
from .common import EXIT_BAD_INPUT, allow_user_modules, atomic_write, err_console, out
from .dataset_args import Layout, LayoutOpt, SplitOpt, read_data
from .options import ImportModulesOpt

__all__ = ["eval_command", "Artifact", "ClipsOpt", "CropsOpt", "EVAL_JSON", "CONFUSION"]

EVAL_JSON, CONFUSION, EVAL_DIR = "eval.json", "confusion", "eval"
DEFAULT_CLIPS, DEFAULT_CROPS = 10, 3

ClipsOpt = typer.Option(DEFAULT_CLIPS, "--clips", min=1, metavar="K", help="Temporal clips per "
                        "video, evenly spaced (1: the centred clip).")
CropsOpt = typer.Option(DEFAULT_CROPS, "--crops", min=1, max=3, metavar="C", help="Spatial "
                        "crops per clip: 1 (centre) or 3 (along the long side).")


class Artifact(str, enum.Enum):
    """`--artifact`: which model of a compile output runs."""
    onnx = "onnx"
    savedmodel = "savedmodel"

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__


def _fail(path: str, message: str) -> typer.Exit:
    err_console.print(f"{path}: error: {message}")
    return typer.Exit(EXIT_BAD_INPUT)


def _model(target: str, weights: Optional[str], artifact: Artifact):
    """The model `target` names, where its labels.txt would be, and what it is (for the
    report)."""
    from ..backends.tensorflow.predict import (KerasModel, OnnxModel, PredictError,
                                               SavedModelModel)
    from .cmd_predict import RUN_NETWORK, RUN_WEIGHTS, _is_compile_output
    from .common import load_checked

    try:
        if os.path.isdir(target):
            if weights is not None:
                raise _fail(target, "--weights goes with a network file, not a directory")
            if _is_compile_output(target) or os.path.isdir(os.path.join(target,
                                                                        "saved_model")):
                if artifact == Artifact.savedmodel:
                    return SavedModelModel(target), target, "savedmodel (TensorFlow)"
                return OnnxModel(target), target, "onnx (ONNX Runtime)"
            if os.path.isfile(os.path.join(target, RUN_NETWORK)) and \
                    os.path.isfile(os.path.join(target, RUN_WEIGHTS)):
                net, _ = load_checked(os.path.join(target, RUN_NETWORK))
                return (KerasModel(net, os.path.join(target, RUN_WEIGHTS)), target,
                        "keras (run weights)")
            raise _fail(target, "a directory that is neither an `asnc compile` output "
                        "(report.json, model.onnx) nor a training run (net.asn, "
                        "final.weights.h5)")
        if weights is None:
            raise _fail(target, "eval needs trained weights: pass --weights W.weights.h5 "
                        "(or give a run directory or an `asnc compile` output)")
        net, _ = load_checked(target)
        return KerasModel(net, weights), os.path.dirname(os.path.abspath(weights)), "keras"
    except PredictError as exc:
        raise _fail(target, str(exc)) from None


def _check_labels(model_labels: Optional[str], classes: list[str], model_classes: int,
                  data: str) -> None:
    """The model's classes must be the dataset's, in the same order."""
    from .labels import LabelsError, read_labels

    if model_classes != len(classes):
        raise _fail(data, f"the dataset has {len(classes)} classes, the model "
                    f"{model_classes}")
    if model_labels is None:
        return
    try:
        names = read_labels(model_labels, model_classes)
    except LabelsError as exc:
        err_console.print(str(exc))
        raise typer.Exit(EXIT_BAD_INPUT) from None
    for i, (a, b) in enumerate(zip(names, classes)):
        if a != b:
            raise _fail(data, f"class {i} is `{b}` in the dataset but `{a}` in the model's "
                        f"labels ({model_labels}); the model was trained on other classes "
                        "or in another order")


def _videos(dataset, target: str, data: str, quiet: bool) -> tuple[list, str]:
    """The videos to evaluate and what they are: the split's test set; for a plain folder,
    the held-out videos of the training run `target` when it trained on this folder (its
    `--val-ratio`/`--val-list` split, repeated), else every video."""
    if dataset.official_split:
        return dataset.test, "test"
    config = _run_config(target)
    if config is not None and _same_folder(config.get("data"), data):
        from ..backends.tensorflow.data import split

        try:
            _, held_out = split(dataset.train, float(config.get("val_ratio", 0.2)),
                                int(config.get("seed", 0)), config.get("val_list"))
        except (ValueError, TypeError, OSError):
            held_out = []
        if held_out:
            if not quiet:
                err_console.print(f"note: evaluating the {len(held_out)} videos the run held "
                                  f"out of `{data}` (its --val-ratio split)")
            return held_out, "held-out (the run's split)"
    if not quiet:
        err_console.print(f"note: `{data}` is a plain <class>/<video> folder without a test "
                          f"split: evaluating all {len(dataset.train)} videos")
    return dataset.train, "all"


def _run_config(target: str) -> Optional[dict]:
    """`config` of a training run's metrics.json (None for anything else)."""
    from ..dsl.textio import read_bounded

    path = os.path.join(target, "metrics.json")
    if not os.path.isdir(target) or not os.path.isfile(path):
        return None
    try:
        config = json.loads(read_bounded(path)).get("config")
    except Exception:  # unreadable or not JSON: evaluate as a plain folder
        return None
    return config if isinstance(config, dict) else None


def _same_folder(a, b: str) -> bool:
    try:
        return isinstance(a, str) and os.path.samefile(a, b)
    except OSError:
        return False


def _summary(result: dict, files: list[str]) -> None:
    p = result["protocol"]
    out.print(f"{result['model']}: {result['videos']} videos, {len(result['classes'])} classes, "
              f"{p['clips']} clip(s) x {p['crops']} crop(s)")
    out.print(f"top-1 {result['top1']:.2%}   top-{result['top5_k']} {result['top5']:.2%}   "
              "mean per-class "
              f"{result['mean_class_accuracy']:.2%}   ({result['videos_per_second'] or 0:.1f} "
              "videos/s)")
    if result["top5_k"] < 5:
        out.print(f"(top-{result['top5_k']}: the dataset has fewer than 5 classes)")
    if result["skipped_videos"] or result["missing_videos"]:
        out.print(f"skipped {result['skipped_videos']} unreadable video(s); "
                  f"{result['missing_videos']} listed video(s) missing on disk")
    pairs = result["worst_confused_pairs"][:5]
    if pairs:
        out.print("most confused (true -> predicted):")
        for pr in pairs:
            out.print(f"  {pr['true']} -> {pr['predicted']}: {pr['count']} "
                      f"({pr['rate']:.0%} of {pr['true']})")
    out.print("wrote " + ", ".join(files))


@app.command("eval")
def eval_command(
    target: str = typer.Argument(..., metavar="NET|RUN|OUT", help="A network file (with "
                                 "--weights), a training run directory, or an `asnc "
                                 "compile` output directory."),
    data: str = typer.Option(..., "--data", metavar="DIR", help="The dataset: UCF101, HMDB51 or "
                             "Kinetics as distributed, or DIR/<class>/<video>."),
    weights: Optional[str] = typer.Option(None, "--weights", metavar="FILE", help="Trained "
                                          "weights (`.weights.h5`) of the network file."),
    split: Optional[int] = SplitOpt,
    layout: Optional[Layout] = LayoutOpt,
    clips: int = ClipsOpt,
    crops: int = CropsOpt,
    artifact: Artifact = typer.Option(Artifact.onnx, "--artifact", metavar="ARTIFACT",
                                      help="onnx | savedmodel: the model of a compile output "
                                      "that runs."),
    labels: Optional[str] = typer.Option(None, "--labels", metavar="FILE", help="The model's "
                                         "class names (default: labels.txt beside the weights "
                                         "or in the directory); checked against the data."),
    out_dir: Optional[str] = typer.Option(None, "--out", metavar="DIR", help="Where eval.json "
                                          "and confusion.png/.svg go (default: eval/ in the "
                                          "run or compile output, or beside the weights)."),
    as_json: bool = typer.Option(False, "--json", help="Print eval.json (every figure and "
                                 "every video's prediction) on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress and no warnings."),
    import_modules: bool = ImportModulesOpt,
) -> None:
    """Top-1, top-5 and mean per-class accuracy under the multi-clip x multi-crop protocol,
    with a confusion matrix picture."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads
    allow_user_modules(import_modules)
    if crops not in (1, 3):
        raise _fail("--crops", f"crops must be 1 (centre) or 3 (along the long side), got "
                    f"{crops}")
    if weights is not None and not os.path.isfile(weights):
        raise _fail(weights, "weights file does not exist")
    if labels is not None and not os.path.isfile(labels):
        raise _fail(labels, "labels file does not exist")
    if not os.path.exists(target):
        raise _fail(target, "no such file or directory")
    dataset = read_data(data, layout, split, quiet)
    videos, subset = _videos(dataset, target, data, quiet)
    if not videos:
        raise _fail(data, f"no videos to evaluate ({dataset.describe()})")
    model, folder, kind = _model(target, weights, artifact)
    from .labels import LABELS_FILE

    beside = os.path.join(folder, LABELS_FILE)
    _check_labels(labels or (beside if os.path.isfile(beside) else None), dataset.classes,
                  model.classes, data)

    import warnings

    from ..backends.evaluation import Protocol
    from ..backends.plots import draw_confusion
    from ..backends.tensorflow.evaluate import evaluate
    from .progress import VideoProgress

    protocol = Protocol(clips, crops)
    try:
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore", RuntimeWarning)  # skipped videos: counted
            with VideoProgress("eval", len(videos), enabled=not quiet) as progress:
                run = evaluate(model, videos, dataset.classes, protocol, progress)
    except ValueError as exc:
        raise _fail(data, str(exc)) from None
    target_dir = out_dir or os.path.join(folder, EVAL_DIR)
    result = {"model": f"{target} [{kind}]", "data": data, "layout": dataset.layout,
              "split": dataset.split, "subset": subset,
              "frames": model.frames, "size": list(model.size),
              "missing_videos": len(dataset.missing), "missing": dataset.missing,
              **run.as_dict()}
    try:
        os.makedirs(target_dir, exist_ok=True)
    except OSError as exc:
        raise _fail(target_dir, f"cannot make the folder: {exc.strerror or exc}") from None
    text = json.dumps(result, indent=1) + "\n"
    atomic_write(os.path.join(target_dir, EVAL_JSON), text)
    title = (f"{os.path.basename(os.path.normpath(target))} on {dataset.layout}"
             f"{f' split {dataset.split}' if dataset.split else ''}: top-1 "
             f"{run.summary.top1:.1%}, top-{run.summary.k5} {run.summary.top5:.1%} "
             f"({run.summary.videos} videos, {protocol.clips}x{protocol.crops} views)")
    pictures = draw_confusion(run.summary.confusion, dataset.classes,
                              os.path.join(target_dir, CONFUSION), title)
    if as_json:
        sys.stdout.write(text)
    else:
        _summary(result, [os.path.join(target_dir, EVAL_JSON), *pictures])
