"""AsymTrack in PyTorch against the published code's reference vectors, plus its own invariants."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from asymtrack_ros.model import (
    AsymTrack,
    CheckpointError,
    TemplateState,
    build_model,
    convert_published,
    dummy_inputs,
    load_deploy,
    load_model,
    load_published,
    save_deploy,
)
from asymtrack_ros.model.layers import OPE
from asymtrack_ros.model_info import ModelInfo

torch.set_num_threads(1)

VARIANTS = ("tiny", "small", "base")
PAPER_PARAMS_M = {"tiny": 3.05, "small": 3.36, "base": 3.36}
PAPER_GFLOPS = {"tiny": 0.7, "small": 0.8, "base": 1.8}
FEATURE_TOL = 2e-4
OUTPUT_TOL = 1e-4


def published_path(reference_dir: Path, variant: str) -> Path:
    return reference_dir / f"official_{variant}_random.pth.tar"


@pytest.fixture(scope="module")
def published(reference_dir: Path) -> Dict[str, Tuple[AsymTrack, list]]:
    """Each published checkpoint converted once per module: variant -> (model, skipped keys)."""
    return {v: convert_published(published_path(reference_dir, v)) for v in VARIANTS}


@pytest.fixture(scope="module")
def vectors(reference_dir: Path) -> Dict[str, Dict[str, np.ndarray]]:
    return {v: dict(np.load(reference_dir / f"network_{v}.npz")) for v in VARIANTS}


def max_err(a: torch.Tensor, b: np.ndarray) -> float:
    assert tuple(a.shape) == b.shape
    return float(np.abs(a.detach().numpy().astype(np.float64) - b.astype(np.float64)).max())


def check_outputs(out: Dict[str, torch.Tensor], ref: Dict[str, np.ndarray], i: int, boxes_key: str) -> None:
    assert max_err(out["feature"], ref[f"feature_{i}"]) < FEATURE_TOL
    assert max_err(out["boxes"], ref[f"{boxes_key}_{i}"]) < OUTPUT_TOL
    assert max_err(out["prob_tl"], ref[f"prob_tl_{i}"]) < OUTPUT_TOL
    assert max_err(out["prob_br"], ref[f"prob_br_{i}"]) < OUTPUT_TOL


# --- reference vectors ------------------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_reference_first_call(published, vectors, variant):
    model, _ = published[variant]
    ref = vectors[variant]
    assert not model.training and model.deploy
    with torch.no_grad():
        for i in range(3):
            out = model(torch.from_numpy(ref[f"template_{i}"]), torch.from_numpy(ref[f"search_{i}"]))
            check_outputs(out, ref, i, "pred_boxes")


@pytest.mark.parametrize("variant", VARIANTS)
def test_matches_reference_cached_template(published, vectors, variant):
    model, _ = published[variant]
    ref = vectors[variant]
    with torch.no_grad():
        states = [model.init_template(torch.from_numpy(ref[f"template_{i}"])) for i in range(3)]
        for i in (2, 0, 1):  # the state must not change between calls nor depend on call order
            for _ in range(2):
                out = model.track(torch.from_numpy(ref[f"search_{i}"]), states[i])
                check_outputs(out, ref, i, "pred_boxes_cached")


@pytest.mark.parametrize("variant", VARIANTS)
def test_public_attributes_and_state(published, variant):
    model, _ = published[variant]
    info = ModelInfo.for_variant(variant)
    assert (model.variant, model.template_size, model.search_size) == (
        variant, info.template_size, info.search_size)
    z, x = dummy_inputs(model)
    with torch.no_grad():
        state = model.init_template(z)
        out = model.track(x, state)
    lz = (model.template_size // 16) ** 2
    assert state.names == ["etm1_kernels", "etm2_kernels", "attn_k", "attn_v"]
    assert [tuple(t.shape) for t in state.tensors()] == [(1, 2, 5), (1, 4, 7), (1, 8, lz, 32), (1, 8, lz, 32)]
    f = model.feature_size
    assert tuple(out["boxes"].shape) == (1, 4)
    assert tuple(out["prob_tl"].shape) == tuple(out["prob_br"].shape) == (1, f * f)
    assert tuple(out["feature"].shape) == (1, f, f, 256)
    again = TemplateState.from_dict(state.as_dict())
    assert again.names == state.names and all(a is b for a, b in zip(again.tensors(), state.tensors()))


# --- parameters, keys, FLOPs --------------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_parameter_counts_match_paper(published, variant):
    model, _ = published[variant]
    assert abs(model.num_parameters() / 1e6 - PAPER_PARAMS_M[variant]) < 0.01
    assert build_model(variant).num_parameters() == model.num_parameters()


@pytest.mark.parametrize("variant", VARIANTS)
def test_skipped_keys_are_exactly_the_unused_ones(reference_dir, published, variant):
    _, skipped = published[variant]
    lines = (reference_dir / f"official_keys_{variant}.txt").read_text().splitlines()
    unused = [ln.split("\t")[0] for ln in lines if not ln.startswith("#") and "unused" in ln]
    assert len(unused) == 12
    assert sorted(skipped) == sorted(unused)


@pytest.mark.parametrize("variant", VARIANTS)
def test_gmacs_close_to_paper(variant):
    from asymtrack_ros.model.flops import count_macs

    macs = count_macs(build_model(variant).eval())
    assert 0 < macs["template"] < macs["search"]
    assert abs(macs["total"] / 1e9 - PAPER_GFLOPS[variant]) / PAPER_GFLOPS[variant] < 0.1


# --- invariants on random weights ---------------------------------------------------------------

def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Perturb every parameter and BN statistic so that no block is a no-op."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if p.dtype.is_floating_point:
                noise = torch.randn(p.shape, generator=gen) * 0.1
                p.copy_(p.abs() + 0.5 + noise if name.endswith("running_var") else p + noise)
    return model


def test_ope_training_form_equals_deploy_form():
    torch.manual_seed(0)
    ope = randomise(OPE(32, deploy=False), seed=1)
    with torch.no_grad():
        ope.theta.fill_(0.7)
    x = torch.randn(2, 9, 11, 32)
    with torch.no_grad():
        before = ope(x)
        ope.reparameterize()
        after = ope(x)
    assert ope.deploy and not hasattr(ope, "convs")
    assert torch.allclose(before, after, atol=1e-5, rtol=0)
    assert (before - x).abs().max() > 1e-2  # the block is not a no-op


def test_whole_model_training_form_equals_deploy_form():
    model = randomise(build_model("tiny", deploy=False), seed=2).eval()
    z, x = dummy_inputs(model, batch=2)
    with torch.no_grad():
        before = model(z, x)
        after = copy.deepcopy(model).reparameterize()(z, x)
    # float32 rounding through 15 LayerNorms: ~1e-5 on features of magnitude ~5
    for key in ("boxes", "prob_tl", "prob_br", "feature"):
        assert torch.allclose(before[key], after[key], atol=1e-4, rtol=0), key


def joint_forward(model: AsymTrack, z: torch.Tensor, x: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Both streams side by side, attention over the full [x ; z] sequence: no caching at all."""
    z, x = model.stem(z.permute(0, 2, 3, 1)), model.stem(x.permute(0, 2, 3, 1))
    for stage in model.stages:
        z, x = stage.blocks(z), stage.blocks(x)
        if stage.etm is not None:
            x = stage.etm(x, stage.etm.template_kernels(z))
        z, x = stage.ope(z), stage.ope(x)
        if stage.attn is not None:
            a = stage.attn
            b, h, w, c = x.shape
            t = torch.cat([x.flatten(1, 2), z.flatten(1, 2)], dim=1)
            q, k, v = a.qkv(a.norm1(t)).reshape(b, t.shape[1], 3, 8, 32).permute(2, 0, 3, 1, 4)
            out = F.scaled_dot_product_attention(q, k, v, scale=32 ** -0.5)
            t = t + a.proj(out.transpose(1, 2).flatten(2))
            t = t + a.mlp(a.norm2(t))
            x = t[:, :h * w].reshape(b, h, w, c)
        z, x = stage.downsample(z), stage.downsample(x)
    boxes, prob_tl, prob_br = model.head(model.neck(x).permute(0, 3, 1, 2))
    return {"boxes": boxes, "prob_tl": prob_tl, "prob_br": prob_br, "feature": x}


