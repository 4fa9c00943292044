"""scripts/train_gpu.sh, run for real on the CPU with tiny weights: the realism phase of the named
decoders, continued from the weights given, each in its own run folder."""
import os
import subprocess
from pathlib import Path

from PIL import Image

from engine.data.pack import pack_photos
from engine.decoders.score_decoder import ScoreDecoder
from engine.testing import write_tiny_weights
from tests.support import photo_like

REPO = Path(__file__).resolve().parents[2]


def test_a_flow_only_pass_continues_the_realism_phase_from_the_weights_given(tmp_path):
    weights = write_tiny_weights(tmp_path / "weights", post_filter=True)
    photos = tmp_path / "photos" / "train"
    photos.mkdir(parents=True)
    for i in (*range(11), 34):  # p34 is a validation photo (split by file name)
        Image.fromarray(photo_like(320, 400, seed=i)).save(photos / f"p{i:02d}.png")
    pack_photos(tmp_path / "photos", tmp_path / "pack", log=lambda _: None)
    runs = tmp_path / "runs"
    env = dict(os.environ, KINDS="flow", WEIGHTS=str(weights), GRACE="240")
    result = subprocess.run(["bash", "scripts/train_gpu.sh", str(tmp_path / "pack"), str(runs), "1"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in runs.iterdir() if p.is_dir()) == ["flow"]  # no diffusion run
    assert "flow: {" in result.stdout and "1step_top_octave" in result.stdout  # its held-out signal
    decoder = ScoreDecoder.load(runs / "flow" / "realism" / "flow.safetensors")
    assert decoder.kind == "flow" and decoder.facts.objective == "realism" and decoder.facts.train_steps >= 1
