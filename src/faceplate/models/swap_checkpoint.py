"""Swap-model checkpoints: weights and optimiser state as safetensors, settings and progress as JSON.

Written as a new generation of files, then ``model.json`` is replaced atomically to point at it, then the
old generation is removed: a crash at any moment leaves the previous or the new checkpoint, never a mix.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from faceplate import __version__
from faceplate.errors import ConfigError, ModelError, WriterError
from faceplate.fileio import atomic_write_text
from faceplate.models.swap import SwapArch, SwapModel

MODEL_JSON = "model.json"
CHECKPOINT_VERSION = 1


@dataclass
class TrainState:
    """Everything about a model's training but the tensors."""

    iteration: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)  # (iteration, mean loss) checkpoints
    src: dict[str, Any] = field(default_factory=dict)  # faceset name, res, face type, identity
    dst: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # training settings of the latest run
    seconds: float = 0.0  # training time so far


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, s in state["state"].items():
        for key, val in s.items():
            if torch.is_tensor(val):
                tensors[f"state.{idx}.{key}"] = val.detach().contiguous().cpu()
            else:
                scalars[f"state.{idx}.{key}"] = val
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, val in [*tensors.items(), *meta["scalars"].items()]:
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = val
    return {"state": state, "param_groups": meta["param_groups"]}


def save(
    folder: Path,
    model: SwapModel,
    optimizer: torch.optim.Optimizer | None,
    state: TrainState,
    extras: dict[str, torch.nn.Module] | None = None,
) -> None:
    """Write a checkpoint generation and switch ``model.json`` to it atomically.

    ``extras`` are further modules trained alongside (e.g. the GAN critic), saved as ``<name>-<gen>``.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        gen = f"{state.iteration:09d}-{int(time.time() * 1000) % 100000:05d}"
        weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(weights, str(folder / f"weights-{gen}.safetensors"), metadata={"iteration": str(state.iteration)})
        for name, module in (extras or {}).items():
            tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
            save_file(tensors, str(folder / f"{name}-{gen}.safetensors"))
        opt_meta = None
        if optimizer is not None:
            tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
            save_file(tensors, str(folder / f"optimizer-{gen}.safetensors"))
        meta = {
            "version": CHECKPOINT_VERSION,
            "faceplate_version": __version__,
            "generation": gen,
            "arch": model.arch.to_dict(),
            "state": asdict(state),
            "optimizer": opt_meta,
        }
        atomic_write_text(folder / MODEL_JSON, json.dumps(meta, indent=1))
    except OSError as err:
        raise WriterError(f"cannot save the model in {folder}: {err.strerror}") from None
    for old in folder.glob("*.safetensors"):
        if gen not in old.name:
            with contextlib.suppress(OSError):
                old.unlink()


def load_extra(folder: Path, name: str) -> dict[str, torch.Tensor] | None:
    """State dict of an extra module of the current generation, or None."""
    path = folder / f"{name}-{read_meta(folder)['generation']}.safetensors"
    if not path.is_file():
        return None
    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as err:
        raise ModelError(f"{path} is corrupt: {err}") from None


def read_meta(folder: Path) -> dict[str, Any]:
    path = folder / MODEL_JSON
    if not path.is_file():
        raise ModelError(f"{folder} holds no swap model ({MODEL_JSON} missing); train one with `faceplate train swap`")
    try:
        meta: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ModelError(f"swap model {folder} is corrupt: {err}") from None
    if not isinstance(meta, dict) or meta.get("version") != CHECKPOINT_VERSION:
        version = meta.get("version") if isinstance(meta, dict) else None
        raise ModelError(f"swap model {folder} has checkpoint version {version}; need {CHECKPOINT_VERSION}")
    _check_meta(folder, meta)
    return meta


def _check_meta(folder: Path, meta: dict[str, Any]) -> None:
    """model.json's values, checked before anything uses them: the architecture and the weights it names."""
    try:
        SwapArch(**meta["arch"])
        gen = meta["generation"]
        if not isinstance(gen, str) or not re.fullmatch(r"[0-9-]+", gen):
            raise ValueError(f"generation {gen!r}")
        TrainState(**meta["state"])
    except (KeyError, TypeError, ValueError, ConfigError) as err:
        raise ModelError(
            f"swap model {folder} has an invalid {MODEL_JSON} ({err}); retrain it or restore a copy"
        ) from None
    if not (folder / f"weights-{gen}.safetensors").is_file():
        raise ModelError(f"swap model {folder} lacks its weights (weights-{gen}.safetensors); retrain or restore it")


def load(folder: Path, device: torch.device) -> tuple[SwapModel, dict[str, Any] | None, TrainState]:
    """(model on ``device``, optimiser state dict or None, training state). ModelError when corrupt."""
    meta = read_meta(folder)
    try:
        arch = SwapArch(**meta["arch"])
        model = SwapModel(arch)
        weights = load_file(str(folder / f"weights-{meta['generation']}.safetensors"))
        model.load_state_dict(weights)
        opt = None
        opt_file = folder / f"optimizer-{meta['generation']}.safetensors"
        if meta.get("optimizer") and opt_file.is_file():
            opt = _unflatten_optimizer(load_file(str(opt_file)), meta["optimizer"])
        state = TrainState(**meta["state"])
        state.history = [tuple(h) for h in state.history]  # type: ignore[misc]
    except (OSError, KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as err:
        raise ModelError(f"swap model {folder} is corrupt or incomplete: {str(err).splitlines()[0]}") from None
    return model.to(device), opt, state
