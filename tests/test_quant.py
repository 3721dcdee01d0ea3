"""Formats against values worked out by hand."""

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
