"""scripts/train_gpu.sh, run for real on the CPU with tiny weights: the short-lease mode that
keeps the starting autoencoder and post-filter and trains the decoders named in KINDS only."""
import os
import subprocess
from pathlib import Path

from PIL import Image

from engine.data.pack import pack_photos
from engine.decoders.score_decoder import ScoreDecoder
from engine.testing import write_tiny_weights
from tests.support import photo_like

REPO = Path(__file__).resolve().parents[2]


def test_flow_only_pass_keeps_the_autoencoder_and_post_filter(tmp_path):
    weights = write_tiny_weights(tmp_path / "weights", post_filter=True)
    photos = tmp_path / "photos" / "train"
    photos.mkdir(parents=True)
    for i in range(12):
        Image.fromarray(photo_like(160, 200, seed=i)).save(photos / f"p{i:02d}.png")
    pack_photos(tmp_path / "photos", tmp_path / "pack", log=lambda _: None)
    runs = tmp_path / "runs"
    env = dict(os.environ, KINDS="flow", BATCH="2", CROP="64", WEIGHTS=str(weights), GRACE="120")
    result = subprocess.run(["bash", "scripts/train_gpu.sh", str(tmp_path / "pack"), str(runs), "0", "3", "0"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"the decoders train on {weights}/autoencoder.safetensors" in result.stdout
    assert f"the decoders refine the output of {weights}/postfilter.safetensors" in result.stdout
    assert sorted(p.name for p in runs.iterdir() if p.is_dir()) == ["flow"]  # no autoencoder, post-filter or diffusion run
    decoder = ScoreDecoder.load(runs / "flow" / "flow.safetensors")
    assert decoder.kind == "flow" and decoder.facts.on_post_filtered and decoder.facts.train_steps >= 1
