"""Search by image: retrieval quality on CIFAR-10 and query latency of the index types (CPU).

Usage:
  python benchmarks/bench_search.py [DATA] [--train-limit N] [--val-limit N] [--sizes 10000,1000000]
                                    [--dim 1280] [--large-dim 128] [--large-hnsw-m 8] [--skip-retrieval]
                                    [--skip-latency] [--out PATH]
  smoke:  python benchmarks/bench_search.py --train-limit 500 --val-limit 100 --sizes 10000,50000

1. Retrieval on DATA (default ../shared/datasets/cifar10): the index is train/ (5000 JPEGs, 10 classes), the
   queries are val/ (1000); a hit is relevant when it has the query's class. ``--train-limit`` / ``--val-limit``
   take the first N // 10 files of each class. Rows, each searched exactly (flat index, top 10):

   (a) pixlearn CNN embeddings: tf_efficientnet_lite0 with the shared ImageNet weights (PIXLEARN_WEIGHTS defaults to
       ../shared/weights), built through pixlearn's own path (``Index.build(..., kind="flat")``), queries embedded
       with the index's embedder and searched with ``Index.search_vectors``; 1280-d, cosine;
   (b) colour histogram: pixlearn.classic ``color_hist`` (joint 8x8x8 HSV at 32 px), L2-normalised, FAISS
       ``IndexFlatIP`` (cosine);
   (c) HOG: pixlearn.classic ``hog`` (9 orientations, 8x8 cells, 2x2 blocks, at 64 px), L2-normalised,
       ``IndexFlatIP``;
   (d) phash, for the record: pixlearn's ``phash`` index (64-bit codes, exact Hamming; ties broken by FAISS).

   Metrics, over the queries, with rel_i = 1 when the i-th hit has the query's class and R the number of indexed
   images of that class:
   - ``mAP@10``: mean of AP@10 = sum_{i<=10} P@i * rel_i / min(R, 10) (P@i: precision of the first i hits) -- the
     truncated average precision normalised by the best achievable count (as ml_metrics' ``apk``);
   - ``recall@10``: Recall@K as deep metric learning reports it (Song et al. 2016, CUB/SOP): the share of queries
     with at least one relevant image in the top 10;
   - ``precision@10`` (relevant share of the 10 hits) and ``ir_recall@10`` (relevant hits / R: the IR definition,
     at most 10 / 500 = 0.02 here, reported only to name it).

2. Latency on synthetic vectors: for each size in ``--sizes``, unit vectors from a seeded mixture of 1024 clusters
   (a random unit centre plus Gaussian noise of norm 0.75, L2-normalised; real embeddings cluster) of dimension
   ``--dim`` (1280, tf_efficientnet_lite0's) -- or ``--large-dim`` from 200,000 vectors on, where
   ``--large-hnsw-m`` also replaces HNSW's M 32: building HNSW over a million 1280-d vectors takes far longer than
   5 minutes on this 2-core CPU (smoke runs, shared machine: 50,000 x 1280-d, M 32 built in 134 s; 200,000 x 128-d,
   M 16 in 105 s; 200,000 x 64-d, M 8 in 71 s at load 5.9), so 1M rows use d 128 and M 8 (about 4-7 minutes
   for HNSW, depending on the load); each row states the d and M it used. The whole default run (6,000 CNN
   embeddings, 10k and 1M) takes roughly 20-30 minutes. The vectors are
   generated in seeded chunks and regenerated for each index, so that one copy is in memory (peak about
   n x d x 4 bytes plus HNSW's links: 1M x 128-d is 0.5 GB). Indexes are made by ``pixlearn.search.index.
   make_faiss_index``, the factory the search index uses (IVF nlist ~ 4 sqrt(n), trained on the vectors).
   Queries are 1000 fresh vectors from the same mixture. Per index: build time (IVF: training + adding), median and p99 of
   single-vector queries (top 10), batch-of-100 throughput (queries/s), and for HNSW (efSearch 64, 256) and IVF
   (nprobe 8, 32, 128) ``recall@10 vs flat``: the mean share of the exact top 10 (flat) found in the approximate
   top 10. (Uniform random vectors, where all distances are nearly equal, would be the hardest case for approximate
   search; the smoke runs on them gave recalls of 0.13-0.43.)

Results go to benchmarks/results/search.json (benchmarks/_timing.write_results) with load averages before and after:
the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import print_table, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MODEL = "tf_efficientnet_lite0"
K = 10
LARGE_FROM = 200_000
CHUNK = 50_000


# ---------------------------------------------------------------------------------------------- retrieval
def split_files(folder: Path, limit: int | None) -> tuple[list[Path], np.ndarray, list[str]]:
    """The images of ``folder/<class>/``, the first ``limit // classes`` of each class when ``limit`` is given."""
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    paths: list[Path] = []
    labels: list[int] = []
    for c, name in enumerate(classes):
        files = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if limit is not None:
            files = files[: max(1, limit // len(classes))]
        paths += files
        labels += [c] * len(files)
    return paths, np.asarray(labels), classes


def retrieval_metrics(hits: np.ndarray, query_labels: np.ndarray, index_labels: np.ndarray) -> dict[str, float]:
    """mAP@10, recall@10 (>= 1 relevant in the top 10), precision@10 and IR recall@10 of (Q, 10) hit ids."""
    rel = (index_labels[hits] == query_labels[:, None]).astype(np.float64)
    rel[hits < 0] = 0.0
    r_total = np.bincount(index_labels, minlength=int(index_labels.max()) + 1)[query_labels]
    prec_at_i = np.cumsum(rel, axis=1) / np.arange(1, K + 1)
    ap = (prec_at_i * rel).sum(axis=1) / np.minimum(r_total, K)
    return {"mAP@10": round(float(ap.mean()), 4), "recall@10": round(float((rel.sum(axis=1) > 0).mean()), 4),
            "precision@10": round(float(rel.mean()), 4), "ir_recall@10": round(float((rel.sum(axis=1) / r_total).mean()), 5)}


def _flat_search(train: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, float]:
    import faiss

    index = faiss.IndexFlatIP(train.shape[1])
    index.add(np.ascontiguousarray(train))
    t0 = time.perf_counter()
    _, ids = index.search(np.ascontiguousarray(queries), K)
    return ids, time.perf_counter() - t0


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _classic(train: list[Path], val: list[Path], features: str, img_size: int) -> tuple[np.ndarray, np.ndarray, float]:
    from pixlearn.classic.features import featurize_files

    t0 = time.perf_counter()
    xt, ok_t, bad_t = featurize_files(train, features=features, img_size=img_size, workers=1, progress=True)
    xv, ok_v, bad_v = featurize_files(val, features=features, img_size=img_size, workers=1, progress=True)
    if bad_t or bad_v:
        raise SystemExit(f"error: {len(bad_t) + len(bad_v)} unreadable images ({(bad_t + bad_v)[:3]})")
    return _normalised(xt), _normalised(xv), time.perf_counter() - t0


def run_retrieval(data: Path, train_limit: int | None, val_limit: int | None) -> dict[str, Any]:
    from pixlearn.search.embed import embed_files
    from pixlearn.search.index import Index

    train, y_train, classes = split_files(data / "train", train_limit)
    val, y_val, _ = split_files(data / "val", val_limit)
    print(f"retrieval: {len(train)} indexed (train/), {len(val)} queries (val/), {len(classes)} classes; "
          f"load average {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    rows: list[dict[str, Any]] = []

    # (a) pixlearn CNN embeddings, through the index's own build path
    t0 = time.perf_counter()
    index = Index.build(train, MODEL, kind="flat", progress=True)
    build_s = time.perf_counter() - t0
    pos = {str(p.resolve()): i for i, p in enumerate(train)}
    t0 = time.perf_counter()
    qv, ok, errors = embed_files(index.embedder, val, progress=True)
    embed_q_s = time.perf_counter() - t0
    if errors or len(index) != len(train):
        raise SystemExit(f"error: unreadable or duplicate images (index {len(index)} of {len(train)}, queries {errors})")
    t0 = time.perf_counter()
    found = index.search_vectors(qv, top_k=K)
    search_s = time.perf_counter() - t0
    ids = np.asarray([[pos[r["path"]] for r in rows_q] + [-1] * (K - len(rows_q)) for rows_q in found])
    rows.append({"method": f"(a) pixlearn {MODEL}", "dim": index.model["dim"], "metric": "cosine",
                 **retrieval_metrics(ids, y_val, y_train), "index_build_s": round(build_s, 1),
                 "query_features_s": round(embed_q_s, 1), "search_s": round(search_s, 3)})

    # (b) colour histogram and (c) HOG, same exact cosine search
    for label, features, size in (("(b) colour histogram (HSV 8x8x8)", "color_hist", 32), ("(c) HOG", "hog", 64)):
        xt, xv, feat_s = _classic(train, val, features, size)
        ids, search_s = _flat_search(xt, xv)
        rows.append({"method": label, "dim": int(xt.shape[1]), "metric": "cosine", **retrieval_metrics(ids, y_val, y_train),
                     "index_build_s": round(feat_s, 1), "query_features_s": "-", "search_s": round(search_s, 3)})

    # (d) phash, through pixlearn's index
    t0 = time.perf_counter()
    hindex = Index.build(train, "phash", progress=True)
    build_s = time.perf_counter() - t0
    hv, _, _ = embed_files(hindex.embedder, val, progress=True)
    t0 = time.perf_counter()
    found = hindex.search_vectors(hv, top_k=K)
    search_s = time.perf_counter() - t0
    ids = np.asarray([[pos[r["path"]] for r in rows_q] + [-1] * (K - len(rows_q)) for rows_q in found])
    rows.append({"method": "(d) phash (Hamming)", "dim": 64, "metric": "hamming", **retrieval_metrics(ids, y_val, y_train),
                 "index_build_s": round(build_s, 1), "query_features_s": "-", "search_s": round(search_s, 3)})
    chance = float(np.mean([np.mean(y_train == c) for c in y_val]))
    return {"data": str(data.resolve()), "indexed": len(train), "queries": len(val), "classes": classes,
            "chance_precision": round(chance, 4), "rows": rows}


# ---------------------------------------------------------------------------------------------- latency
#: The synthetic collections are a seeded mixture of this many clusters: real embeddings cluster (by class, by
#: scene), and uniform random vectors, where all distances are nearly equal, make every approximate index look worse
#: than it is on real data.
CLUSTERS = 1024
#: The spread of a vector around its cluster centre (norm of the noise added to a unit centre, before L2 normalising).
SPREAD = 0.75


def _mixture(rng: np.random.Generator, size: int, d: int, centres: np.ndarray) -> np.ndarray:
    noise = rng.standard_normal((size, d), dtype=np.float32) * np.float32(SPREAD / np.sqrt(d))
    return _normalised(centres[rng.integers(0, len(centres), size)] + noise)


def _centres(d: int, seed: int) -> np.ndarray:
    return _normalised(np.random.default_rng([seed, d, 7]).standard_normal((CLUSTERS, d), dtype=np.float32))


def _chunks(n: int, d: int, seed: int):
    """Unit vectors from the seeded mixture, ``CHUNK`` rows at a time, the same for the same (n, d, seed)."""
    centres = _centres(d, seed)
    for start in range(0, n, CHUNK):
        yield _mixture(np.random.default_rng([seed, start]), min(CHUNK, n - start), d, centres)


def _latency(index: Any, queries: np.ndarray, params: Any, singles: int) -> dict[str, float]:
    times = []
    for q in queries[:singles]:
        t0 = time.perf_counter()
        index.search(q[None], K, params=params)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    batches = max(1, len(queries) // 100)
    for b in range(batches):
        index.search(queries[b * 100:(b + 1) * 100], K, params=params)
    batch_s = time.perf_counter() - t0
    return {"single_median_ms": round(float(np.median(times)) * 1e3, 3),
            "single_p99_ms": round(float(np.percentile(times, 99)) * 1e3, 3),
            "batch100_qps": round(batches * 100 / batch_s, 1)}


def _recall_vs_flat(ids: np.ndarray, truth: np.ndarray) -> float:
    return round(float(np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, truth)])), 4)


def run_latency(sizes: list[int], dim: int, large_dim: int, large_m: int, n_queries: int, seed: int) -> list[dict[str, Any]]:
    import faiss

    from pixlearn.search.index import ivf_nlist, make_faiss_index

    rows: list[dict[str, Any]] = []
    for n in sizes:
        d, m = (large_dim, large_m) if n >= LARGE_FROM else (dim, 32)
        queries = _mixture(np.random.default_rng([seed, 10**9]), n_queries, d, _centres(d, seed))
        singles = min(n_queries, 1000)
        print(f"latency: {n} vectors, d {d}; load average {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
        base = {"vectors": n, "dim": d, "queries": n_queries, "load1": round(os.getloadavg()[0], 2)}

        t0 = time.perf_counter()
        flat = make_faiss_index("flat", d)
        for x in _chunks(n, d, seed):
            flat.add(x)
        build = time.perf_counter() - t0
        _, truth = flat.search(queries, K)
        rows.append({**base, "index": "flat", "params": "exact", "build_s": round(build, 2),
                     **_latency(flat, queries, None, singles), "recall@10_vs_flat": 1.0})
        del flat

        t0 = time.perf_counter()
        hnsw = make_faiss_index("hnsw", d, hnsw_m=m)
        for x in _chunks(n, d, seed):
            hnsw.add(x)
        build = time.perf_counter() - t0
        print(f"  hnsw M {m}: built in {build:.1f} s", file=sys.stderr, flush=True)
        for ef in (64, 256):
            params = faiss.SearchParametersHNSW(efSearch=ef)
            _, ids = hnsw.search(queries, K, params=params)
            rows.append({**base, "index": "hnsw", "params": f"M {m}, efConstruction 80, efSearch {ef}",
                         "build_s": round(build, 2), **_latency(hnsw, queries, params, singles),
                         "recall@10_vs_flat": _recall_vs_flat(ids, truth)})
        del hnsw

        # IVF, as the index makes it: trained on the whole collection (k-means samples 64 per list)
        t0 = time.perf_counter()
        train = np.concatenate(list(_chunks(n, d, seed))) if n <= 4 * CHUNK else _sample(n, d, seed, 64 * ivf_nlist(n))
        ivf = make_faiss_index("ivf", d, train=train)
        del train
        for x in _chunks(n, d, seed):
            ivf.add(x)
        build = time.perf_counter() - t0
        print(f"  ivf nlist {ivf.nlist}: built in {build:.1f} s", file=sys.stderr, flush=True)
        for nprobe in (8, 32, 128):
            params = faiss.SearchParametersIVF(nprobe=min(nprobe, ivf.nlist))
            _, ids = ivf.search(queries, K, params=params)
            rows.append({**base, "index": "ivf", "params": f"nlist {ivf.nlist}, nprobe {nprobe}",
                         "build_s": round(build, 2), **_latency(ivf, queries, params, singles),
                         "recall@10_vs_flat": _recall_vs_flat(ids, truth)})
        del ivf
    return rows


def _sample(n: int, d: int, seed: int, size: int) -> np.ndarray:
    """``size`` vectors drawn evenly from the chunks (what k-means would sample: the index trains on at most 64 per
    list), without holding the collection twice."""
    per_chunk = int(np.ceil(size / int(np.ceil(n / CHUNK))))
    return np.concatenate([x[:per_chunk] for x in _chunks(n, d, seed)])[:size]


# ---------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default=str(SHARED / "datasets" / "cifar10"))
    parser.add_argument("--train-limit", type=int, default=None, help="index at most N train/ images (N // 10 per class)")
    parser.add_argument("--val-limit", type=int, default=None, help="query with at most N val/ images")
    parser.add_argument("--sizes", default="10000,1000000", help="comma-separated synthetic collection sizes")
    parser.add_argument("--dim", type=int, default=1280, help="vector dimension below 200,000 vectors")
    parser.add_argument("--large-dim", type=int, default=128, help="vector dimension from 200,000 vectors on")
    parser.add_argument("--large-hnsw-m", type=int, default=8, help="HNSW M from 200,000 vectors on")
    parser.add_argument("--queries", type=int, default=1000, help="synthetic queries (single-vector latency on up to 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-retrieval", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "search.json"))
    args = parser.parse_args(argv)

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not all(1_000 <= s <= 2_000_000 for s in sizes) or not 100 <= args.queries <= 10_000:
        print("error: --sizes must be in 1000..2000000 and --queries in 100..10000", file=sys.stderr)
        return 2
    if not (8 <= args.dim <= 4096 and 8 <= args.large_dim <= 4096 and 4 <= args.large_hnsw_m <= 64):
        print("error: --dim/--large-dim must be in 8..4096, --large-hnsw-m in 4..64", file=sys.stderr)
        return 2
    data = Path(args.data)
    if not args.skip_retrieval and (not (data / "train").is_dir() or not (data / "val").is_dir()):
        print(f"error: {data} has no train/ and val/ folders; pass the CIFAR-10 root", file=sys.stderr)
        return 2
    os.environ.setdefault("PIXLEARN_WEIGHTS", str(SHARED / "weights"))

    import faiss

    from pixlearn import __version__

    load0 = os.getloadavg()
    result: dict[str, Any] = {
        "benchmark": "search", "pixlearn": __version__, "faiss": faiss.__version__, "python": sys.version.split()[0],
        "platform": platform.platform(), "cpus": os.cpu_count(), "faiss_threads": faiss.omp_get_max_threads(),
        "weights": os.environ["PIXLEARN_WEIGHTS"], "settings": vars(args), "load_average_before": [round(v, 2) for v in load0],
    }
    if not args.skip_retrieval:
        result["retrieval"] = run_retrieval(data, args.train_limit, args.val_limit)
        print_table([{k: v for k, v in r.items() if not k.startswith("_")} for r in result["retrieval"]["rows"]])
        print(f"chance precision = {result['retrieval']['chance_precision']}")
    if not args.skip_latency:
        result["latency"] = run_latency(sizes, args.dim, args.large_dim, args.large_hnsw_m, args.queries, args.seed)
        print_table(result["latency"])
    result["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    return write_results(Path(args.out), result)


if __name__ == "__main__":
    sys.exit(main())
