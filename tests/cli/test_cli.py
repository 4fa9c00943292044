"""End-to-end tests of the `hfd` console script against tiny random-init weights."""
import dataclasses
import json
import os
import re
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine import api
from engine.cli import codec as codec_commands
from engine.cli import main
from engine.codec.bitstream import pack, unpack
from engine.progress import StepInfo
from engine.testing import write_tiny_weights
from tests.support import photo_like

H, W = 40, 56


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_tiny_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("images") / "photo.png"
    Image.fromarray(photo_like(H, W)).save(path)
    return path


@pytest.fixture(scope="module")
def encoded(tmp_path_factory, weights, photo):
    path = tmp_path_factory.mktemp("hfd") / "photo.hfd"
    assert main(["compress", str(photo), str(path), "--rate", "0.5", "--device", "cpu", "--weights", str(weights)]) == 0
    return path


def hfd(capsys, *args, weights=None) -> tuple[int, str, str]:
    argv = [str(a) for a in args]
    if weights is not None:
        argv += ["--device", "cpu", "--weights", str(weights)]
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_failed(result, message: str) -> None:
    code, out, err = result
    assert code == 1, err
    assert err.startswith("hfd: error: ") and err.count("\n") == 1, err
    assert message in err, err


def test_help_lists_commands_and_points_at_defaults(capsys):
    code, out, _ = hfd(capsys, "--help")
    assert code == 0 and all(name in out for name in ("compress", "decompress", "info", "model"))
    code, out, _ = hfd(capsys, "decompress", "--help")
    assert code == 0 and "hfd model" in out and "--realism" in out


@pytest.mark.parametrize("argv", [[], ["compress", "a.png", "b.hfd"], ["compress", "a.png", "b.hfd", "--bpp", "1",
                                  "--rate", "0.5"], ["decompress", "a.hfd", "b.png", "--decoder", "gan"],
                                  ["decompress", "a.hfd", "b.png", "--steps", "many"], ["frobnicate"],
                                  ["compress", "a.png", "b.hfd", "--rate", "0.5", "--optimise", "-3"],
                                  ["compress", "a.png", "b.hfd", "--rate", "0.5", "--optimise", "lots"]])
def test_bad_usage_exits_2(capsys, argv):
    code, _, err = hfd(capsys, *argv)
    assert code == 2 and "usage: hfd" in err


def test_optimised_compress_reports_progress_and_decodes(capsys, tmp_path, weights, photo):
    plain, optimised = tmp_path / "plain.hfd", tmp_path / "optimised.hfd"
    assert hfd(capsys, "compress", photo, plain, "--bpp", "3", weights=weights)[0] == 0
    code, printed, err = hfd(capsys, "compress", photo, optimised, "--bpp", "3", "--optimise", "10", weights=weights)
    assert code == 0 and "bpp, target 3" in printed
    assert "optimising latents: step 10/30" in err and err.rstrip().endswith("step 30/30")
    assert optimised.read_bytes() != plain.read_bytes() and optimised.stat().st_size * 8 / (H * W) <= 3
    assert hfd(capsys, "decompress", optimised, tmp_path / "o.png", "--decoder", "ae", weights=weights)[0] == 0


def test_compress_info_decompress_round_trip(capsys, tmp_path, weights, photo):
    out = tmp_path / "p.hfd"
    code, printed, _ = hfd(capsys, "compress", photo, out, "--rate", "0.5", weights=weights)
    assert code == 0
    size = out.stat().st_size
    assert printed.startswith(f"{out}: {size} bytes, {size * 8 / (H * W):.4f} bpp")

    code, printed, _ = hfd(capsys, "info", out)
    assert code == 0
    assert f"{W}×{H}, rgb" in printed and f"{size} bytes" in printed and ".hfd v3" in printed
    assert "tiny-test-0 (weights " in printed and re.search(r"^rate +0\.5000$", printed, re.M)

    png = tmp_path / "p.png"
    code, printed, _ = hfd(capsys, "decompress", out, png, "--decoder", "ae", weights=weights)
    assert code == 0 and "autoencoder only" in printed
    decoded = Image.open(png)
    assert decoded.mode == "RGB" and decoded.size == (W, H)
    reference = api.Engine(weights, device="cpu").decode_ae(out.read_bytes())
    np.testing.assert_array_equal(np.asarray(decoded), reference)


