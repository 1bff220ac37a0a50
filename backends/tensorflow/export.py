"""SavedModel and ONNX emission, and their parity check (`asnc compile`).

Artifacts (one directory, written atomically by `compile_network`):

* ``saved_model/``: a TF SavedModel with one signature, ``serving_default``: input ``video``
  float32 ``[batch, T, H, W, 3]`` (and ``object`` float32 ``[batch*T, H, W, N_obj]`` for
  networks with object stems), output ``logits`` float32 ``[batch, classes]``. ``batch`` is
  dynamic (None) unless a fixed batch is asked for. Every model variable is saved, also those of
  nodes that reach no head (the count equals ``count_params``).
* ``model.onnx``: the same function converted by tf2onnx (opset 17 by default), with the same
  input and output names. Byte-identical for the same network, seed and options.
* ``report.json``: static stats, passes, parity, artifact sizes, per-phase timings.

`verify` runs the SavedModel (reloaded with ``tf.saved_model.load``) and ONNX Runtime on the
same seeded random input and returns the largest absolute logit difference.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "PARITY_TOLERANCE", "CompileError", "Parity",
           "CompileResult", "serving_function", "write_savedmodel", "to_onnx", "verify",
           "savedmodel_float_count", "random_inputs", "compile_network", "max_opset",
           "REPORT_NAME", "SAVEDMODEL_DIR", "ONNX_NAME"]

DEFAULT_OPSET = 17
MIN_OPSET = 17
PARITY_TOLERANCE = 1e-4
PROOF_BATCH_DEFAULT = 2
SAVEDMODEL_DIR = "saved_model"
ONNX_NAME = "model.onnx"
REPORT_NAME = "report.json"
FORMATS = ("savedmodel", "onnx")
_MARKER = "asnc compile"  # report.json["tool"]: how we recognise an output directory of ours


class CompileError(Exception):
    """A compile failed for a reason the user can act on (parity, weights, output path)."""


def max_opset() -> int:
    from tf2onnx import constants

    return max(constants.OPSET_TO_IR_VERSION)


# ---------------------------------------------------------------------------------------------
# The serving function
# ---------------------------------------------------------------------------------------------
def _signature(net, batch):
    import tensorflow as tf

    from .lower import input_specs

    return [tf.TensorSpec(shape, tf.float32, name=name)
            for name, shape in input_specs(net, batch).items()]


def serving_function(model, net, batch: int | None = None):
    """``tf.function`` ``(video[, object]) -> {"logits": ...}`` with a fixed input signature."""
    import tensorflow as tf

    signature = _signature(net, batch)
    if len(signature) == 1:
        def serve(video):
            return {"logits": model(video, training=False)["logits"]}
    else:
        def serve(video, object):  # noqa: A002 - the signature's input name
            return {"logits": model({"video": video, "object": object},
                                    training=False)["logits"]}
    return tf.function(serve, input_signature=signature, autograph=False), signature


def write_savedmodel(model, net, path: str, batch: int | None = None, fn=None) -> None:
    """SavedModel whose ``serving_default`` signature is ``fn`` (default `serving_function`).

    The saved object holds ``model_variables``: every model variable, exactly once (also
    those of nodes that reach no head), so the stored float count equals ``count_params``.

    Written with ``tf.saved_model.save`` and the already-traced concrete function rather than
    ``keras.export.ExportArchive``: the archive re-traces the endpoint inside the save (the
    unrolled flow layer makes a trace cost seconds), stores its ``tf.function`` so that
    loading restores it too (the SavedModel loads about 1.5x slower), and ``track(model)``
    stores every value twice (Keras variable and its ``tf.Variable``). The signature is the
    same: ``video`` (and ``object``) -> ``logits``.
    """
    import tensorflow as tf

    if fn is None:
        fn, _ = serving_function(model, net, batch)
    concrete = fn.get_concrete_function()  # traced once; the input signature is fixed
    root = tf.Module(name=net.header.name)
    root.model_variables = [v.value for v in model.weights]
    tf.saved_model.save(root, path, signatures={"serving_default": concrete})


def savedmodel_float_count(path: str) -> int:
    """Number of floating-point values stored in a SavedModel's variables."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(os.path.join(path, "variables", "variables"))
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    return sum(int(np.prod(shapes[k], dtype=np.int64)) for k in shapes
               if dtypes[k].is_floating and k != "_CHECKPOINTABLE_OBJECT_GRAPH")


