"""Formats against values worked out by hand."""

import hashlib

import numpy as np
import pytest

from sparkbooks import quant
from sparkbooks.exceptions import InputError


def e2m1(values):
    return quant.round_to_float(np.array(values), mantissa_bits=1, min_exponent=0, max_value=6.0).tolist()


def e4m3(values):
    return quant.round_to_float(np.array(values), mantissa_bits=3, min_exponent=-6, max_value=448.0).tolist()


def test_e2m1_holds_exactly_its_eight_magnitudes():
    grid = list(quant.E2M1_VALUES)
    assert e2m1(grid) == grid and e2m1([-v for v in grid]) == [-v for v in grid]


@pytest.mark.parametrize(("x", "expected"), [
    (0.25, 0.0), (0.75, 1.0), (1.25, 1.0), (1.75, 2.0), (2.5, 2.0), (3.5, 4.0), (5.0, 4.0),  # ties to even
    (0.26, 0.5), (5.1, 6.0), (6.0, 6.0), (7.0, 6.0), (1e9, 6.0), (-7.0, -6.0),  # nearest, saturation
])
def test_e2m1_rounding(x, expected):
    assert e2m1([x]) == [expected]


@pytest.mark.parametrize(("x", "expected"), [
    (448.0, 448.0), (460.0, 448.0), (1e6, 448.0),  # largest finite E4M3, saturating
    (240.0, 240.0), (232.0, 224.0), (248.0, 256.0),  # 16-wide steps in [128, 256): ties to even
    (2.0 ** -6, 2.0 ** -6), (2.0 ** -9, 2.0 ** -9), (2.0 ** -10, 0.0), (3 * 2.0 ** -10, 2.0 ** -8),  # subnormals
    (0.3, 0.3125),
])
def test_e4m3_rounding(x, expected):
    assert e4m3([x]) == [pytest.approx(expected)]


def test_nvfp4_block_by_hand():
    # amax 6.3 → tensor scale 6.3/(6·448); block scale 6.3/6 = 1.05 → ×448/… lands exactly on E4M3 448
    block = np.array([0.02, -0.11, 0.37, 0.5, -0.73, 1.0, 1.26, -1.9, 2.2, 2.9, -3.1, 3.6, 4.4, -5.2, 0.004, 6.3], np.float32)
    expected = 1.05 * np.array([0, -0, 0.5, 0.5, -0.5, 1, 1, -2, 2, 3, -3, 3, 4, -4, 0, 6])
    np.testing.assert_allclose(quant.nvfp4(block), expected, rtol=1e-6)


def test_nvfp4_block_scales_are_rounded_to_e4m3():
    # second block's scale 0.3/6·(6·448/6) = 22.4 → E4M3 rounds to 22 (steps of 2 in [16, 32))
    x = np.concatenate([np.full(16, 6.0), np.full(16, 0.3)]).astype(np.float32)
    out = quant.nvfp4(x)
    assert out[:16].tolist() == [6.0] * 16
    scale = 22 / 448  # E4M3 value × tensor scale (6/(6·448)·… = 1/448)
    assert out[16] == pytest.approx(quant.round_to_float(np.array([0.3 / scale]), mantissa_bits=1, min_exponent=0, max_value=6)[0] * scale)


def test_mxfp4_uses_power_of_two_scales_and_saturates():
    x = np.zeros(32, np.float32)
    x[:3] = [7.0, 1.0, 0.3]  # amax 7 → scale 2^(2−2) = 1
    assert quant.mxfp4(x)[:3].tolist() == [6.0, 1.0, 0.5]
    y = np.zeros(32, np.float32)
    y[:2] = [0.75, 0.1]  # amax 0.75 → scale 2^(−1−2) = 1/8 → 0.75/0.125 = 6, 0.1/0.125 = 0.8 → 1.0
    assert quant.mxfp4(y)[:2].tolist() == [0.75, 0.125]


def test_fp8_and_int4_by_hand():
    assert quant.fp8_e4m3(np.array([448.0, 1.0, 0.3])).tolist() == [448.0, 1.0, 0.3125]
    assert quant.int4(np.array([7.0, 3.4, -7.0, 0.4, -3.6])).tolist() == [7.0, 3.0, -7.0, 0.0, -4.0]
    assert quant.int4(np.array([-8.0, 1.0]))[0] == pytest.approx(-8.0, rel=1e-3)  # scale 8/7 stored in FP16


@pytest.mark.parametrize("fmt", list(quant.FORMATS))
def test_zero_blocks_stay_zero_and_shapes_survive_padding(fmt):
    x = np.zeros((3, 40), np.float32)
    x[1, 5] = 2.5
    out = quant.FORMATS[fmt].quantise(x)
    assert out.shape == x.shape and out.dtype == np.float32
    assert not out[0].any() and not out[2].any() and out[1, 5] != 0
    assert np.isfinite(out).all()