# Joint vs split forward and batch 2 vs batch 1 compute the same sums in another order: the batch size
# and the stream layout change how oneDNN/MKL block the GEMMs and convolutions. In float32
# (eps = 2**-23 = 1.2e-7) a dot product of K terms summed in another order differs by about
# eps * sqrt(K) * |terms| (K <= 2304 here: 3x3 convolutions over 256 channels), i.e. ~6e-6 of the
# values' magnitude per layer, growing like sqrt(depth) over the ~25 layers of the search branch
# (LayerNorm and BatchNorm keep the magnitudes in check): a few 1e-5 at worst. Features and corner
# logits are therefore compared relative to their magnitude with REORDER_RTOL = 1e-4 (measured over 30
# random models: at most 1.8e-6 for features, 4.6e-6 for logits). A real difference between the paths
# (a template of another image, attention without the template tokens) is of the order of the values.
# Probabilities and boxes are not compared with a fixed absolute tolerance: a softmax amplifies its
# logits' error by the logits' scale (random-weight logits span ~70, so corner probabilities near 1
# moved by 1.2e-5 against a 1e-5 tolerance, about one model in two). They follow exactly from the
# logits: with d = max |logit difference|, each probability moves by at most p * expm1(2d) and each
# soft-argmax coordinate (cells in [0, 1)) by at most expm1(2d), a width or height by twice that.
REORDER_RTOL = 1e-4
SOFTMAX_RTOL = 1e-5  # the softmax's own float32 rounding over <= 400 cells (eps * sqrt(400) = 2.4e-6)