def to_onnx(model, net, path: str | None = None, opset: int = DEFAULT_OPSET,
            batch: int | None = None, fn=None) -> bytes:
    """The serving function as ONNX bytes (written to ``path`` if given); deterministic."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    top = max_opset()
    if not MIN_OPSET <= opset <= top:
        raise CompileError(f"--opset must be between {MIN_OPSET} and {top} (tf2onnx "
                           f"{tf2onnx.__version__}), got {opset}")
    if fn is None:
        fn, _ = serving_function(model, net, batch)
    signature = fn.input_signature
    with tf.device("/cpu:0"):
        proto = _convert(tf2onnx, fn, signature, opset)
    _canonicalise(proto, net.header.name)
    onnx.checker.check_model(proto)
    data = proto.SerializeToString(deterministic=True)
    if path is not None:
        with open(path, "wb") as fh:
            fh.write(data)
    return data


def _convert(tf2onnx, fn, signature, opset):
    """tf2onnx's conversion, without its per-optimiser deep copy of the graph when possible.

    tf2onnx copies the whole graph before each optimiser so that it can skip one that fails;
    on these graphs (thousands of nodes: the unrolled flow layer) that copying is most of the
    conversion time. Setting TF2ONNX_CATCH_ERRORS (to anything: tf2onnx 1.17 compares the
    variable's name, not its value) turns the copy off. If an optimiser then fails, the
    conversion is redone the careful way. A value the user set is left alone.
    """
    key = "TF2ONNX_CATCH_ERRORS"
    if key not in os.environ:
        os.environ[key] = "false"
        try:
            return tf2onnx.convert.from_function(fn, input_signature=signature,
                                                 opset=opset)[0]
        except Exception:
            pass  # redo it with tf2onnx's own error recovery below
        finally:
            os.environ.pop(key, None)
    return tf2onnx.convert.from_function(fn, input_signature=signature, opset=opset)[0]


def _canonicalise(proto, name: str) -> None:
    """Make the ONNX bytes a function of the model alone.

    tf2onnx names the graph after the traced function (a process-wide counter), and its
    optimisers walk Python sets, so node order and the ``__N`` counters of the names they
    make up change from one process to the next. Here: nodes in a canonical topological
    order (depth-first from the outputs, inputs in operand order), initializers in order of
    first use; node, tensor and initializer names made from that order (``n<k>_<Op>``,
    ``n<k>_<Op>:<j>``, ``c<k>``). Graph inputs and outputs keep their names.
    """
    g = proto.graph
    g.name = name
    g.doc_string = ""
    proto.doc_string = ""
    if any(a.type in (5, 10) or a.g.node or a.graphs for n in g.node for a in n.attribute):
        return  # sub-graphs (If/Loop): leave as is rather than rename inside them
    nodes = list(g.node)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    order, emitted = [], set()
    stack = [(producer[o.name], False) for o in reversed(g.output) if o.name in producer]
    while stack:
        i, expanded = stack.pop()
        if i in emitted:
            continue
        if expanded:
            emitted.add(i)
            order.append(i)
            continue
        stack.append((i, True))
        for t in reversed(nodes[i].input):
            j = producer.get(t)
            if j is not None and j not in emitted:
                stack.append((j, False))
    # nodes no output needs (tf2onnx normally prunes them): after the rest, in old order
    order += [i for i in range(len(nodes)) if i not in emitted]

    # Names from the structure alone: tf2onnx merges equal constants and equal nodes, and
    # which original name survives a merge depends on set order too.
    keep = {v.name for v in g.input} | {v.name for v in g.output} | {""}
    tensor_map: dict[str, str] = {t: t for t in keep}
    inits = {t.name: t for t in g.initializer}
    new_nodes, init_order = [], []
    for k, i in enumerate(order):
        n = onnx_copy(nodes[i])
        n.name = f"n{k}_{n.op_type}"
        for j, t in enumerate(n.input):
            if t not in tensor_map:
                if t in inits:
                    init_order.append(t)
                    tensor_map[t] = f"c{len(init_order) - 1}"
                else:  # a graph input that is neither video nor object: keep it
                    tensor_map[t] = t
            n.input[j] = tensor_map[t]
        for j, t in enumerate(n.output):
            if t not in keep:
                tensor_map[t] = f"{n.name}:{j}"
            n.output[j] = tensor_map[t]
        new_nodes.append(n)
    new_inits = []
    for t in init_order:
        c = onnx_copy(inits[t])
        c.name = tensor_map[t]
        new_inits.append(c)
    infos = [onnx_copy(v) for v in g.value_info if v.name in tensor_map]
    for v in infos:
        v.name = tensor_map[v.name]
    rank = {t: k for k, t in enumerate(tensor_map.values())}
    infos.sort(key=lambda v: rank[v.name])
    del g.node[:]
    g.node.extend(new_nodes)
    del g.initializer[:]
    g.initializer.extend(new_inits)
    del g.value_info[:]
    g.value_info.extend(infos)


def onnx_copy(message):
    new = type(message)()
    new.CopyFrom(message)
    return new


# ---------------------------------------------------------------------------------------------
# Parity
# ---------------------------------------------------------------------------------------------
@dataclass
class Parity:
    max_abs_diff: float
    max_abs_logit: float
    batch: int
    seed: int
    tolerance: float = PARITY_TOLERANCE
    tf_seconds: float = 0.0
    onnx_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.max_abs_diff)) and self.max_abs_diff <= self.tolerance

    def to_json(self) -> dict:
        return {"max_abs_diff": self.max_abs_diff, "max_abs_logit": self.max_abs_logit,
                "tolerance": self.tolerance, "ok": self.ok, "batch": self.batch,
                "seed": self.seed, "inputs": "uniform [0, 1)",
                "tf_seconds": round(self.tf_seconds, 3),
                "onnx_seconds": round(self.onnx_seconds, 3)}


def random_inputs(net, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded uniform [0, 1) inputs for every model input, by name."""
    from .lower import input_specs

    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in input_specs(net, batch).items():
        out[name] = rng.random(shape, dtype=np.float32)
    return out


def verify(savedmodel_dir: str, onnx_path: str, net, batch: int | None = None,
           seed: int = 0, tolerance: float = PARITY_TOLERANCE) -> Parity:
    """Run the reloaded SavedModel and ONNX Runtime on the same input; compare the logits.

    A dynamic-batch model is checked with a batch of 2 (so the batch really is dynamic).
    """
    import onnxruntime as ort
    import tensorflow as tf

    n = batch or 2
    feeds = random_inputs(net, n, seed)
    t0 = time.perf_counter()
    loaded = tf.saved_model.load(savedmodel_dir)
    sig = loaded.signatures["serving_default"]
    ref = sig(**{k: tf.constant(v) for k, v in feeds.items()})["logits"].numpy()
    t1 = time.perf_counter()
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    got = session.run(["logits"], feeds)[0]
    t2 = time.perf_counter()
    if got.shape != ref.shape:
        raise CompileError(f"ONNX logits have shape {got.shape}, the SavedModel's "
                           f"{ref.shape}")
    diff = float(np.max(np.abs(got.astype(np.float64) - ref.astype(np.float64))))
    if not np.all(np.isfinite(ref)) or not np.all(np.isfinite(got)):
        diff = float("inf")
    return Parity(diff, float(np.max(np.abs(ref))), n, seed, tolerance, tf_seconds=t1 - t0,
                  onnx_seconds=t2 - t1)


# ---------------------------------------------------------------------------------------------
# The whole compile, written atomically
# ---------------------------------------------------------------------------------------------
@dataclass
class CompileResult:
    out: str
    report: dict
    parity: Parity | None
    params: int
    timings: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)