def test_bpp_target_is_met_from_below(capsys, tmp_path, weights, photo, encoded):
    target = len(encoded.read_bytes()) * 8 / (H * W)
    out = tmp_path / "t.hfd"
    code, printed, _ = hfd(capsys, "compress", photo, out, "--bpp", f"{target:.6f}", weights=weights)
    assert code == 0 and "target" in printed
    assert out.stat().st_size * 8 / (H * W) <= target


def test_gray_image_decodes_to_gray_png(capsys, tmp_path, weights):
    gray = tmp_path / "g.png"
    Image.fromarray(photo_like(H, W)[:, :, 1], "L").save(gray)
    code, printed, _ = hfd(capsys, "compress", gray, tmp_path / "g.hfd", "--rate", "0.3", weights=weights)
    assert code == 0 and "gray" in printed
    assert "gray" in hfd(capsys, "info", tmp_path / "g.hfd")[1]
    assert hfd(capsys, "decompress", tmp_path / "g.hfd", tmp_path / "g_out.png", "--decoder", "ae",
               weights=weights)[0] == 0
    assert Image.open(tmp_path / "g_out.png").mode == "L"


@pytest.mark.parametrize("decoder", ["diffusion", "flow"])
def test_refined_decode_end_to_end(capsys, tmp_path, weights, encoded, decoder):
    out = tmp_path / "r.png"
    code, printed, err = hfd(capsys, "decompress", encoded, out, "--decoder", decoder, "--steps", "2",
                             weights=weights)
    assert code == 0, err
    assert [line.split("  ")[0] for line in err.splitlines() if line.startswith("step")] == ["step 1/2", "step 2/2"]
    assert Image.open(out).size == (W, H) and "--steps 2" in printed


def test_refined_decode_merges_defaults_and_reports_steps(capsys, tmp_path, weights, encoded, monkeypatch):
    seen = {}

    def decode(self, data, settings, on_step=None, cancel=None):
        seen["settings"] = settings
        x_ae = self.decode_ae(data)
        for i in (1, 2):
            on_step(StepInfo(i, 2, x_ae, 0.1 * i))
        return x_ae

    monkeypatch.setattr(api.Engine, "decode", decode)
    code, printed, err = hfd(capsys, "decompress", encoded, tmp_path / "r.png", "--decoder", "flow",
                             "--steps", "3", "--seed", "7", weights=weights)
    assert code == 0
    defaults = api.Engine(weights, device="cpu").info.defaults["flow"]
    # the default realism (None: by bitrate; these weights have no schedule, so 1) is resolved for the file
    assert defaults.realism is None
    assert seen["settings"] == dataclasses.replace(defaults, steps=3, seed=7, realism=1.0)
    assert seen["settings"].noise == defaults.noise  # unset options keep the weights' defaults
    assert err.splitlines() == ["step 1/2  0.1 s", "step 2/2  0.2 s"]
    assert "--steps 3" in printed and "--seed 7" in printed
    assert "--solver euler" in printed and "--shift 0.0" in printed  # what the flow reads
    assert (tmp_path / "r.png").exists()


@pytest.mark.parametrize("decoder, option, value", [("ae", "--steps", "4"), ("ae", "--shift", "1"),
                                                    ("diffusion", "--solver", "heun")])
def test_options_a_decoder_does_not_read_are_refused(capsys, tmp_path, weights, encoded, decoder, option, value):
    out = tmp_path / "x.png"
    assert_failed(hfd(capsys, "decompress", encoded, out, "--decoder", decoder, option, value, weights=weights),
                  f"{option} has no effect with --decoder {decoder}")
    assert not out.exists()