def corner_logits(model: AsymTrack, feature: torch.Tensor) -> torch.Tensor:
    """(B, 2*F*F) top-left and bottom-right scores of the head, before its softmax."""
    x = model.neck(feature).permute(0, 3, 1, 2)
    return torch.cat([model.head.tl(x).flatten(1), model.head.br(x).flatten(1)], dim=1)


def assert_same_up_to_reordering(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor], what: str) -> None:
    for key in ("feature", "logits"):
        err, scale = (a[key] - b[key]).abs().max(), b[key].abs().max()
        assert err <= REORDER_RTOL * scale, f"{what} {key}: {err:.2e} > {REORDER_RTOL} * {scale:.2e}"
    shift = float(torch.expm1(2 * (a["logits"] - b["logits"]).abs().max()))
    for key in ("prob_tl", "prob_br"):
        # below float32's smallest normal number (underflowed cells) relative precision is gone
        bound = torch.maximum(a[key], b[key]) * (shift + SOFTMAX_RTOL) + torch.finfo(torch.float32).tiny
        assert bool(((a[key] - b[key]).abs() <= bound).all()), f"{what} {key}: moved more than its logits"
    err = (a["boxes"] - b["boxes"]).abs().max()
    assert err <= 2 * (shift + SOFTMAX_RTOL), f"{what} boxes: {err:.2e} for logits moved by {shift:.2e}"


Outputs = Dict[str, torch.Tensor]


def split_joint_single(model: AsymTrack, z: torch.Tensor, x: torch.Tensor) -> Tuple[Outputs, ...]:
    with torch.no_grad():
        outputs = (joint_forward(model, z, x), model.track(x, model.init_template(z)),
                   model.track(x[1:], model.init_template(z[1:])))
        for out in outputs:
            out["logits"] = corner_logits(model, out["feature"])
    return outputs