@pytest.mark.parametrize("fmt", list(quant.FORMATS))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_are_refused(fmt, bad):
    with pytest.raises(InputError, match="NaN or infinite"):
        quant.FORMATS[fmt].quantise(np.array([1.0, bad], np.float32))


def test_bits_per_weight_include_scales():
    assert {k: f.bits_per_weight for k, f in quant.FORMATS.items()} == {"fp8": 8.0, "nvfp4": 4.5, "mxfp4": 4.25, "int4": 4.125}


def test_error_ordering_on_gaussian_weights():
    w = np.random.default_rng(0).normal(size=(256, 512)).astype(np.float32)
    err = {k: quant.relative_error(w, f.quantise(w)) for k, f in quant.FORMATS.items()}
    assert err["fp8"] < err["nvfp4"] < err["mxfp4"]
    assert 0.05 < err["nvfp4"] < 0.15  # 4-bit: roughly a tenth of the weight's norm


def test_e4m3_matches_torch_float8_cast():
    """An independent reference: torch's float8_e4m3fn conversion (round to nearest even) on in-range values."""
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal(50_000).astype(np.float32) * np.float32(30)
    x = np.concatenate([x, np.float32([0.0, 2**-9, 2**-7, 3 * 2**-10, 447.9, -448.0, 0.0029296875])])
    ours = quant.round_to_float(x, mantissa_bits=3, min_exponent=-6, max_value=448.0)
    theirs = torch.from_numpy(x).to(torch.float8_e4m3fn).float().numpy()
    np.testing.assert_array_equal(ours, theirs)


def test_mse_scale_search_is_never_worse_and_stays_nvfp4():
    w = np.random.default_rng(1).standard_t(4, size=(64, 256)).astype(np.float32)
    plain, searched = quant.nvfp4(w), quant.nvfp4_mse(w)
    block_err = lambda q: ((q - w) ** 2).reshape(64, -1, 16).sum(-1)  # noqa: E731
    assert (block_err(searched) <= block_err(plain) + 1e-12).all()
    assert quant.relative_error(w, searched) < 0.97 * quant.relative_error(w, plain)
    # every value is an E2M1 magnitude times its block's scale
    blocks = searched.reshape(64, -1, 16)
    scale = np.abs(blocks).max(-1, keepdims=True) / 6
    ratios = np.where(scale > 0, np.abs(blocks) / np.where(scale > 0, scale, 1), 0)
    assert np.isin(np.round(ratios * 2) / 2, [0, 0.5, 1, 1.5, 2, 3, 4, 6]).all()


# --- One NVFP4 implementation: today's outputs, bit for bit --------------------------------------------------------
# The digests below were taken from the two implementations at commit 98670bb, before they became one: NumPy's
# quant.nvfp4 / nvfp4_mse (exact bits) and torch's training.pretrain.fp4.nvfp4 (bits with −0.0 read as +0.0: that
# copy left −0.0 where a block's E4M3 scale underflows to zero, NumPy's +0.0 — the one bit the two disagreed on).


def nvfp4_inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(40)
    out = {}
    for scale in (1e-6, 1e-3, 1.0, 300.0, 1e4):
        x = (rng.standard_normal((48, 80)) * scale).astype(np.float32)
        x[5, :16] = 0  # a block of zeros
        x[7, 3] = 40 * scale  # an outlier that saturates its block's neighbours
        x[9, 16:32] *= 1e-7  # a block whose E4M3 scale underflows to zero
        x[11, :16] = -np.abs(x[11, :16]) * 1e-8  # the same, all negative
        out[f"scale {scale:g}"] = x
    ties = np.float32([0.0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -0.25, -0.75, -1.25, -1.75, -2.5, -3.5, -5.0, 6.0])
    out["ties"] = np.tile(ties, (4, 3))  # block scale 1: every value halfway between two E2M1 values
    out["ties 0.01"] = np.tile(ties * np.float32(0.01), (3, 2))
    out["zeros"] = np.zeros((4, 32), np.float32)
    out["odd shape"] = rng.standard_normal((5, 21)).astype(np.float32)  # padded to whole blocks, then cut back
    out["heavy tails"] = (rng.standard_t(2, size=(33, 70)) * 0.02).astype(np.float32)
    return out


def bits(a) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(a), dtype=np.float32).tobytes()).hexdigest()[:16]


def bits_any_zero(a) -> str:
    a = np.asarray(a, dtype=np.float32)
    return bits(np.where(a == 0, np.float32(0), a))


