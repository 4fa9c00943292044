"""The .hfd file format: a small header that names the model and the image, the entropy
coder's payload segments, and a CRC32 over everything so corruption is caught before decoding.

Layout (all integers little-endian):

    magic            4 bytes   b"\\x89HFD" (non-ASCII first byte, as in PNG, catches text-mode mangling)
    format version   u8        3 (v2 is read too: the same payload, a checksum over the symbols
                               alone; v1 coded the latents that see only padding too, with 16-bit
                               probability tables, and is refused: see ``unpack``)
    model id         u8 n + n ASCII bytes (printable, 1..64)
    weights hash     8 bytes   (16 hex digits)
    rate             f32       raw rate control in [0, 1]
    width, height    u32, u32  each 1..MAX_SIDE, product at most MAX_PIXELS (the encoder's limit)
    colour           u8        0 = rgb, 1 = gray
    payload checksum u32       CRC32 of the decoded symbols (ẑ, then ŷ), continued over every header field
                               that changes the decode (``sealed_checksum``): catches an
                               entropy-decoder desync, and a header edited after writing even
                               when the file CRC was recomputed
    segment count    u8
    segment lengths  u32 each
    segments         the payload bytes, in order
    file CRC32       u32       over every byte before it
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from engine.codec.images import MAX_PIXELS, Colour
from engine.errors import BitstreamError, ModelMismatchError

MAGIC = b"\x89HFD"
FORMAT_VERSION = 3
READABLE_VERSIONS = (2, 3)
MAX_MODEL_ID = 64
MAX_SIDE = 1 << 20
MAX_SEGMENTS = 255
_COLOUR_CODES = {Colour.RGB: 0, Colour.GRAY: 1}
_COLOURS_BY_CODE = {code: colour for colour, code in _COLOUR_CODES.items()}
_FIXED = struct.Struct("<8sfIIBIB")  # weights hash .. segment count
_U32 = struct.Struct("<I")


@dataclass(frozen=True)
class HfdHeader:
    """Everything in a .hfd file except its payload. ``rate`` is kept at float32 precision,
    exactly as stored, so a header survives pack → unpack unchanged."""

    model_id: str
    weights_hash: str  # 16 lowercase hex digits
    rate: float
    width: int
    height: int
    colour: Colour
    latent_crc: int
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        problem = _header_problem(self)
        if problem:
            raise ValueError(problem)
        object.__setattr__(self, "weights_hash", self.weights_hash.lower())
        object.__setattr__(self, "colour", Colour(self.colour))
        object.__setattr__(self, "rate", struct.unpack("<f", struct.pack("<f", self.rate))[0])

    @property
    def pixels(self) -> int:
        return self.width * self.height


def pack(header: HfdHeader, segments: list[bytes]) -> bytes:
    """Serialise a header and payload segments into a complete .hfd file."""
    if len(segments) > MAX_SEGMENTS:
        raise ValueError(f"at most {MAX_SEGMENTS} segments fit a .hfd file, got {len(segments)}")
    model_id = header.model_id.encode("ascii")
    parts = [MAGIC, bytes([header.format_version, len(model_id)]), model_id,
             _FIXED.pack(bytes.fromhex(header.weights_hash), header.rate, header.width, header.height,
                         _COLOUR_CODES[header.colour], header.latent_crc, len(segments))]
    for segment in segments:
        if len(segment) >= 1 << 32:
            raise ValueError("a payload segment is longer than 4 GiB")
        parts.append(_U32.pack(len(segment)))
    parts.extend(bytes(segment) for segment in segments)
    body = b"".join(parts)
    return body + _U32.pack(zlib.crc32(body))


def unpack(data: bytes) -> tuple[HfdHeader, list[bytes]]:
    """Parse a .hfd file. Raises BitstreamError, with a one-line message, for anything malformed."""
    data = bytes(data)
    if not data:
        raise BitstreamError("empty file: not a .hfd file")
    if not MAGIC.startswith(data[:len(MAGIC)]):
        raise BitstreamError("not a .hfd file (wrong magic bytes)")
    reader = _Reader(data)
    reader.take(len(MAGIC), "magic")
    version = reader.take(1, "format version")[0]
    if version > FORMAT_VERSION:
        raise BitstreamError(f"written by a newer hfd (format v{version}); this build reads up to v{FORMAT_VERSION}")
    if version == 1:  # its payload needs the 16-bit coding tables this build no longer makes
        raise BitstreamError("written by an earlier hfd release (format v1); this build reads v2 and v3: "
                             "decode it with that release, or compress the original again")
    if version < 1:
        raise BitstreamError(f"unknown .hfd format version {version}")
    model_id = reader.take(reader.take(1, "model id length")[0], "model id")
    weights_hash, rate, width, height, colour_code, latent_crc, count = _FIXED.unpack(
        reader.take(_FIXED.size, "header fields"))
    lengths = [_U32.unpack(reader.take(4, f"length of segment {i + 1} of {count}"))[0] for i in range(count)]
    expected = reader.offset + sum(lengths) + _U32.size
    if len(data) > expected:
        raise BitstreamError(f"{len(data) - expected} bytes of trailing garbage after the end of the file")
    segments = [reader.take(n, f"payload segment {i + 1} of {count}") for i, n in enumerate(lengths)]
    stored_crc = _U32.unpack(reader.take(4, "file checksum"))[0]
    if zlib.crc32(data[:-_U32.size]) != stored_crc:
        raise BitstreamError("corrupt .hfd file (checksum mismatch)")
    colour = _COLOURS_BY_CODE.get(colour_code)
    if colour is None:
        raise BitstreamError(f"invalid header: unknown colour code {colour_code}")
    if not all(0x20 <= byte <= 0x7E for byte in model_id):
        raise BitstreamError("invalid header: the model id is not printable ASCII")
    try:
        header = HfdHeader(model_id.decode("ascii"), weights_hash.hex(), rate, width, height, colour,
                           latent_crc, version)
    except ValueError as exc:
        raise BitstreamError(f"invalid header: {exc}") from exc
    return header, segments


def sealed_checksum(symbols_crc: int, model_id: str, weights_hash: str, rate: float, width: int, height: int,
                    colour: Colour | str) -> int:
    """The v3 payload checksum: the CRC32 of the coded symbols continued over the header fields that
    change the decode (the model, the rate as stored, the size, the colour). The file CRC guards
    against corruption; this one, which only a decode can check, against a header edited after
    writing: any change to these fields makes the decode fail instead of giving other pixels."""
    fields = struct.pack("<B", len(model_id)) + model_id.encode("ascii") + bytes.fromhex(weights_hash) + struct.pack(
        "<fIIB", rate, width, height, _COLOUR_CODES[Colour(colour)])
    return zlib.crc32(fields, symbols_crc)


def check_payload(header: HfdHeader, y_crc: int, symbols_crc: int) -> None:
    """Raise BitstreamError unless the decoded symbols belong to this header: ``y_crc`` is the CRC32
    of the ŷ symbols (what format v2 stored), ``symbols_crc`` that of ẑ then ŷ (what v3 seals)."""
    expected = y_crc if header.format_version == 2 else sealed_checksum(
        symbols_crc, header.model_id, header.weights_hash, header.rate, header.width, header.height, header.colour)
    if expected != header.latent_crc:
        raise BitstreamError("payload checksum mismatch: the entropy decoder lost sync or the header was "
                             "edited (corrupt file)")


def check_model(header: HfdHeader, model_id: str, weights_hash: str) -> None:
    """Raise ModelMismatchError unless the file was written by exactly these weights."""
    if header.model_id != model_id or header.weights_hash != weights_hash.lower():
        raise ModelMismatchError(f"file was written by model {header.model_id} (weights {header.weights_hash}); "
                                 f"loaded model is {model_id} (weights {weights_hash.lower()})")


class _Reader:
    """Sequential reads that name the part of the file that was cut off."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, n: int, part: str) -> bytes:
        end = self.offset + n
        if end > len(self.data):
            raise BitstreamError(f"truncated .hfd file: cut off in the {part} "
                                 f"(needs {end} bytes, has {len(self.data)})")
        chunk = self.data[self.offset:end]
        self.offset = end
        return chunk


