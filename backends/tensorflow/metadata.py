"""What a compiled artifact says about itself: the same flat ``str -> str`` metadata in the
ONNX model (``metadata_props``) and the SavedModel (``assets.extra/asnc.json`` and the
``asnc_metadata()`` function on the saved root object).

Every value is a function of the compile's inputs (no time, host or path), so the ONNX
bytes stay identical for the same network, options and seed.
"""

from __future__ import annotations

import hashlib
import json
import os

__all__ = ["METADATA_FILE", "asnc_version", "artifact_metadata", "source_sha256",
           "write_metadata_file", "input_layouts", "file_sha256"]

METADATA_FILE = os.path.join("assets.extra", "asnc.json")  # inside the SavedModel directory


def asnc_version() -> str:
    """The installed distribution's version (pyproject.toml's), as `asnc --version` prints."""
    from importlib import metadata

    try:
        return metadata.version("asnc")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def source_sha256(net) -> str:
    """sha256 of the canonical ``.asn`` text (`asnc fmt`) of ``net``."""
    from ...dsl.printer import format_network

    return hashlib.sha256(format_network(net).encode()).hexdigest()


def input_layouts(net, batch: int | None) -> dict[str, str]:
    """``{"video": "NTHWC float32 [batch, T, H, W, 3]", ...}``: each input's layout."""
    from .lower import input_specs

    def dims(shape):
        return ", ".join("batch" if d is None else str(d) for d in shape)

    return {name: f"NTHWC float32 [{dims(shape)}]"
            for name, shape in input_specs(net, batch).items()}


def artifact_metadata(net, final_net, *, level: int | None, passes: list[str],
                      batch: int | None, seed: int, weights_sha256: str | None) -> dict[str, str]:
    """The metadata of one compile. ``net`` is the network as compiled (the source, header
    overrides applied), ``final_net`` the one after the graph passes (what the artifact
    computes)."""
    hdr = final_net.header
    meta = {
        "network": hdr.name,
        "source_sha256": source_sha256(net),
        "opt_level": "custom (--passes)" if level is None else f"-O{level}",
        "passes": ",".join(passes) or "none",
    }
    for name, layout in input_layouts(final_net, batch).items():
        meta[f"input.{name}"] = layout
    meta["output.logits"] = f"float32 [{'batch' if batch is None else batch}, {hdr.classes}]"
    meta.update({
        "classes": str(hdr.classes),
        "frames": str(hdr.frames),
        "size": f"{hdr.size[0]}x{hdr.size[1]}",
        "weights": (f"sha256:{weights_sha256}" if weights_sha256
                    else f"initialised from seed {seed}"),
        "asnc_version": asnc_version(),
    })
    return meta


def write_metadata_file(savedmodel_dir: str, metadata: dict[str, str]) -> str:
    """``assets.extra/asnc.json`` (TF Serving's place for files beside the model that TF
    itself does not load)."""
    path = os.path.join(savedmodel_dir, METADATA_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(metadata, fh, indent=1, sort_keys=False)
        fh.write("\n")
    return path


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