#: name → (nvfp4, nvfp4_mse)
NUMPY_DIGESTS = {
    'scale 1e-06': ('fa742a77d85d67a0', '3ba471d833f9e4a6'),
    'scale 0.001': ('7b573b6dba2a6db8', 'bbe0caf7373f90e4'),
    'scale 1': ('3fd7571b82b8984c', 'ab0ec93b62a1e896'),
    'scale 300': ('22a63bf11809d655', '07b67981636589cb'),
    'scale 10000': ('0af0c1de757353a2', '44f7158d432d5439'),
    'ties': ('785d2d1166d215a8', 'a1138469aaa40bbf'),
    'ties 0.01': ('495fd6e54682cad7', '2fd8361358f53442'),
    'zeros': ('076a27c79e5ace2a', '076a27c79e5ace2a'),
    'odd shape': ('0e8e9ab59ec246ee', '866de7da0a7d8849'),
    'heavy tails': ('02ca122cc0e2c212', '2ef1453df23ccde4'),
}
#: name → (to nearest 1×16, to nearest 16×16, stochastic 1×16, stochastic 16×16 — one generator seeded 3, in that order)
TORCH_DIGESTS = {
    'scale 1e-06': ('0fa98eed110440b1', 'f64d6a96a683348c', '7f2cc06bfa4817f3', '0327643b24be8933'),
    'scale 0.001': ('686ce99897c8f4cf', '637ca07034acb963', '77e261c87629f43c', '04977d8749189c4d'),
    'scale 1': ('c2db83eb93b2f679', 'a9e0f4bc648d1898', '5365687394214936', '395f57e6d0713e11'),
    'scale 300': ('b83c1b3265b88160', '24dbb73bf6d414a8', '2ad7d426b2909254', 'c656e185aa2e7343'),
    'scale 10000': ('3c1fa611b44460d5', 'c8842413fbbf7be2', '48c4647d2d18c7b6', 'a39b96da6971c3d3'),
    'ties': ('5f768cbfbfdb1081', '5f768cbfbfdb1081', '71faf9ac895b8324', 'f8c98e8b8d8cda93'),
    'ties 0.01': ('e7e7d0f5aa2d0aee', 'e7e7d0f5aa2d0aee', '4cfea6ff28749ac3', '982a4a082cbd8d9b'),
    'zeros': ('076a27c79e5ace2a', '076a27c79e5ace2a', '076a27c79e5ace2a', '076a27c79e5ace2a'),
    'odd shape': ('76f6f7cbb5c93215', '51d755e682604114', '46e6a55e2c324f45', '210a9b218debc6f3'),
    'heavy tails': ('d27722f9be765172', '4d47b175966fd173', '36d0da35c23c2121', 'a2b7937b8cce3325'),
}


@pytest.mark.parametrize("name", sorted(NUMPY_DIGESTS))
def test_nvfp4_fit_quantisers_give_todays_bits(name):
    x = nvfp4_inputs()[name]
    assert (bits(quant.nvfp4(x)), bits(quant.nvfp4_mse(x))) == NUMPY_DIGESTS[name]


def test_nvfp4_keeps_todays_bits_on_other_shapes():
    x = nvfp4_inputs()["scale 1"]
    assert bits(quant.nvfp4(x.reshape(6, 8, 80))) == NUMPY_DIGESTS["scale 1"][0]  # blocks along the last axis
    assert bits(quant.nvfp4(x[0, :37])) == "337bfe53b8ce08b9"
    assert bits(quant.nvfp4_mse(x[0, :37], grid=(1.0, 0.95, 0.85))) == "674eac49249a0385"
    assert bits(quant.nvfp4(np.float32(2.5))) == "072e3304b03423a4"


@pytest.mark.parametrize("name", sorted(TORCH_DIGESTS))
def test_pretrain_quantiser_gives_todays_values(name):
    torch = pytest.importorskip("torch")
    from sparkbooks.training.pretrain import fp4

    t = torch.from_numpy(nvfp4_inputs()[name])
    g = torch.Generator().manual_seed(3)
    got = (fp4.nvfp4(t), fp4.nvfp4(t, tile=16), fp4.nvfp4(t, stochastic=True, generator=g),
           fp4.nvfp4(t, tile=16, stochastic=True, generator=g))
    assert tuple(bits_any_zero(q.numpy()) for q in got) == TORCH_DIGESTS[name]


@pytest.mark.parametrize("name", sorted(NUMPY_DIGESTS))
def test_pretrain_and_nvfp4_fit_quantise_to_the_same_bits(name):
    """One implementation: the training GEMMs' quantiser and nvfp4-fit's give the same bits, signed zeros included."""
    torch = pytest.importorskip("torch")
    from sparkbooks.training.pretrain import fp4

    x = nvfp4_inputs()[name]
    assert bits(fp4.nvfp4(torch.from_numpy(x)).numpy()) == NUMPY_DIGESTS[name][0]


@pytest.mark.gpu
def test_nvfp4_gives_the_same_bits_on_a_gpu():
    """Device-agnostic: no division by a Python number, which CUDA turns into a multiplication by its reciprocal."""
    torch = pytest.importorskip("torch")
    from sparkbooks.quant.nvfp4_torch import nvfp4

    for name, x in nvfp4_inputs().items():
        cpu, gpu = torch.from_numpy(x), torch.from_numpy(x).cuda()
        for kwargs in ({}, {"tile": 16}, {"grid": (1.0, 0.9, 0.8, 0.7)}):
            assert bits(nvfp4(gpu, **kwargs).cpu().numpy()) == bits(nvfp4(cpu, **kwargs).numpy()), (name, kwargs)
