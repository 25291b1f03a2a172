"""Find a model's ONNX pair from whatever path the user gave, and check that it belongs together.

``NAME.pt`` (deploy checkpoint), ``NAME.template.onnx``, ``NAME.search.onnx`` or the prefix
``NAME`` all resolve to the same pair. Both graphs carry the ``ModelInfo`` JSON and a pair id in
their metadata; a pair from two different exports is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Tuple, Union

from asymtrack_ros.backends.base import ModelFileError
from asymtrack_ros.backends.onnx_proto import OnnxParseError, OnnxSummary, TensorDecl, read_onnx
from asymtrack_ros.model_info import ModelInfo

TEMPLATE_SUFFIX = ".template.onnx"
SEARCH_SUFFIX = ".search.onnx"
INFO_KEY = "asymtrack_info"
PAIR_KEY = "asymtrack_pair"
GRAPH_KEY = "asymtrack_graph"
TEMPLATE_INPUT = "template"
SEARCH_INPUT = "search"
SEARCH_OUTPUTS = ("boxes", "prob_tl", "prob_br")
_STRIP_SUFFIXES = (TEMPLATE_SUFFIX, SEARCH_SUFFIX, ".pth.tar", ".pt", ".pth", ".onnx")

PathLike = Union[str, Path]


@dataclass(frozen=True)
class ModelFiles:
    """A checked ONNX pair: paths, metadata and the template-state tensors linking the graphs."""

    template: Path
    search: Path
    info: ModelInfo
    state: Tuple[TensorDecl, ...]
    outputs: Tuple[TensorDecl, ...]

    @property
    def prefix(self) -> Path:
        return Path(str(self.template)[:-len(TEMPLATE_SUFFIX)])

    @property
    def state_names(self) -> Tuple[str, ...]:
        return tuple(t.name for t in self.state)


def model_prefix(path: PathLike) -> Path:
    """``a/b.pt``, ``a/b.template.onnx``, ``a/b.search.onnx`` -> ``a/b``."""
    text = str(path)
    for suffix in _STRIP_SUFFIXES:
        if text.endswith(suffix):
            return Path(text[:-len(suffix)])
    return Path(text)


def onnx_pair_paths(prefix: PathLike) -> Tuple[Path, Path]:
    prefix = model_prefix(prefix)
    return Path(f"{prefix}{TEMPLATE_SUFFIX}"), Path(f"{prefix}{SEARCH_SUFFIX}")


def _missing_message(path: Path, prefix: Path) -> str:
    checkpoint = next((Path(f"{prefix}{s}") for s in (".pt", ".pth.tar", ".pth")
                       if Path(f"{prefix}{s}").is_file()), None)
    if checkpoint is not None:
        hint = f"export it first: asymtrack-export {checkpoint}"
    else:
        hint = f"export a checkpoint first: asymtrack-export MODEL.pt -o {prefix}"
    return f"ONNX model file not found: {path} ({hint})"


def _check_given(given: Path, template: Path, search: Path) -> None:
    """A named model file that is missing, and no ONNX pair beside it: say the file the user named."""
    if given.suffix and given not in (template, search) and not given.exists() \
            and not (template.is_file() and search.is_file()):
        raise ModelFileError(f"model file not found: {given} (nor an exported pair {template.name} + "
                             f"{search.name} beside it)")


def _read(path: Path, prefix: Path) -> OnnxSummary:
    if not path.is_file():
        raise ModelFileError(_missing_message(path, prefix))
    try:
        return read_onnx(path)
    except (OnnxParseError, UnicodeDecodeError, KeyError) as exc:
        raise ModelFileError(f"{path} is not a valid ONNX file (truncated or corrupt: {exc}); "
                             "re-export it with asymtrack-export") from None


def _info(summary: OnnxSummary) -> ModelInfo:
    text = summary.metadata.get(INFO_KEY)
    if text is None:
        raise ModelFileError(f"{summary.path} has no '{INFO_KEY}' metadata: it was not written by "
                             "asymtrack-export")
    try:
        return ModelInfo.from_json(text)
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelFileError(f"{summary.path}: unreadable '{INFO_KEY}' metadata ({exc})") from None


def _check_role(summary: OnnxSummary, role: str) -> None:
    found = summary.metadata.get(GRAPH_KEY)
    if found != role:
        raise ModelFileError(f"{summary.path} holds the {found!r} graph, expected the {role!r} graph")


def _by_name(decls: Tuple[TensorDecl, ...]) -> Dict[str, TensorDecl]:
    return {d.name: d for d in decls}


def _check_interface(template: OnnxSummary, search: OnnxSummary, info: ModelInfo) -> Tuple[TensorDecl, ...]:
    """The template graph's outputs must be exactly the search graph's extra inputs."""
    t_in, s_in = _by_name(template.inputs), _by_name(search.inputs)
    z, x = info.template_size, info.search_size
    if t_in.get(TEMPLATE_INPUT) is None or t_in[TEMPLATE_INPUT].shape != (1, 3, z, z):
        raise ModelFileError(f"{template.path}: expected input '{TEMPLATE_INPUT}' (1,3,{z},{z}), "
                             f"found {list(template.inputs)}")
    if s_in.get(SEARCH_INPUT) is None or s_in[SEARCH_INPUT].shape != (1, 3, x, x):
        raise ModelFileError(f"{search.path}: expected input '{SEARCH_INPUT}' (1,3,{x},{x}), "
                             f"found {list(search.inputs)}")
    state = template.outputs
    expected = {d.name: d.shape for d in state}
    got = {d.name: d.shape for d in search.inputs if d.name != SEARCH_INPUT}
    if expected != got:
        raise ModelFileError(f"{template.path} and {search.path} do not fit together: template outputs "
                             f"{expected}, search state inputs {got}")
    missing = [n for n in SEARCH_OUTPUTS if n not in _by_name(search.outputs)]
    if missing:
        raise ModelFileError(f"{search.path}: missing outputs {missing}")
    for decl in state + search.inputs + search.outputs + template.inputs:
        if not decl.is_static:
            raise ModelFileError(f"{decl.name} has a dynamic shape {decl.shape}; "
                                 "re-export with asymtrack-export")
    return state


def resolve_model_files(path: PathLike) -> ModelFiles:
    """Resolve a user's model path to a checked ONNX pair; raises ModelFileError with a hint."""
    prefix = model_prefix(path)
    template_path, search_path = onnx_pair_paths(prefix)
    _check_given(Path(path), template_path, search_path)
    template, search = _read(template_path, prefix), _read(search_path, prefix)
    _check_role(template, "template")
    _check_role(search, "search")
    info_t, info_s = _info(template), _info(search)
    if info_t != info_s:
        raise ModelFileError(f"{template_path} (AsymTrack-{info_t.variant}, {info_t.template_size}/"
                             f"{info_t.search_size}) and {search_path} (AsymTrack-{info_s.variant}, "
                             f"{info_s.template_size}/{info_s.search_size}) come from different models; "
                             "export them together")
    pair_t, pair_s = template.metadata.get(PAIR_KEY), search.metadata.get(PAIR_KEY)
    if pair_t != pair_s:
        raise ModelFileError(f"{template_path} and {search_path} come from different exports "
                             f"(pair ids {pair_t} vs {pair_s}); export them together")
    state = _check_interface(template, search, info_t)
    return ModelFiles(template_path, search_path, info_t, state, search.outputs)