def _header_problem(header: HfdHeader) -> str:
    """Why a header cannot be stored, or "" when it can."""
    model_id = header.model_id
    if not (isinstance(model_id, str) and 1 <= len(model_id) <= MAX_MODEL_ID
            and all(" " <= ch <= "~" for ch in model_id)):
        return f"model id must be 1..{MAX_MODEL_ID} printable ASCII characters, got {model_id!r}"
    hash_ = header.weights_hash
    if not (isinstance(hash_, str) and len(hash_) == 16 and all(ch in "0123456789abcdefABCDEF" for ch in hash_)):
        return f"weights hash must be 16 hex digits, got {hash_!r}"
    if not 0.0 <= header.rate <= 1.0:
        return f"rate must be in [0, 1], got {header.rate}"
    for name, side in (("width", header.width), ("height", header.height)):
        if not 1 <= side <= MAX_SIDE:
            return f"{name} must be in 1..{MAX_SIDE}, got {side}"
    if header.width * header.height > MAX_PIXELS:
        return (f"{header.width}×{header.height} is {header.width * header.height / 1e6:.0f} MP, over the "
                f"{MAX_PIXELS / 1e6:.0f} MP limit of .hfd files")
    if header.colour not in ("rgb", "gray"):
        return f"colour must be 'rgb' or 'gray', got {header.colour!r}"
    if not 0 <= header.latent_crc < 1 << 32:
        return f"latent checksum must be a u32, got {header.latent_crc}"
    if header.format_version not in READABLE_VERSIONS:
        return f"this build handles format v{READABLE_VERSIONS[0]}..v{FORMAT_VERSION}, got v{header.format_version}"
    return ""
