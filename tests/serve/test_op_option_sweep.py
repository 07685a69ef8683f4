"""Every option of every op, at extreme values, against the service: only 200 or 400 (413 for a documented
output-size refusal), each answered within seconds, in a server process under a memory cap.

The sweep runs in a child Python process whose address space is capped with ``RLIMIT_AS`` (inherited by the
service's worker processes), so a value that makes an op allocate without bound fails this test with a
MemoryError or a crashed worker (a 5xx) instead of taking the machine down. Before options had documented
ranges, ``gaussian?sigma=1000000`` grew a server to 21 GB and ``erode?ksize=99999999999999999999999`` answered 500.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

#: Address-space cap of the sweep's server process and its workers. A process that imports fastapi, OpenCV,
#: scikit-image and pixlearn and starts the app maps about 0.6 GiB here (a worker about 0.35 GiB); 3 GiB leaves
#: room for any in-range option on a 32x32 image and stops an unbounded allocation early.
MEMORY_CAP = 3 * 1024**3

#: The most seconds one request may take (a 32x32 image; the in-range extremes take milliseconds).
PER_REQUEST_S = 60

#: Values tried on every option (as query strings), besides each numeric option's own min and max.
EXTREMES = ["0", "-1", "-0.5", "0.5", "1e308", "-1e308", "1e400", "inf", "-inf", "nan", str(10**20),
            "99999999999999999999999", "abc", "", "1000000000,1", "3,3,3"]

#: The same spirit in recipe YAML (/v1/process): YAML's own infinities and NaN, huge ints and floats.
YAML_EXTREMES = [".inf", "-.inf", ".nan", "1e308", str(10**20), "-99999999999999999999999", "[1000000000, 1]"]

#: (op, option) pairs whose huge values may be refused as a too-large output (413, routes_ops._guard_size).
OUTPUT_SIZE_OPTIONS = {("resize", "size"), ("pad", "top"), ("pad", "bottom"), ("pad", "left"), ("pad", "right"),
                       ("rotate", "expand")}

CHILD = r'''
import json, sys, time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from pixlearn.io import encode_image
from pixlearn.ops import list_ops
from pixlearn.serve.app import create_app
from pixlearn.serve.settings import ServeSettings


def main():
    storage, extremes, yaml_extremes = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    png = encode_image(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8), "png")
    # one worker process; the service's own deadline (504) is left above the test's per-request limit
    settings = ServeSettings(storage=Path(storage), db=None, api_keys=[], models=[], allowed_roots=[], workers=1,
                             timeout_s=120)
    results = []

    def record(kind, op, option, value, r, t0):
        results.append({"kind": kind, "op": op, "option": option, "value": value, "status": r.status_code,
                        "seconds": round(time.perf_counter() - t0, 3), "body": r.text[:300]})

    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for spec in list_ops():
            for opt in spec.describe_options():
                values = list(extremes)
                if opt.get("min") is not None:
                    values += [str(opt["min"]), str(opt["max"])]
                for value in values:
                    t0 = time.perf_counter()
                    r = client.post(f"/v1/ops/{spec.name}", params={opt["name"]: value},
                                    files={"file": ("p.png", png, "image/png")})
                    record("op", spec.name, opt["name"], value, r, t0)
                for value in yaml_extremes + ([str(opt["max"])] if opt.get("max") is not None else []):
                    t0 = time.perf_counter()
                    recipe = f"steps:\n  - {spec.name}: {{{opt['name']}: {value}}}\n"
                    r = client.post("/v1/process", data={"recipe": recipe}, files={"file": ("p.png", png, "image/png")})
                    record("process", spec.name, opt["name"], value, r, t0)
        b64 = __import__("base64").b64encode(png).decode()
        for value in ["1e400", "-1e400", "1e308", str(10**20), "-1", "0", "\"abc\"", "true", "[5]"]:
            t0 = time.perf_counter()
            body = '{"image": {"b64": "%s"}, "features": "colors", "n_colors": %s}' % (b64, value)
            r = client.post("/v1/analyze", content=body, headers={"content-type": "application/json"})
            record("analyze", "analyze", "n_colors", value, r, t0)
    peak_kib = int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
    print(json.dumps({"results": results, "peak_rss_mib": peak_kib // 1024}))


if __name__ == "__main__":
    main()
'''


def _cap_memory() -> None:  # runs in the child between fork and exec
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux")
def test_every_op_option_at_extreme_values_is_200_or_400_fast_and_bounded(tmp_path: Path) -> None:
    env = {**os.environ, "MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", "PIXLEARN_API_KEY": "",
           "PIXLEARN_CACHE": str(tmp_path / "cache"), "PIXLEARN_WEIGHTS": ""}  # no labeller weights: no torch
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "storage"), json.dumps(EXTREMES), json.dumps(YAML_EXTREMES)],
        capture_output=True, text=True, env=env, preexec_fn=_cap_memory, timeout=900,
    )
    assert proc.returncode == 0, f"the sweep's server process failed (memory cap {MEMORY_CAP >> 30} GiB):\n{proc.stderr[-3000:]}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    results = report["results"]
    assert len(results) > 1500  # every op, every option, every value (39 ops, ~100 options)
    bad = []
    for r in results:
        allowed = {200, 400} | ({413} if (r["op"], r["option"]) in OUTPUT_SIZE_OPTIONS else set())
        if r["status"] not in allowed or r["seconds"] > PER_REQUEST_S:
            bad.append(r)
    assert not bad, f"{len(bad)} answers out of {len(results)} were not 200/400 or too slow, e.g.:\n" + "\n".join(
        json.dumps(b) for b in bad[:15])
    refused = [r for r in results if r["status"] == 400 and r["kind"] == "op" and r["value"] in ("inf", "1e308")]
    assert refused and all("range" in r["body"] or "finite" in r["body"] or "invalid" in r["body"] for r in refused)
    print(f"{len(results)} requests, slowest {max(r['seconds'] for r in results):.2f} s, "
          f"server peak RSS {report['peak_rss_mib']} MiB")
