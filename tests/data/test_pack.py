import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from engine.data import fetch as data_fetch
from engine.data.pack import (
    MARKER,
    is_pack,
    pack_photos,
    packed_size,
    training_downscale,
)
from engine.data.photos import PhotoSet, is_validation
from engine.errors import HfdError, SettingsError
from tests.support import photo_like

NAMES = [f"photo_{i:02d}.jpg" for i in range(20)] + ["drawing.png"]


@pytest.fixture
def fetched(tmp_path):
    src = tmp_path / "fetched"
    (src / "train").mkdir(parents=True)
    (src / "licenses").mkdir()
    (src / "licenses/pkg.copyright").write_text("free")
    for i, name in enumerate(NAMES):
        Image.fromarray(photo_like(120, 160 + i, seed=i)).save(src / "train" / name)
    return src


def test_packed_size_always_halves_at_least():
    assert packed_size(3000, 2000, 768) == (768, 512)
    assert packed_size(1000, 600, 768) == (500, 300)  # already under max-side: still 2×


def test_pack_downscales_splits_by_name_and_copies_licences(fetched, tmp_path):
    dst = tmp_path / "pack"
    report = pack_photos(fetched, dst, max_side=64, log=lambda _: None)
    val = sorted(p.name for p in (dst / "val").iterdir())
    train = sorted(p.name for p in (dst / "train").iterdir())
    expected_val = sorted(n.rsplit(".", 1)[0] + ".jpg" for n in NAMES if is_validation(fetched / "train" / n))
    assert val == expected_val and len(train) + len(val) == len(NAMES)
    assert (report.train, report.val) == (len(train), len(val))
    assert not set(train) & set(val)
    for path in (dst / "train").iterdir():
        with Image.open(path) as image:
            assert image.format == "JPEG" and max(image.size) <= 64 and image.mode == "RGB"
    assert (dst / "licenses/pkg.copyright").read_text() == "free"
    assert report.nbytes == sum(p.stat().st_size for p in dst.rglob("*.jpg"))


def test_pack_packs_the_held_out_test_photos_apart(fetched, tmp_path):
    (fetched / "test").mkdir()
    for i in range(3):
        Image.fromarray(photo_like(150, 200, seed=50 + i)).save(fetched / "test" / f"held_{i}.jpg")
    dst = tmp_path / "pack"
    messages = []
    report = pack_photos(fetched, dst, max_side=64, log=messages.append)
    assert sorted(p.name for p in (dst / "test").iterdir()) == ["held_0.jpg", "held_1.jpg", "held_2.jpg"]
    assert report.test == 3 and report.train + report.val == len(NAMES)
    assert not any(p.name.startswith("held") for split in ("train", "val") for p in (dst / split).iterdir())
    with Image.open(dst / "test/held_0.jpg") as image:
        assert image.size == (64, 48)  # downscaled like the rest
    assert "+ 3 test photos" in messages[0]


def test_pack_without_test_photos_makes_no_test_folder(fetched, tmp_path):
    report = pack_photos(fetched, tmp_path / "pack", max_side=64, log=lambda _: None)
    assert report.test == 0 and not (tmp_path / "pack/test").exists()


def test_pack_is_deterministic(fetched, tmp_path):
    pack_photos(fetched, tmp_path / "a", max_side=64, log=lambda _: None)
    pack_photos(fetched, tmp_path / "b", max_side=64, log=lambda _: None)
    for path in (tmp_path / "a").rglob("*.jpg"):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()


def test_pack_keeps_the_picture(fetched, tmp_path):
    pack_photos(fetched, tmp_path / "p", max_side=80, log=lambda _: None)
    (packed_path,) = (tmp_path / "p").rglob("photo_00.jpg")
    packed = np.asarray(Image.open(packed_path), dtype=float)
    original = np.asarray(Image.open(fetched / "train/photo_00.jpg").resize(packed.shape[1::-1], Image.BOX), float)
    assert np.abs(packed - original).mean() < 6


def test_pack_errors(fetched, tmp_path):
    with pytest.raises(SettingsError, match="--max-side must be at least 64"):
        pack_photos(fetched, tmp_path / "x", max_side=10)
    with pytest.raises(HfdError, match="no images found"):
        pack_photos(tmp_path / "empty", tmp_path / "x")
    Image.fromarray(photo_like(40, 40)).save(fetched / "train/photo_00.webp")
    with pytest.raises(HfdError, match="collide.*photo_00"):
        pack_photos(fetched, tmp_path / "x")


def test_cli_pack_and_fetch(fetched, tmp_path, monkeypatch, capsys):
    assert main(["data", "pack", str(fetched), str(tmp_path / "cli"), "--max-side", "64"]) == 0
    assert "packed" in capsys.readouterr().out
    monkeypatch.setattr(data_fetch.shutil, "which", lambda tool: None)
    assert main(["data", "fetch", str(tmp_path / "photos")]) == 1
    assert "needs apt-get and dpkg-deb" in capsys.readouterr().err


def test_a_pack_is_marked_so_training_uses_its_photos_at_their_packed_size(fetched, tmp_path):
    dst = tmp_path / "pack"
    pack_photos(fetched, dst, max_side=64, quality=90, log=lambda _: None)
    assert json.loads((dst / MARKER).read_text()) == {"min_downscale": 2.0, "max_side": 64, "quality": 90,
                                                      "val_fraction": 0.1}
    assert is_pack(dst) and training_downscale(dst) == 1.0
    assert not is_pack(fetched) and training_downscale(fetched) == 2.0


@pytest.mark.parametrize("packed, expected", [(True, 1.0), (False, 2.0)])
def test_train_downscales_fetched_photos_but_not_a_pack_again(fetched, tmp_path, monkeypatch, capsys,
                                                              packed, expected):
    factors = []

    def load(cls, paths, downscale=2.0, min_side=256):
        factors.append(downscale)
        raise HfdError("stopped before training")

    monkeypatch.setattr(PhotoSet, "load", classmethod(load))
    data = fetched
    if packed:
        data = tmp_path / "pack"
        pack_photos(fetched, data, max_side=64, log=lambda _: None)
    recipe = Path(__file__).resolve().parents[2] / "assets" / "recipes" / "flow.toml"
    assert main(["train", str(recipe), "--data", str(data), "--out", str(tmp_path / "run")]) != 0
    assert factors == [expected]
    out = capsys.readouterr().out
    assert f"downscaled {expected:g}× for training" in out
    assert ("a pack from `hfd data pack`" in out) == packed
