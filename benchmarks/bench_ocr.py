"""Character error rate and speed of ``pixlearn.tasks.ocr.read_text`` against ``RapidOCR()`` called directly, CPU.

Usage: python benchmarks/bench_ocr.py [--lines 240] [--per-page 5] [--repeat 3] [--warmup 1] [--seed 0]
                                      [--threads N] [--photos ../shared/datasets/ocr_words] [--save-pages DIR]
                                      [--json benchmarks/results/ocr.json]
Smoke test: python benchmarks/bench_ocr.py --lines 20 --repeat 1 --photos none --json /tmp/ocr_smoke.json

Text is rendered here (nothing downloaded, no labels needed): ``--lines`` lines of 2-6 random words and numbers (a
fixed seed) in eight DejaVu fonts (Sans, Sans Bold, Sans Oblique, Sans Condensed, Serif, Serif Bold, Mono,
Mono Bold) at 20-40 px, dark ink on a light background, each line turned by a random angle in [-5°, 5°], light
Gaussian noise (sigma 3-10) over the page. ``--per-page`` lines share one page (640 px wide): PP-OCR scales a
page's short side up to 736 px before detection, so a page of five lines costs about what one thin strip does.

Both sides read the same decoded page with the same models (the PP-OCRv4 detector and recogniser and the 180°
direction classifier bundled with rapidocr_onnxruntime), the same minimum text score (0.5), the direction classifier
on and the same onnxruntime intra-op thread count (``--threads``; default: pixlearn's, the cores the process may use):

* **pixlearn**: ``read_text(rgb, min_confidence=0.5, rotation="auto", engine=get_engine(threads=T))``, pieces in
  its reading order;
* **peer**: ``RapidOCR(intra_op_num_threads=T)(bgr)`` as rapidocr's README shows it (``result, elapse =
  engine(img)``) on the page as a BGR array (what ``cv2.imread`` gives), pieces in rapidocr's order.

Per page the prediction is the pieces' strings joined by spaces, the reference the lines' strings joined by spaces.
The character error rate is the Levenshtein distance (written here) over the reference length, summed over pages;
``cer_no_space`` does the same with all whitespace removed (the Chinese-English PP-OCRv4 recogniser often drops the
space between words). Calls are interleaved (pixlearn, peer, peer, pixlearn, ...) after ``--warmup`` untimed calls
per page and side, so machine noise hits both; the time ratio is the peer's summed median time over pixlearn's
(target >= 0.95: pixlearn costs at most ~5 % more than calling rapidocr itself). ``pixlearn_own_ms`` is the time of
pixlearn's own work alone (checks, the RGB to BGR copy, filtering, reading order: ``read_text`` with the models' answer
for that page replayed), free of the models' noise. ``--photos`` adds the scene-text
crops of a folder (no ground truth: only whether both sides read the same pieces, and the times). The machine may be
shared: load averages before and after are recorded.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import best_time, interleaved_times, print_table, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSansCondensed.ttf",
         "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf")
SIZES = (20, 24, 28, 32, 40)
WORDS = """time year people way day man thing woman life child world school state family student group country
problem hand part place case week company system program question work government number night point home water
room mother area money story fact month lot right study book eye job word business issue side kind head house
service friend father power hour game line end member law car city community name president team minute idea kid
body information back parent face others level office door health person art war history party result change
morning reason research girl guy moment air teacher force education open north south market price total invoice
order street station coffee bread garden window river light green orange yellow summer winter""".split()
PAGE_WIDTH = 640
MARGIN = 24


# --------------------------------------------------------------------------------------------- rendered pages
def _token(rng: np.random.Generator) -> str:
    kind = rng.random()
    if kind < 0.2:
        return str(int(rng.integers(0, 100000)))
    if kind < 0.27:
        return f"{rng.integers(1, 1000)}.{rng.integers(0, 100):02d}"
    word = str(rng.choice(WORDS))
    style = rng.random()
    return word.upper() if style < 0.15 else word.capitalize() if style < 0.45 else word


def _line_image(text: str, font: Any, angle: float, ink: int) -> Any:
    """The line as an L mask (255 = ink), turned by ``angle`` degrees with room around it."""
    from PIL import Image, ImageDraw

    left, top, right, bottom = font.getbbox(text)
    pad = 6
    mask = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(mask).text((pad - left, pad - top), text, font=font, fill=255)
    return mask.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=0)


def render_pages(n_lines: int, per_page: int, seed: int) -> list[tuple[np.ndarray, list[str]]]:
    """``n_lines`` rendered lines on pages of ``per_page``: ``(page RGB uint8, the lines' strings top to bottom)``."""
    from PIL import Image, ImageFont

    rng = np.random.default_rng(seed)
    fonts = {(name, size): ImageFont.truetype(str(FONT_DIR / name), size) for name in FONTS for size in SIZES}
    pages = []
    done = 0
    while done < n_lines:
        count = min(per_page, n_lines - done)
        masks, texts = [], []
        for _ in range(count):
            font = fonts[(FONTS[int(rng.integers(len(FONTS)))], SIZES[int(rng.integers(len(SIZES)))])]
            words = [_token(rng) for _ in range(int(rng.integers(2, 7)))]
            while len(words) > 1 and font.getlength(" ".join(words)) > PAGE_WIDTH - 2 * MARGIN - 40:
                words.pop()
            text = " ".join(words)
            masks.append(_line_image(text, font, float(rng.uniform(-5, 5)), 0))
            texts.append(text)
        gap = 18
        height = 2 * MARGIN + sum(m.size[1] for m in masks) + gap * (count - 1)
        background = int(rng.integers(225, 256))
        page = Image.new("L", (PAGE_WIDTH, height), background)
        y = MARGIN
        for m in masks:
            x = int(rng.integers(MARGIN, max(MARGIN + 1, PAGE_WIDTH - MARGIN - m.size[0])))
            ink = Image.new("L", m.size, int(rng.integers(0, 70)))
            page.paste(ink, (x, y), m)
            y += m.size[1] + gap
        arr = np.asarray(page, np.float32)
        arr = arr + rng.normal(0.0, float(rng.uniform(3, 10)), arr.shape)
        grey = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        tint = rng.integers(-12, 13, 3)  # a faint colour cast, so the pages are RGB
        rgb = np.clip(grey[..., None].astype(np.int16) + tint, 0, 255).astype(np.uint8)
        pages.append((np.ascontiguousarray(rgb), texts))
        done += count
    return pages


# --------------------------------------------------------------------------------------------- scoring
def levenshtein(a: str, b: str) -> int:
    """Edits (insertions, deletions, substitutions) turning ``a`` into ``b``.

    >>> levenshtein("kitten", "sitting"), levenshtein("", "abc"), levenshtein("abc", "abc")
    (3, 3, 0)
    """
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _no_space(s: str) -> str:
    return "".join(s.split())


# --------------------------------------------------------------------------------------------- the two sides
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=240, help="rendered text lines (>= 200 for the issue's measurement)")
    ap.add_argument("--per-page", type=int, default=5, help="lines per rendered page")
    ap.add_argument("--repeat", type=int, default=3, help="timed calls per page and side (interleaved)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed calls per page and side first")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads of both sides (default: pixlearn's)")
    ap.add_argument("--photos", default=str(SHARED / "datasets" / "ocr_words"),
                    help="a folder of real text photos read by both sides (agreement and time only); 'none' to skip")
    ap.add_argument("--save-pages", type=Path, default=None, help="write the rendered pages here as PNG (to look at)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "ocr.json")
    args = ap.parse_args(argv)
    if not (FONT_DIR / FONTS[0]).is_file():
        raise SystemExit(f"{FONT_DIR}: the DejaVu fonts are not installed (apt-get install fonts-dejavu-core)")
    if not 1 <= args.lines <= 100_000 or not 1 <= args.per_page <= 20 or not 1 <= args.repeat <= 100 or args.warmup < 0:
        raise SystemExit("--lines 1..100000, --per-page 1..20, --repeat 1..100, --warmup >= 0")

    import onnxruntime as ort
    import rapidocr_onnxruntime
    from rapidocr_onnxruntime import RapidOCR

    from pixlearn import read_image
    from pixlearn.tasks.ocr.engine import get_engine
    from pixlearn.tasks.ocr.read import read_text

    pages = render_pages(args.lines, args.per_page, args.seed)
    if args.save_pages is not None:
        from pixlearn.io import write_image

        for i, (rgb, _texts) in enumerate(pages):
            write_image(args.save_pages / f"page{i:03d}.png", rgb)
    photos: list[tuple[str, np.ndarray]] = []
    if args.photos.lower() != "none" and Path(args.photos).is_dir():
        from pixlearn.io import expand_sources

        for path, _root in expand_sources([args.photos]):
            photos.append((f"photos/{path.name}", read_image(path)))

    load0 = os.getloadavg()
    engine = get_engine(threads=args.threads)
    threads = engine.threads
    peer = RapidOCR(intra_op_num_threads=threads)  # rapidocr's defaults otherwise: text_score 0.5, use_cls on

    def ours(rgb: np.ndarray) -> list[str]:
        return [t.text for t in read_text(rgb, min_confidence=0.5, rotation="auto", engine=engine)]

    def theirs(bgr: np.ndarray) -> list[str]:
        result, _elapse = peer(bgr)
        return [str(text).strip() for _box, text, _score in (result or []) if str(text).strip()]

    cases = [(f"page{i:03d}", rgb, texts) for i, (rgb, texts) in enumerate(pages)] + [(n, p, None) for n, p in photos]
    per_case: list[dict[str, Any]] = []
    totals = {"ref": 0, "ref_ns": 0, "ours": 0, "ours_ns": 0, "peer": 0, "peer_ns": 0}
    sum_ours = sum_peer = 0.0
    print(f"{len(pages)} pages ({args.lines} lines), {len(photos)} photos; {threads} intra-op threads; "
          f"load average {load0[0]:.2f}", file=sys.stderr, flush=True)
    for k, (name, rgb, texts) in enumerate(cases):
        bgr = np.ascontiguousarray(rgb[..., ::-1])  # what cv2.imread would have given the peer
        out: dict[str, list[str]] = {}
        t_ours, t_peer = interleaved_times(lambda: out.__setitem__("ours", ours(rgb)),
                                           lambda: out.__setitem__("peer", theirs(bgr)),
                                           repeat=args.repeat, warmup=args.warmup)
        mo, mp = statistics.median(t_ours), statistics.median(t_peer)
        row: dict[str, Any] = {"case": name, "size_hw": list(rgb.shape[:2]), "pixlearn_ms": [round(t * 1e3, 1) for t in t_ours],
                               "peer_ms": [round(t * 1e3, 1) for t in t_peer], "pixlearn_median_ms": round(mo * 1e3, 1),
                               "peer_median_ms": round(mp * 1e3, 1), "ratio": round(mp / mo, 3),
                               "same_pieces": sorted(out["ours"]) == sorted(out["peer"]),
                               "pixlearn_text": " ".join(out["ours"]), "peer_text": " ".join(out["peer"])}
        # pixlearn's own work per call (checks, RGB to BGR, filtering, reading order), the models' answer replayed
        pieces = engine.detect_and_read(bgr, use_cls=True, max_side=2000)
        replay = type("Replay", (), {"detect_and_read": lambda self, *a, **k: pieces})()
        row["pixlearn_own_ms"] = round(best_time(lambda: read_text(rgb, min_confidence=0.5, engine=replay), repeat=5,
                                                 number=3) * 1e3, 3)
        if texts is not None:
            ref = " ".join(texts)
            row["reference"] = ref
            e_ours, e_peer = levenshtein(row["pixlearn_text"], ref), levenshtein(row["peer_text"], ref)
            ens_ours = levenshtein(_no_space(row["pixlearn_text"]), _no_space(ref))
            ens_peer = levenshtein(_no_space(row["peer_text"]), _no_space(ref))
            row.update(pixlearn_edits=e_ours, peer_edits=e_peer, pixlearn_edits_no_space=ens_ours, peer_edits_no_space=ens_peer)
            totals["ref"] += len(ref)
            totals["ref_ns"] += len(_no_space(ref))
            totals["ours"] += e_ours
            totals["peer"] += e_peer
            totals["ours_ns"] += ens_ours
            totals["peer_ns"] += ens_peer
            sum_ours += mo
            sum_peer += mp
        per_case.append(row)
        if (k + 1) % 10 == 0 or k + 1 == len(cases):
            print(f"  {k + 1}/{len(cases)} ...", file=sys.stderr, flush=True)
    load1 = os.getloadavg()

    def rate(edits: int, n: int) -> float:
        return round(edits / n, 4) if n else float("nan")

    rendered = [r for r in per_case if "reference" in r]
    shot = [r for r in per_case if "reference" not in r]
    summary = {
        "lines": args.lines, "pages": len(pages),
        "pixlearn_cer": rate(totals["ours"], totals["ref"]), "peer_cer": rate(totals["peer"], totals["ref"]),
        "pixlearn_cer_no_space": rate(totals["ours_ns"], totals["ref_ns"]), "peer_cer_no_space": rate(totals["peer_ns"], totals["ref_ns"]),
        "pages_with_the_same_pieces": f"{sum(r['same_pieces'] for r in rendered)}/{len(rendered)}",
        "pixlearn_median_ms_per_page": round(statistics.median([r["pixlearn_median_ms"] for r in rendered]), 1),
        "peer_median_ms_per_page": round(statistics.median([r["peer_median_ms"] for r in rendered]), 1),
        "time_ratio": round(sum_peer / sum_ours, 3) if sum_ours else float("nan"),
        "median_of_page_ratios": round(statistics.median([r["ratio"] for r in rendered]), 3),
        "pixlearn_own_ms_per_page": round(statistics.median([r["pixlearn_own_ms"] for r in rendered]), 3),
        "target_ratio": 0.95,
    }
    summary["meets_target"] = summary["time_ratio"] >= 0.95
    if shot:
        summary["photos_with_the_same_pieces"] = f"{sum(r['same_pieces'] for r in shot)}/{len(shot)}"
        summary["photos_time_ratio"] = round(sum(r["peer_median_ms"] for r in shot) / sum(r["pixlearn_median_ms"] for r in shot), 3)
    table = [
        {"side": "pixlearn read_text", "CER": summary["pixlearn_cer"], "CER_no_space": summary["pixlearn_cer_no_space"],
         "median_ms_per_page": summary["pixlearn_median_ms_per_page"], "time_ratio": "1.000"},
        {"side": "RapidOCR() direct", "CER": summary["peer_cer"], "CER_no_space": summary["peer_cer_no_space"],
         "median_ms_per_page": summary["peer_median_ms_per_page"], "time_ratio": f"{summary['time_ratio']:.3f}"},
    ]
    print_table(table)
    print(f"pages with the same pieces: {summary['pages_with_the_same_pieces']}; time ratio = peer time / pixlearn time "
          f"(target >= 0.95): {summary['time_ratio']}; pixlearn's own work: {summary['pixlearn_own_ms_per_page']} ms "
          "per page (the models' answer replayed)", file=sys.stderr)
    results = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "onnxruntime": ort.__version__,
                    "rapidocr_onnxruntime": getattr(rapidocr_onnxruntime, "__version__", "unknown"), "cpus": os.cpu_count(),
                    "note": "CPU only; other work may have run on the machine at the same time (see the load averages)"},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "threads": {"pixlearn": threads, "peer": threads},
        "load_average_before": [round(v, 2) for v in load0], "load_average_after": [round(v, 2) for v in load1],
        "peer": "RapidOCR(intra_op_num_threads=T)(bgr_array), rapidocr_onnxruntime's documented call, its default config",
        "cer": "Levenshtein distance / reference length, summed over pages; pieces joined by spaces in each side's order",
        "ratio": "peer median time / pixlearn median time, summed over pages (>= 1: pixlearn as fast or faster)",
        "summary": summary, "cases": per_case,
    }
    return write_results(args.json, results)


if __name__ == "__main__":
    sys.exit(main())