def test_missing_and_corrupt_images(capsys, tmp_path, weights, photo):
    out = tmp_path / "x.hfd"
    assert_failed(hfd(capsys, "compress", tmp_path / "nope.png", out, "--rate", "0.5", weights=weights),
                  "image not found")
    broken = tmp_path / "broken.png"
    broken.write_bytes(photo.read_bytes()[:300])
    assert_failed(hfd(capsys, "compress", broken, out, "--rate", "0.5", weights=weights), "truncated or corrupt")
    assert not out.exists()


def _damaged_files(valid: bytes) -> dict[str, tuple[bytes, str]]:
    flipped = bytearray(valid)
    flipped[len(valid) // 2] ^= 0x40
    future = bytearray(valid)
    future[4] = 4
    header, segments = unpack(valid)
    foreign = pack(dataclasses.replace(header, weights_hash="ffffffffffffffff"), segments)
    return {"truncated": (valid[:-9], "truncated .hfd file"),
            "corrupt": (bytes(flipped), "corrupt .hfd file"),
            "wrong magic": (b"GIF89a" + valid[6:], "not a .hfd file"),
            "future version": (bytes(future), "written by a newer hfd (format v4)"),
            "empty": (b"", "empty file"),
            "wrong model": (foreign, "file was written by model tiny-test-0 (weights ffffffffffffffff)")}


@pytest.mark.parametrize("case", ["truncated", "corrupt", "wrong magic", "future version", "empty", "wrong model"])
def test_bad_hfd_files_fail_cleanly_and_write_nothing(capsys, tmp_path, weights, encoded, case):
    data, message = _damaged_files(encoded.read_bytes())[case]
    bad = tmp_path / "bad.hfd"
    bad.write_bytes(data)
    out = tmp_path / "out.png"
    assert_failed(hfd(capsys, "decompress", bad, out, "--decoder", "ae", weights=weights), message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.hfd"]
    if case != "wrong model":  # info needs no weights, so it cannot know the model is wrong
        assert_failed(hfd(capsys, "info", bad), message)


def test_existing_output_survives_a_failed_decode(capsys, tmp_path, weights):
    (tmp_path / "bad.hfd").write_bytes(b"not hfd at all")
    out = tmp_path / "out.png"
    out.write_bytes(b"previous result")
    assert_failed(hfd(capsys, "decompress", tmp_path / "bad.hfd", out, weights=weights), "not a .hfd file")
    assert out.read_bytes() == b"previous result"


def test_unwritable_output_and_missing_inputs(capsys, tmp_path, weights, photo, encoded):
    assert_failed(hfd(capsys, "compress", photo, tmp_path / "no" / "x.hfd", "--rate", "0.5", weights=weights),
                  f"cannot write {tmp_path / 'no' / 'x.hfd'}: the folder {tmp_path / 'no'} does not exist")
    assert_failed(hfd(capsys, "info", tmp_path / "nope.hfd"), "cannot read")
    assert_failed(hfd(capsys, "compress", photo, tmp_path / "x.hfd", "--rate", "0.5", "--weights",
                      tmp_path / "empty"), "no autoencoder weights")
    assert_failed(hfd(capsys, "compress", photo, tmp_path / "x.hfd", "--rate", "1.5", weights=weights),
                  "--rate must be in [0, 1], got 1.5")
    assert_failed(hfd(capsys, "compress", photo, tmp_path / "x.hfd", "--bpp", "nan", weights=weights),
                  "--bpp must be a positive number, got nan")


@pytest.mark.parametrize("command", ["compress", "decompress"])
def test_the_output_is_never_the_input_and_the_input_survives(capsys, tmp_path, weights, photo, encoded, command):
    source = photo if command == "compress" else encoded
    original = source.read_bytes()
    options = ("--rate", "0.5") if command == "compress" else ("--decoder", "ae")
    same = tmp_path / "same"
    same.mkdir()
    link = same / f"other-name{source.suffix}"
    os.link(source, link)  # another name for the same file
    for output in (source, source.parent / "." / source.name, link):
        assert_failed(hfd(capsys, command, source, output, *options, weights=weights),
                      "is the input file: writing it would destroy the input")
        assert source.read_bytes() == original
    assert_failed(hfd(capsys, command, source, tmp_path, *options, weights=weights), "is a folder")


@pytest.mark.parametrize("option, value, message", [
    ("--steps", "0", "steps must be an integer in [1, 1000], got 0"),
    ("--steps", "100000", "steps must be an integer in"), ("--shift", "nan", "schedule shift nan is outside"),
    ("--shift", "99", "schedule shift 99 is outside"), ("--noise", "-1", "noise must be in [0, 1], got -1"),
    ("--seed", "-5", "seed must be a non-negative integer"), ("--realism", "2", "realism must be in [0, 1], got 2"),
])
def test_bad_decoder_settings_are_refused_before_the_autoencoder_decodes(capsys, tmp_path, weights, encoded,
                                                                       monkeypatch, option, value, message):
    from engine.api import Engine

    def decoded(*_args, **_kwargs):
        raise AssertionError("the file was decoded before the settings were checked")

    monkeypatch.setattr(Engine, "_synthesize", decoded)
    assert_failed(hfd(capsys, "decompress", encoded, tmp_path / "x.png", "--decoder", "flow", option, value,
                      weights=weights), message)
    assert not (tmp_path / "x.png").exists()


def test_model_command_describes_the_weights(capsys, weights):
    code, printed, _ = hfd(capsys, "model", weights=weights)
    assert code == 0 and "tiny-test-0 (weights " in printed
    assert re.search(r"^decoders +ae, diffusion, flow$", printed, re.M)
    assert re.search(r"^flow defaults +--steps \d+ .*--solver euler$", printed, re.M)
    assert re.search(r"^flow start noise +x_ae \+ σ·ε in \[-1, 1\], σ = 0\.25$", printed, re.M)
    assert re.search(r"^diffusion defaults +--steps \d+ --shift \S+ .*--realism \S+$", printed, re.M)
    assert re.search(r"^diffusion shift range +0 \.\. 3$", printed, re.M)
    assert re.search(r"^flow shift range +-3 \.\. 3$", printed, re.M)
    assert re.search(r"^flow refines +the autoencoder's unfiltered output \(g_s\)$", printed, re.M)


def test_default_realism_follows_the_files_rate(capsys, tmp_path, weights, encoded, monkeypatch):
    folder = tmp_path / "weights"
    shutil.copytree(weights, folder)
    (folder / "decode_defaults.json").write_text(json.dumps(
        {"flow": {"steps": 2, "noise": 0.0, "solver": "euler", "realism": [[0.2, 1.0], [0.8, 0.0]]}}))
    code, printed, _ = hfd(capsys, "model", weights=folder)
    assert code == 0 and re.search(r"^flow defaults +--steps 2 --shift 0.0 --noise 0.0 --seed 0 --solver euler$", printed, re.M)
    assert re.search(r"^flow realism +by the file's rate: 1 up to rate 0.2, 0 from rate 0.8 \(linear between\)$",
                     printed, re.M)
    assert re.search(r"^diffusion defaults +.*--realism 1.0$", printed, re.M)  # no schedule: one realism

    seen, hashed = [], []
    monkeypatch.setattr(api.Engine, "decode", lambda self, data, settings, on_step=None, cancel=None:
                        seen.append(settings) or self.decode_ae(data))
    real_hash = api.file_hash
    monkeypatch.setattr(api, "file_hash", lambda path: hashed.append(Path(path).name) or real_hash(path))
    # the file was coded at rate 0.5: halfway down the ramp
    code, printed, _ = hfd(capsys, "decompress", encoded, tmp_path / "a.png", "--decoder", "flow", weights=folder)
    assert code == 0 and seen[-1].realism == 0.5 and "--realism 0.5" in printed
    assert hashed == ["autoencoder.safetensors"]  # naming the settings hashes no decoder file
    code, printed, _ = hfd(capsys, "decompress", encoded, tmp_path / "b.png", "--decoder", "flow", "--realism", "0.3",
                           weights=folder)
    assert code == 0 and seen[-1].realism == 0.3 and "--realism 0.3" in printed


def test_keyboard_interrupt_exits_130(capsys, tmp_path, monkeypatch):
    def interrupted(_source):
        raise KeyboardInterrupt

    monkeypatch.setattr(codec_commands, "load_image", interrupted)
    code, _, err = hfd(capsys, "compress", "a.png", tmp_path / "a.hfd", "--rate", "0.5")
    assert code == 130 and err == "hfd: interrupted\n"


def test_decompress_with_a_post_filter_says_so_and_writes_the_filtered_decode(capsys, tmp_path, photo):
    weights = write_tiny_weights(tmp_path / "w", post_filter=True)
    out, png = tmp_path / "p.hfd", tmp_path / "p.png"
    assert hfd(capsys, "compress", photo, out, "--rate", "0.5", weights=weights)[0] == 0
    code, printed, _ = hfd(capsys, "decompress", out, png, "--decoder", "ae", weights=weights)
    assert code == 0 and "(autoencoder only, post-filtered)" in printed
    engine = api.Engine(weights, device="cpu")
    np.testing.assert_array_equal(np.asarray(Image.open(png)), engine.decode_ae(out.read_bytes()))
    assert not np.array_equal(np.asarray(Image.open(png)), engine.decode_ae(out.read_bytes(), post_filter=False))


def test_a_crafted_header_naming_a_huge_image_fails_before_any_work(capsys, tmp_path, weights, encoded):
    data = bytearray(encoded.read_bytes())
    header, _ = unpack(bytes(data))
    at = 4 + 2 + len(header.model_id) + 8 + 4  # width, height
    data[at:at + 8] = (65535).to_bytes(4, "little") * 2
    data[-4:] = zlib.crc32(data[:-4]).to_bytes(4, "little")
    crafted = tmp_path / "crafted.hfd"
    crafted.write_bytes(bytes(data))
    message = "invalid header: 65535×65535 is 4295 MP, over the 268 MP limit of .hfd files"
    assert_failed(hfd(capsys, "info", crafted), message)
    assert_failed(hfd(capsys, "decompress", crafted, tmp_path / "x.png", "--decoder", "ae", weights=weights), message)


def test_a_header_naming_a_larger_image_than_its_payload_fails_in_the_projects_words(capsys, tmp_path, weights,
                                                                                    encoded):
    """CRC-valid and within every limit, but the payload codes far fewer latents than 4000×3000 needs."""
    data = bytearray(encoded.read_bytes())
    header, _ = unpack(bytes(data))
    at = 4 + 2 + len(header.model_id) + 8 + 4
    data[at:at + 8] = (4000).to_bytes(4, "little") + (3000).to_bytes(4, "little")
    data[-4:] = zlib.crc32(data[:-4]).to_bytes(4, "little")
    crafted = tmp_path / "crafted.hfd"
    crafted.write_bytes(bytes(data))
    assert_failed(hfd(capsys, "decompress", crafted, tmp_path / "x.png", "--decoder", "ae", weights=weights),
                  "latent stream is corrupt (the coded data does not fit the image the header names)")
    assert not (tmp_path / "x.png").exists()


def test_what_does_not_fit_in_memory_is_refused_up_front_with_what_it_would_need(capsys, tmp_path, weights,
                                                                                photo, encoded, monkeypatch):
    monkeypatch.setenv("HFD_MEMORY_LIMIT", "1G")  # one tile's working set alone takes that
    assert_failed(hfd(capsys, "decompress", encoded, tmp_path / "x.png", "--decoder", "ae", weights=weights),
                  f"decoding a {W}×{H} image needs about 1.0 GiB of memory; 1.0 GiB are available")
    assert_failed(hfd(capsys, "compress", photo, tmp_path / "x.hfd", "--rate", "0.5", weights=weights),
                  f"compressing a {W}×{H} image needs about 1.0 GiB")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x.hfd").exists()
    monkeypatch.setenv("HFD_MEMORY_LIMIT", "lots")
    assert_failed(hfd(capsys, "decompress", encoded, tmp_path / "x.png", "--decoder", "ae", weights=weights),
                  "HFD_MEMORY_LIMIT must be a size such as 4G or 512M")