@pytest.mark.parametrize("variant", ("tiny", "base"))
def test_split_equals_joint_forward_and_batches(variant):
    torch.manual_seed(7)  # build_model's initial weights; the tolerances hold for any (see above)
    model = randomise(build_model(variant), seed=3).eval()
    z, x = dummy_inputs(model, batch=2, seed=4)
    joint, split, single = split_joint_single(model, z, x)
    assert_same_up_to_reordering(joint, split, "joint vs split")
    assert_same_up_to_reordering({k: v[1:] for k, v in split.items()}, single, "batch 2 vs batch 1")


def test_training_forward_is_differentiable():
    model = randomise(build_model("tiny", deploy=False), seed=5).train()
    z, x = dummy_inputs(model, batch=2)
    out = model(z, x)
    assert tuple(out["boxes"].shape) == (2, 4)
    out["boxes"].sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing


# --- checkpoints --------------------------------------------------------------------------------

def test_deploy_round_trip_and_auto_detection(published, reference_dir, tmp_path):
    model, _ = published["base"]
    path = tmp_path / "base.pt"
    save_deploy(model, path)
    loaded = load_deploy(path)
    assert loaded.info == model.info and loaded.info.search_factor == 4.0
    assert not loaded.training and loaded.deploy
    z, x = dummy_inputs(model)
    with torch.no_grad():
        a, b = model(z, x), loaded(z, x)
    assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["feature"], b["feature"])
    assert load_model(path).variant == "base"
    assert load_model(published_path(reference_dir, "tiny")).variant == "tiny"
    assert load_published(published_path(reference_dir, "small")).search_size == 256
    with pytest.raises(CheckpointError, match="holds AsymTrack-base, not small"):
        load_model(path, variant="small")


def test_save_deploy_requires_deploy_form(tmp_path):
    with pytest.raises(ValueError, match="reparameterize"):
        save_deploy(build_model("tiny", deploy=False), tmp_path / "x.pt")


def _net(reference_dir: Path, variant: str) -> dict:
    return dict(torch.load(published_path(reference_dir, variant), map_location="cpu")["net"])


def test_wrong_variant_is_rejected(reference_dir):
    with pytest.raises(CheckpointError, match="not AsymTrack-small.*tiny"):
        load_published(published_path(reference_dir, "tiny"), variant="small")
    with pytest.raises(CheckpointError, match="not AsymTrack-tiny"):
        load_published(published_path(reference_dir, "base"), variant="T")


def test_small_or_base_needs_a_name_or_variant(reference_dir, tmp_path):
    path = tmp_path / "model.pth.tar"
    torch.save({"net": _net(reference_dir, "small")}, path)
    with pytest.raises(CheckpointError, match="pass the variant"):
        load_published(path)
    assert load_published(path, variant="B").variant == "base"


def test_truncated_file_is_rejected(reference_dir, tmp_path):
    path = tmp_path / "cut.pth.tar"
    path.write_bytes(published_path(reference_dir, "tiny").read_bytes()[:50000])
    with pytest.raises(CheckpointError, match="cannot read .* is the file complete"):
        load_published(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "absent.pt")


def test_missing_and_misshaped_keys_are_rejected(reference_dir, tmp_path):
    net = _net(reference_dir, "tiny")
    del net["backbone.layers.1.blocks.2.pre_kernels_x.weight"]
    path = tmp_path / "tiny_missing.pth.tar"
    torch.save({"net": net}, path)
    with pytest.raises(CheckpointError, match="missing 1: stages.1.etm.pre_kernels_x.weight"):
        load_published(path)
    net = _net(reference_dir, "tiny")
    net["bottleneck.weight"] = torch.zeros(256, 128)
    torch.save({"net": net}, path)
    with pytest.raises(CheckpointError, match=r"wrong shape 1: neck.weight: \(256, 128\) != \(256, 256\)"):
        load_published(path)
    net = _net(reference_dir, "tiny")
    net["backbone.extra.weight"] = torch.zeros(1)
    torch.save({"net": net}, path)
    with pytest.raises(CheckpointError, match="unknown keys.*backbone.extra.weight"):
        load_published(path)
    torch.save({"model": {}}, path)
    with pytest.raises(CheckpointError, match="no 'net' state dict"):
        load_published(path)