def _dir_size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def _check_out(out: str) -> None:
    """Refuse to replace anything that is not an earlier output of `asnc compile`."""
    if not os.path.lexists(out):
        return
    if not os.path.isdir(out) or os.path.islink(out):
        raise CompileError(f"output `{out}` exists and is not a directory")
    entries = os.listdir(out)
    if not entries:
        return
    try:
        with open(os.path.join(out, REPORT_NAME)) as fh:
            ours = json.load(fh).get("tool") == _MARKER
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        raise CompileError(f"output directory `{out}` is not empty and was not written by "
                           "`asnc compile`; not replacing it (choose another -o or empty it)")


def _swap_into_place(tmp: str, out: str) -> None:
    """Put directory `tmp` at `out`. An existing `out` is exchanged with `tmp` in one step
    (Linux renameat2 RENAME_EXCHANGE) where the system offers it, else moved aside first;
    the old contents are then removed."""
    if not os.path.lexists(out):
        os.rename(tmp, out)
        return
    if _exchange(tmp, out):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old output
        return
    old = tempfile.mkdtemp(dir=os.path.dirname(out), prefix=f".{os.path.basename(out)}.old-")
    os.rmdir(old)
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two paths (Linux >= 3.15); False where that is not available."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]
    return renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0


def compile_network(net, out: str, *, seed: int = 0, batch: int | None = None,
                    formats=FORMATS, opset: int = DEFAULT_OPSET, do_verify: bool = True,
                    weights: str | None = None, stats: dict | None = None,
                    passes: dict | None = None, source: str | None = None,
                    on_phase: Callable[[str, str], None] | None = None,
                    extra_report: dict | None = None,
                    tolerance: float = PARITY_TOLERANCE, optimised=None,
                    proof_tolerance: float | None = None) -> CompileResult:
    """Lower ``net`` and write the artifacts into ``out`` (atomically).

    ``net`` is the network as written; ``optimised`` (`compiler.passes.optimise`'s result,
    None: ``-O0``) the graph passes run on it and the backend passes to apply. The model is
    first built in the reference form from ``net`` (trained ``weights`` load into it); each
    graph pass that changed the network is then lowered on its own and compared with the
    model before it on random inputs (an exact pass must agree within ``proof_tolerance``,
    default `PROOF_TOLERANCE`; an approximate one has its deviation measured and reported);
    then the backend passes are applied and proved one by one (`passes.apply_passes`).

    Phases: ``build``, ``weights`` (with ``weights``), ``passes`` (with passes to apply),
    ``savedmodel``, ``onnx``, ``verify`` (skipped with ``do_verify=False``; it needs both
    artifacts, so both are made and only the asked ``formats`` kept).
    ``on_phase(name, "start"|"done")`` reports progress. Raises CompileError (nothing
    written) on a parity or proof failure or a bad weights file; ``out`` is untouched by a
    failed compile.
    """
    formats = tuple(formats)
    for f in formats:
        if f not in FORMATS:
            raise CompileError(f"unknown format `{f}`; formats are {', '.join(FORMATS)}")
    if not formats:
        raise CompileError("no output format given")
    if weights is not None and not os.path.isfile(weights):
        raise CompileError(f"weights file `{weights}` does not exist")
    out = os.path.abspath(out)
    _check_out(out)
    parent = os.path.dirname(out)
    note = on_phase or (lambda name, event: None)
    timings: dict[str, float] = {}
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(out)}.tmp-")
    except OSError as exc:
        raise CompileError(f"cannot write next to `{out}`: {exc.strerror or exc}") from None

    @contextlib.contextmanager
    def phase(name):
        note(name, "start")
        t = time.perf_counter()
        yield
        timings[name] = round(time.perf_counter() - t, 3)
        note(name, "done")

    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; OUT is a usual directory
        from ...compiler.passes.backend import LoweringPlan
        from .lower import lower
        from .passes import PROOF_TOLERANCE, PassProofError, apply_passes, prove_stages

        final_net = optimised.network if optimised is not None else net
        plan = optimised.plan if optimised is not None else LoweringPlan()
        stages = optimised.stages if optimised is not None else []
        expected = optimised.stats() if optimised is not None else None
        if stats is None:
            from ...compiler.analysis import analyse

            stats = (expected or analyse(net)).to_json()
        with phase("build"):
            lowered = lower(net, seed=seed, batch=batch, plan=LoweringPlan())
        if weights:
            with phase("weights"):
                load_weights(lowered.model, weights)
        proofs: list = []
        if stages or plan.passes():
            with phase("passes"):
                feeds = random_inputs(net, batch or PROOF_BATCH_DEFAULT, seed)
                tol = PROOF_TOLERANCE if proof_tolerance is None else proof_tolerance
                try:
                    lowered, proofs = prove_stages(lowered, stages, feeds, seed=seed,
                                                   batch=batch, tolerance=tol)
                    lowered, backend_proofs = apply_passes(final_net, lowered, plan, feeds,
                                                           seed=seed, batch=batch,
                                                           tolerance=tol)
                except PassProofError as exc:
                    raise CompileError(str(exc)) from None
                proofs += backend_proofs
        model = lowered.model
        params = int(model.count_params())
        if expected is not None and params != expected.total:
            raise CompileError(f"internal error: the optimised model has {params:,} "
                               f"parameters, `asnc stats` counts {expected.total:,} for it")
        fn, _ = serving_function(model, final_net, batch)
        trainable = int(sum(int(np.prod(v.shape)) for v in model.trainable_weights))
        net = final_net
        sizes: dict[str, int] = {}
        sm_dir = os.path.join(tmp, SAVEDMODEL_DIR)
        onnx_path = os.path.join(tmp, ONNX_NAME)
        saved_floats = None
        if "savedmodel" in formats or do_verify:
            with phase("savedmodel"):
                write_savedmodel(model, net, sm_dir, batch, fn=fn)
                saved_floats = savedmodel_float_count(sm_dir)
            if saved_floats != params:
                raise CompileError(f"the SavedModel stores {saved_floats:,} float values, "
                                   f"the model has {params:,} parameters")
        onnx_sha = None
        if "onnx" in formats or do_verify:
            with phase("onnx"):
                data = to_onnx(model, net, onnx_path, opset=opset, batch=batch, fn=fn)
                onnx_sha = hashlib.sha256(data).hexdigest()
        parity = None
        if do_verify:
            with phase("verify"):
                parity = verify(sm_dir, onnx_path, net, batch=batch, seed=seed,
                                tolerance=tolerance)
            if not parity.ok:
                raise CompileError(
                    f"TF and ONNX Runtime disagree: max |logit difference| "
                    f"{parity.max_abs_diff:.3g} > {parity.tolerance:g} (batch {parity.batch}, "
                    f"seed {parity.seed}); nothing was written")
        # drop artifacts that were only made for the check
        if "savedmodel" not in formats and os.path.exists(sm_dir):
            shutil.rmtree(sm_dir)
        if "onnx" not in formats and os.path.exists(onnx_path):
            os.unlink(onnx_path)
        if "savedmodel" in formats:
            sizes[SAVEDMODEL_DIR] = _dir_size(sm_dir)
        if "onnx" in formats:
            sizes[ONNX_NAME] = _dir_size(onnx_path)
        import keras
        import tensorflow as tf

        report = {
            "tool": _MARKER,
            "source": source,
            "network": net.header.name,
            "options": {"seed": seed, "batch": batch, "formats": list(formats),
                        "opset": opset if "onnx" in formats or do_verify else None,
                        "verify": do_verify, "weights": weights},
            "signature": {"name": "serving_default",
                          "inputs": {k: [d if d is not None else None for d in v]
                                     for k, v in _input_specs(net, batch).items()},
                          "outputs": {"logits": [batch, net.header.classes]}},
            "params": {"count_params": params, "trainable": trainable,
                       "non_trainable": params - trainable,
                       "savedmodel_floats": saved_floats if "savedmodel" in formats else None},
            "stats": stats,
            "passes": passes if passes is not None else [],
            "proofs": [p.to_json() for p in proofs],
            "parity": parity.to_json() if parity else None,
            "artifacts": {k: {"bytes": v} for k, v in sizes.items()},
            "onnx_sha256": onnx_sha if "onnx" in formats else None,
            "timings_s": timings,
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                         **_onnx_versions()},
        }
        if extra_report:
            report.update(extra_report)
        with open(os.path.join(tmp, REPORT_NAME), "w") as fh:
            json.dump(report, fh, indent=1)
            fh.write("\n")
        _swap_into_place(tmp, out)
        tmp = None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return CompileResult(out, report, parity, params, timings, sizes)


