import math

import pytest
import torch

from engine.decoders.schedules import (
    LOGSNR_MAX,
    LOGSNR_MIN,
    ShiftRange,
    alpha_sigma,
    logsnr,
    sample_times,
)
from engine.errors import SettingsError


def test_logsnr_decreases_from_clean_to_noise_and_stays_finite():
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    lam = logsnr(t)
    assert torch.isfinite(lam).all()
    assert (lam[1:] < lam[:-1]).all()
    assert lam[0].item() == pytest.approx(LOGSNR_MAX, abs=1e-9)
    assert lam[-1].item() == pytest.approx(LOGSNR_MIN, abs=1e-9)


def test_logsnr_follows_the_cosine_schedule_inside_the_clip():
    # Squeezing t into the clipped range barely moves the middle of the schedule.
    t = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)
    exact = -2 * torch.log(torch.tan(math.pi * t / 2))
    assert torch.allclose(logsnr(t), exact, atol=3e-3)


def test_positive_shift_means_less_noise():
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert torch.allclose(logsnr(t, 1.5) - logsnr(t), torch.full_like(t, 3.0))
    _, sigma_plain = alpha_sigma(logsnr(t))
    _, sigma_shifted = alpha_sigma(logsnr(t, 1.5))
    assert (sigma_shifted < sigma_plain).all()


def test_alpha_sigma_preserve_variance_even_at_extremes():
    lam = torch.tensor([-40.0, LOGSNR_MIN, -1.0, 0.0, 2.5, LOGSNR_MAX, 40.0], dtype=torch.float64)
    alpha, sigma = alpha_sigma(lam)
    assert torch.allclose(alpha ** 2 + sigma ** 2, torch.ones_like(lam))
    assert torch.allclose(torch.log(alpha ** 2 / sigma ** 2)[1:-1], lam[1:-1])


def test_shift_range_checks_and_names_the_range():
    shifts = ShiftRange(0.0, 3.0)
    shifts.check(0.0)
    shifts.check(3.0)
    with pytest.raises(SettingsError, match=r"schedule shift 3.5 is outside the trained range \[0, 3\]"):
        shifts.check(3.5)
    with pytest.raises(SettingsError, match="empty"):
        ShiftRange(2.0, 1.0)


def test_shift_range_samples_inside_the_range():
    s = ShiftRange(0.5, 2.0).sample(1000, torch.Generator().manual_seed(0))
    assert s.min() >= 0.5 and s.max() <= 2.0 and s.std() > 0.3


def test_sample_times_are_stratified_uniform():
    t = sample_times(8, torch.Generator().manual_seed(3))
    assert ((t >= 0) & (t < 1)).all()
    gaps = torch.diff(torch.sort(t).values)
    assert torch.allclose(gaps, torch.full_like(gaps, 1 / 8), atol=1e-6)