def test_bad_deploy_files_are_rejected(published, tmp_path):
    model, _ = published["tiny"]
    path = tmp_path / "bad.pt"
    torch.save({"format": "something-else"}, path)
    with pytest.raises(CheckpointError, match="not an asymtrack_ros deploy checkpoint"):
        load_deploy(path)
    state = dict(model.state_dict())
    del state["neck.bias"]
    torch.save({"format": "asymtrack_ros.deploy", "format_version": 1, "info": model.info.to_dict(),
                "state_dict": state}, path)
    with pytest.raises(CheckpointError, match="missing 1: neck.bias"):
        load_deploy(path)


# --- export-friendliness ------------------------------------------------------------------------

class _SearchGraph(torch.nn.Module):
    def __init__(self, model: AsymTrack) -> None:
        super().__init__()
        self.model = model

    def forward(self, x, *state):
        out = self.model.track(x, dict(zip(self.model.state_names, state)))
        return out["boxes"], out["prob_tl"], out["prob_br"]


@pytest.mark.filterwarnings("ignore")
def test_search_branch_exports_to_static_onnx(published, tmp_path):
    onnx = pytest.importorskip("onnx")
    model, _ = published["tiny"]
    z, x = dummy_inputs(model)
    with torch.no_grad():
        state = model.init_template(z)
    path = tmp_path / "search.onnx"
    torch.onnx.export(_SearchGraph(model), (x,) + state.tensors(), str(path), opset_version=16,
                      dynamo=False, input_names=["search"] + state.names,
                      output_names=["boxes", "prob_tl", "prob_br"])
    graph = onnx.load(str(path)).graph
    ops = {n.op_type for n in graph.node}
    assert not ops & {"Loop", "If", "Scan", "ConvTranspose", "Einsum"}
    initializers = {i.name for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert convs and all(n.input[1] in initializers for n in convs)  # no dynamic-weight convolution
    assert [i.name for i in graph.input] == ["search"] + state.names


# --- command-line tools -------------------------------------------------------------------------

def test_info_cli(reference_dir, capsys):
    from asymtrack_ros.tools import info

    assert info.main([str(published_path(reference_dir, "tiny"))]) == 0
    out = capsys.readouterr().out
    assert "variant:        tiny" in out and "3.05 M" in out and "search size:    256" in out
    assert "template:     0.094" in out and "search:       0.617" in out
    assert info.main(["--variant", "S"]) == 0
    assert "3.36 M" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        info.main([str(reference_dir / "README.md")])
    assert exc.value.code == 2
    assert "cannot read" in capsys.readouterr().err


def test_convert_cli(reference_dir, tmp_path, capsys):
    from asymtrack_ros.tools import convert

    out_path = tmp_path / "small.pt"
    assert convert.main([str(published_path(reference_dir, "small")), "-o", str(out_path)]) == 0
    out = capsys.readouterr().out
    assert "skipped 12 keys" in out and "post_kernels" in out and "wrote" in out
    assert load_deploy(out_path).variant == "small"
    with pytest.raises(SystemExit) as exc:
        convert.main([str(published_path(reference_dir, "tiny")), "-o", str(out_path), "--variant", "base"])
    assert exc.value.code == 2
    assert "not AsymTrack-base" in capsys.readouterr().err
    assert convert.default_output("a/b/AsymTrack-T.pth.tar") == Path("a/b/AsymTrack-T.pt")