def _input_specs(net, batch):
    from .lower import input_specs

    return input_specs(net, batch)


def _onnx_versions() -> dict:
    try:
        import onnx
        import onnxruntime
        import tf2onnx
    except ImportError:
        return {}
    return {"tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__}


def load_weights(model, path: str) -> None:
    """Load trained weights into the freshly built model.

    Accepted: a Keras weights file written by ``model.save_weights("x.weights.h5")`` (or a
    whole ``.keras`` file) from a model built by this backend for the same network (same
    nodes, modules and input size). Anything else is a CompileError.
    """
    if not os.path.exists(path):
        raise CompileError(f"weights file `{path}` does not exist")
    if not (path.endswith(".weights.h5") or path.endswith(".keras") or path.endswith(".h5")):
        raise CompileError(f"weights file `{path}`: expected a Keras `.weights.h5` file "
                           "(model.save_weights) or a `.keras` file")
    try:
        import warnings

        with warnings.catch_warnings():
            # Keras warns (UserWarning), not fails, on a file of another structure
            warnings.simplefilter("error", UserWarning)
            model.load_weights(path)
    except Exception as exc:
        raise CompileError(f"cannot load weights from `{path}`: {type(exc).__name__}: "
                           f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''} "
                           "(the file must come from this network, built at the same "
                           "size)") from None
