"""scripts/pick_autoencoder.py: the GPU pass keeps a fine-tuned autoencoder only if it beats
the weights it started from."""
import importlib.util
from pathlib import Path

import pytest

from engine.codec.autoencoder import HyperpriorAutoencoder
from engine.errors import HfdError
from engine.testing import TINY_AUTOENCODER
from engine.weights import save_weights

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "pick_autoencoder.py"
spec = importlib.util.spec_from_file_location("pick_autoencoder", SCRIPT)
pick = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pick)


def _weights(path: Path, bpp_scale: float, validation: bool = True) -> Path:
    metrics = {}
    if validation:
        for rate, bpp, psnr in (("0.25", 0.1, 24.0), ("0.5", 0.4, 28.0), ("0.75", 1.0, 31.0)):
            metrics[f"bpp@{rate}"], metrics[f"psnr@{rate}"] = bpp * bpp_scale, psnr
    save_weights(path, HyperpriorAutoencoder(TINY_AUTOENCODER), "autoencoder", TINY_AUTOENCODER.to_dict(),
                 {"validation": metrics})
    return path


def test_picks_the_candidate_with_the_lowest_bd_rate(tmp_path, capsys):
    init = _weights(tmp_path / "init.safetensors", 1.0)
    better = _weights(tmp_path / "better.safetensors", 0.9)
    best = _weights(tmp_path / "best.safetensors", 0.8)
    assert pick.main([str(init), str(better), str(best), str(tmp_path / "missing.safetensors")]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(best)
    assert "BD-rate -20.00 %" in err and "missing" in err


def test_keeps_the_starting_weights_when_no_run_beat_them(tmp_path, capsys):
    init = _weights(tmp_path / "init.safetensors", 1.0)
    worse = _weights(tmp_path / "worse.safetensors", 1.05)
    assert pick.main([str(init), str(worse)]) == 0
    assert capsys.readouterr().out.strip() == str(init)


def test_a_candidate_without_validation_is_skipped_and_a_bare_start_is_an_error(tmp_path, capsys):
    init = _weights(tmp_path / "init.safetensors", 1.0)
    bare = _weights(tmp_path / "bare.safetensors", 0.5, validation=False)
    assert pick.main([str(init), str(bare)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(init) and "skipped" in err
    with pytest.raises(HfdError, match="carries no validation at rates 0.25, 0.5, 0.75"):
        pick.main([str(bare), str(init)])
