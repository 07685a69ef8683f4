"""Uploaded training archives: every hostile zip refused with all its reasons, nothing written outside the job folder."""

from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pixlearn.io import encode_image
from pixlearn.serve.archive import ArchiveError, ArchiveLimits, check_archive, extract_archive
from pixlearn.tasks.classify.data import read_classify_dataset


def _png(seed: int, size: int = 16) -> bytes:
    rng = np.random.default_rng(seed)
    return encode_image(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), "png")


def _zip(members: dict[str, bytes] | list[tuple[zipfile.ZipInfo | str, bytes]], *, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    items = members.items() if isinstance(members, dict) else members
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in items:
            zf.writestr(name, data)
    return buf.getvalue()


def _classes(n_per_class: int = 3, classes: tuple[str, ...] = ("cat", "dog"), prefix: str = "") -> dict[str, bytes]:
    return {f"{prefix}{c}/{i}.png": _png(10 * k + i) for k, c in enumerate(classes) for i in range(n_per_class)}


def _link(name: str, target: bytes, kind: int = stat.S_IFLNK) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix
    info.external_attr = (kind | 0o777) << 16
    return info, target


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _refuse(data: bytes, tmp_path: Path, limits: ArchiveLimits | None = None) -> list[str]:
    """Extract into tmp/job/data; assert it is refused and that nothing at all was written."""
    (tmp_path / "job").mkdir(parents=True, exist_ok=True)
    before = _snapshot(tmp_path)
    with pytest.raises(ArchiveError) as exc_info:
        extract_archive(io.BytesIO(data), tmp_path / "job" / "data", limits=limits, name="upload.zip")
    assert _snapshot(tmp_path) == before, "a refused archive left files behind"
    err = exc_info.value
    assert err.reasons and str(err).startswith("upload.zip: archive refused: ")
    return err.reasons


def test_zip_slip_is_refused_and_nothing_is_written_outside(tmp_path: Path) -> None:
    data = _zip({**_classes(), "../evil.png": b"pwned", "cat/../../evil2.png": b"pwned", "..\\evil3.png": b"pwned"})
    reasons = _refuse(data, tmp_path / "a")
    assert len(reasons) == 1 and "path traversal" in reasons[0]
    for name in ("'../evil.png'", "'cat/../../evil2.png'", "'..\\\\evil3.png'"):
        assert name in reasons[0]
    assert not list(tmp_path.rglob("evil*"))


def test_absolute_paths_and_drive_letters_are_refused(tmp_path: Path) -> None:
    target = tmp_path / "abs_evil.png"
    data = _zip({**_classes(), str(target): b"pwned", "C:/Windows/evil.png": b"pwned", "D:evil.png": b"x"})
    reasons = _refuse(data, tmp_path / "w")
    assert any("absolute path" in r and str(target) in r for r in reasons)
    assert any("drive letter" in r and "C:/Windows/evil.png" in r and "D:evil.png" in r for r in reasons)
    assert not target.exists()


def test_symlink_and_device_members_are_refused(tmp_path: Path) -> None:
    members = list(_classes().items()) + [
        _link("cat/link.png", b"/etc/passwd"),
        _link("dog/dev.png", b"", kind=stat.S_IFCHR),
        _link("dog/fifo.png", b"", kind=stat.S_IFIFO),
    ]
    reasons = _refuse(_zip(members), tmp_path)
    assert any("symbolic-link" in r and "cat/link.png" in r for r in reasons)
    assert any("device-file" in r and "dog/dev.png" in r for r in reasons)
    assert any("not regular files" in r and "dog/fifo.png" in r for r in reasons)
    assert not any(p.is_symlink() for p in tmp_path.rglob("*"))


def test_bomb_by_ratio_is_refused_from_the_headers(tmp_path: Path) -> None:
    data = _zip({**_classes(), "cat/bomb.bmp": bytes(8 * 2**20)})  # 8 MiB of zeros deflate ~1000:1
    assert len(data) < 100_000
    reasons = _refuse(data, tmp_path)
    assert len(reasons) == 1 and "zip bomb" in reasons[0] and "cat/bomb.bmp" in reasons[0]
    assert "200:1" in reasons[0]


def test_bomb_by_size_is_refused(tmp_path: Path) -> None:
    data = _zip(_classes(n_per_class=4), method=zipfile.ZIP_STORED)
    limits = ArchiveLimits(max_bytes=2_000)
    reasons = _refuse(data, tmp_path, limits)
    assert any("over the 0.0 MB cap" in r and "max_archive_mb" in r for r in reasons)


def _forge_sizes(data: bytes, member: str, declared: int) -> bytes:
    """Rewrite one member's uncompressed size in its local header and in the central directory."""
    out = bytearray(data)
    name = member.encode()
    i = out.find(b"PK\x03\x04")  # local headers
    while i != -1:
        n_len = struct.unpack_from("<H", out, i + 26)[0]
        if out[i + 30 : i + 30 + n_len] == name:
            struct.pack_into("<I", out, i + 22, declared)
        i = out.find(b"PK\x03\x04", i + 4)
    j = out.find(b"PK\x01\x02")
    while j != -1:
        n_len = struct.unpack_from("<H", out, j + 28)[0]
        if out[j + 46 : j + 46 + n_len] == name:
            struct.pack_into("<I", out, j + 24, declared)
        j = out.find(b"PK\x01\x02", j + 4)
    return bytes(out)


def test_forged_declared_size_is_caught_while_streaming(tmp_path: Path) -> None:
    """The header says 600 bytes; the data inflates to 2 MiB: the headers pass, the extraction must not."""
    data = _zip({**_classes(), "cat/big.bmp": bytes(2 * 2**20)})
    forged = _forge_sizes(data, "cat/big.bmp", 600)
    with zipfile.ZipFile(io.BytesIO(forged)) as zf:
        assert zf.getinfo("cat/big.bmp").file_size == 600
    check_archive(io.BytesIO(forged))  # the headers alone look fine
    reasons = _refuse(forged, tmp_path)
    assert len(reasons) == 1 and "'cat/big.bmp' is corrupt or its header is forged" in reasons[0]


def test_forged_size_under_the_cap_is_caught_while_extracting(tmp_path: Path) -> None:
    data = _zip({**_classes(), "cat/big.bmp": os.urandom(300_000)}, method=zipfile.ZIP_STORED)
    forged = _forge_sizes(data, "cat/big.bmp", 1_000)  # the declared total is now under the cap
    limits = ArchiveLimits(max_bytes=200_000)
    check_archive(io.BytesIO(forged), limits=limits)
    reasons = _refuse(forged, tmp_path, limits)
    assert len(reasons) == 1 and "'cat/big.bmp' is corrupt or its header is forged" in reasons[0]


def test_the_copy_loop_counts_real_bytes_whatever_the_header_said(tmp_path: Path) -> None:
    """The per-member copy stops at the size and ratio caps by counting what comes out, not by the header."""
    from pixlearn.serve.archive import _copy_member, _Refused

    data = _zip({"a/zeros.bmp": bytes(3 * 2**20), "a/noise.bin": os.urandom(300_000)})
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        noise, zeros = zf.getinfo("a/noise.bin"), zf.getinfo("a/zeros.bmp")
        with pytest.raises(_Refused, match="more than the 0.1 MB cap"):
            _copy_member(zf, noise, tmp_path / "n", limits=ArchiveLimits(max_bytes=100_000), total=0)
        assert (tmp_path / "n").stat().st_size <= 100_000
        with pytest.raises(_Refused, match="expands more than 200:1 while extracting"):
            _copy_member(zf, zeros, tmp_path / "z", limits=ArchiveLimits(), total=0)
        assert (tmp_path / "z").stat().st_size <= 2**20 + 2**16
        assert _copy_member(zf, noise, tmp_path / "ok", limits=ArchiveLimits(), total=0) == 300_000


def test_not_a_zip(tmp_path: Path) -> None:
    for junk in (b"", b"hello world", _png(0)):
        reasons = _refuse(junk, tmp_path)
        assert reasons == [reasons[0]] and "not a zip" in reasons[0]
    truncated = _zip(_classes())[:-30]
    assert "not a zip" in _refuse(truncated, tmp_path)[0]


def test_too_few_images_per_class(tmp_path: Path) -> None:
    members = {**_classes(n_per_class=3, classes=("cat",)), "dog/0.png": _png(99)}
    reasons = _refuse(_zip(members), tmp_path, ArchiveLimits(min_images_per_class=2))
    assert reasons == ["too few images in class(es) dog (1); each class needs at least 2 images"]
    reasons = _refuse(_zip(_classes(n_per_class=3)), tmp_path, ArchiveLimits(min_images_per_class=5))
    assert reasons == ["too few images in class(es) cat (3), dog (3); each class needs at least 5 images"]


def test_one_class_and_no_images(tmp_path: Path) -> None:
    reasons = _refuse(_zip(_classes(n_per_class=4, classes=("cat",))), tmp_path)
    assert len(reasons) == 1 and "only one class ('cat')" in reasons[0] and "at least 2 classes" in reasons[0]
    reasons = _refuse(_zip({"notes/readme.md": b"hi", "notes/a.docx": b"x"}), tmp_path)
    assert len(reasons) == 1 and reasons[0].startswith("it holds no images")
    reasons = _refuse(_zip({"0.png": _png(0), "1.png": _png(1)}), tmp_path)  # images but no class folders
    assert "no class folders" in reasons[0]


def test_every_reason_is_listed_at_once(tmp_path: Path) -> None:
    members = [("../x.png", b"x"), _link("cat/l.png", b"/etc"), ("cat/1.png", _png(1)), ("cat/2.png", _png(2))]
    members += [(f"junk/{i}.txt", b"") for i in range(3)]
    reasons = _refuse(_zip(members), tmp_path, ArchiveLimits(max_members=5))
    text = " | ".join(reasons)
    for part in ("path traversal", "symbolic-link", "more than the limit of 5", "only one class"):
        assert part in text, text
    assert len(reasons) == 4


def test_duplicate_members_and_clashes_are_refused(tmp_path: Path) -> None:
    members = list(_classes().items()) + [("cat/0.png", _png(5))]
    with pytest.warns(UserWarning, match="Duplicate name"):
        data = _zip(members)
    assert any("more than once" in r for r in _refuse(data, tmp_path))
    clash = _zip({**_classes(), "dog/x": b"file", "dog/x/1.png": _png(3)})
    reasons = _refuse(clash, tmp_path)
    assert len(reasons) == 1 and "clashes" in reasons[0]


def test_good_archive_is_unwrapped_and_readable(tmp_path: Path) -> None:
    members = {
        **_classes(n_per_class=3, prefix="flowers/train/"),
        **_classes(n_per_class=1, prefix="flowers/val/"),
        "__MACOSX/flowers/train/cat/._0.png": b"\x00\x05\x16\x07",
        "flowers/.DS_Store": b"junk",
        "flowers/train/dog/.hidden.png": b"junk",
        "flowers/README.txt": b"two classes",
    }
    data = _zip(members)
    plan = check_archive(io.BytesIO(data))
    assert plan.prefix == ("flowers",) and plan.per_class == {"cat": 4, "dog": 4} and plan.skipped == 3
    ds = extract_archive(io.BytesIO(data), tmp_path / "data")
    assert ds.root == (tmp_path / "data" / "flowers").resolve()
    assert (ds.format, ds.classes, ds.per_class, ds.images) == ("imagefolder", ["cat", "dog"], {"cat": 4, "dog": 4}, 8)
    assert not (tmp_path / "data" / "__MACOSX").exists() and not list(tmp_path.rglob(".*"))
    index = read_classify_dataset(ds.root)
    assert index.splits() == {"train": 6, "val": 2}
    assert ds.bytes == sum(len(v) for k, v in members.items() if k.startswith("flowers/") and "/." not in k)


def test_csv_layout_is_left_to_the_readers(tmp_path: Path) -> None:
    rows = ["path,label"] + [f"img/{i}.png,{'ab'[i % 2]}" for i in range(6)]
    members = {"set/labels.csv": "\n".join(rows).encode(), **{f"set/img/{i}.png": _png(i) for i in range(6)}}
    ds = extract_archive(io.BytesIO(_zip(members)), tmp_path / "data")
    assert ds.format == "csv" and ds.per_class == {"a": 3, "b": 3}
    bad = {"labels.csv": b"path,label\nimg/0.png,a\n", "img/0.png": _png(0)}
    reasons = _refuse(_zip(bad), tmp_path)
    assert len(reasons) == 1 and "single class ('a', 1 images)" in reasons[0] and str(tmp_path) not in reasons[0]


def test_destination_must_be_new(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    with pytest.raises(FileExistsError):
        extract_archive(io.BytesIO(_zip(_classes())), tmp_path / "data")


def test_limits_from_settings() -> None:
    class S:
        max_archive_mb = 2
        max_archive_ratio = 50
        min_images_per_class = 4

    limits = ArchiveLimits.from_settings(S())
    assert (limits.max_bytes, limits.max_ratio, limits.min_images_per_class) == (2 * 2**20, 50.0, 4)


# ---------------------------------------------------------------- names too long, headers that disagree
def test_a_member_name_over_255_bytes_is_refused_not_a_crash(tmp_path: Path) -> None:
    long_name = "cat/" + "a" * 300 + ".png"  # one path component of 304 bytes: open() would fail with ENAMETOOLONG
    data = _zip({**_classes(), long_name: _png(99)})
    reasons = _refuse(data, tmp_path)
    assert len(reasons) == 1 and "path is too long (a name over 255 bytes" in reasons[0]
    with pytest.raises(ArchiveError, match="too long"):
        check_archive(io.BytesIO(data))


def test_a_member_path_over_path_max_is_refused(tmp_path: Path) -> None:
    deep = "cat/" + "/".join(["d" * 250] * 18) + "/0.png"  # every name is short, the whole is over 4096 bytes
    data = _zip({**_classes(), deep: _png(98)})
    reasons = _refuse(data, tmp_path)
    assert len(reasons) == 1 and "a path over 1024 bytes" in reasons[0]


def test_names_up_to_the_limits_extract(tmp_path: Path) -> None:
    name = "cat/" + "b" * 251 + ".png"  # a 255-byte file name
    data = _zip({**_classes(), name: _png(97)})
    ds = extract_archive(io.BytesIO(data), tmp_path / "data")
    assert ds.per_class == {"cat": 4, "dog": 3}


def _forge_local_name(data: bytes, member: str, forged: str) -> bytes:
    """Rewrite one member's name in its local header only (same length); the central directory keeps ``member``."""
    assert len(forged.encode()) == len(member.encode())
    out = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        offset = zf.getinfo(member).header_offset
    assert out[offset : offset + 4] == b"PK\x03\x04"
    n_len = struct.unpack_from("<H", out, offset + 26)[0]
    assert out[offset + 30 : offset + 30 + n_len] == member.encode()
    out[offset + 30 : offset + 30 + n_len] = forged.encode()
    return bytes(out)


def test_a_local_header_name_that_differs_from_the_central_directory_is_refused(tmp_path: Path) -> None:
    data = _forge_local_name(_zip(_classes()), "cat/1.png", "../1.png.")
    with zipfile.ZipFile(io.BytesIO(data)) as zf, pytest.raises(zipfile.BadZipFile):  # what zipfile itself says
        zf.open("cat/1.png")
    with pytest.raises(ArchiveError) as exc_info:  # from the headers alone, before anything is written
        check_archive(io.BytesIO(data), name="upload.zip")
    assert "local header does not match the zip's central directory" in str(exc_info.value)
    reasons = _refuse(data, tmp_path)
    assert len(reasons) == 1 and "'cat/1.png'" in reasons[0] and "zip the images again" in reasons[0]
