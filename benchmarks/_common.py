"""What the benchmarks share: threads, where the real models are, timing
loops, percentiles, the environment for the JSON, tables and JSON output.

Import it before NumPy when the benchmark runs on one thread: nothing here
imports NumPy or OpenCV at module level, so :func:`use_one_thread` can still
set the thread variables before their pools start::

    import sys
    from pathlib import Path

    REPO_ROOT = Path(__file__).resolve().parent.parent
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))

    from benchmarks._common import use_one_thread  # noqa: E402

    use_one_thread()
    import numpy as np  # noqa: E402
"""
from __future__ import annotations

import datetime
import gc
import hashlib
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The thread-count variables of OpenMP, OpenBLAS and MKL.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

#: What ``environment()["threads"]["edgepose"]`` says by default.
KERNEL_THREADS = "single-threaded C kernels, called from one Python thread"


# --------------------------------------------------------------------------
# Threads and cores
# --------------------------------------------------------------------------

def use_one_thread() -> None:
    """One thread for every library: sets :data:`THREAD_VARS` to 1 (call it
    before NumPy is imported), then ``cv2.setNumThreads(1)``.
    OPENBLAS_CORETYPE is deliberately left as the machine has it."""
    for var in THREAD_VARS:
        os.environ[var] = "1"
    import cv2

    cv2.setNumThreads(1)


def usable_cores() -> int:
    """The cores this process may run on (its affinity), else the CPU count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


# --------------------------------------------------------------------------
# The real models and data
# --------------------------------------------------------------------------

def shared_path() -> Path:
    """``EDGEPOSE_SHARED``, else ``../shared`` beside the repository (unchecked)."""
    env = os.environ.get("EDGEPOSE_SHARED")
    return Path(env) if env else REPO_ROOT.parent / "shared"


def shared_dir() -> Path:
    """:func:`shared_path`, which must hold ``models/``; exits with a message
    naming the folder (and EDGEPOSE_SHARED) otherwise."""
    root = shared_path()
    if not (root / "models").is_dir():
        sys.exit(f"error: the real models were not found in {root}/models; set EDGEPOSE_SHARED "
                 "to the folder that holds models/ and data/.")
    return root


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------
# Timing and statistics
# --------------------------------------------------------------------------

def run_loops(fn: Callable[[], Any], loops: int) -> int:
    """Nanoseconds taken by ``loops`` calls of fn."""
    t0 = time.perf_counter_ns()
    for _ in itertools.repeat(None, loops):
        fn()
    return time.perf_counter_ns() - t0


def calibrate(fn: Callable[[], Any], min_sample_ns: int, warmup_ns: int) -> int:
    """Warms fn up for warmup_ns (and at least 3 calls); returns calls per sample."""
    calls, spent = 0, 0
    while calls < 3 or spent < warmup_ns:
        spent += run_loops(fn, 1)
        calls += 1
    loops = 1
    while True:
        elapsed = run_loops(fn, loops)
        if elapsed >= min_sample_ns:
            return loops
        # Aim 20% above the minimum, at least doubling.
        loops = max(2 * loops, math.ceil(loops * 1.2 * min_sample_ns / max(elapsed, 1)))


def alternate_samples(sides: Mapping[str, Callable[[], Any]], repeat: int, min_sample_ns: int,
                      warmup_ns: int) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Times each side: calibrated calls per sample, then ``repeat`` samples
    per side with the garbage collector off, the sides alternating (which
    goes first swaps every sample, so drift affects both alike).

    Returns:
        ``(ns per call of every sample, calls per sample)``, both by side.
    """
    loops = {name: calibrate(fn, min_sample_ns, warmup_ns) for name, fn in sides.items()}
    samples: dict[str, list[float]] = {name: [] for name in sides}
    order = list(sides)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(repeat):
            for name in (order if i % 2 == 0 else order[::-1]):
                samples[name].append(run_loops(sides[name], loops[name]) / loops[name])
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples, loops


def check_sampling_args(parser: Any, args: Any, *, quick_repeat: int, repeat: int) -> None:
    """The sampling options of the kernel benchmarks: fills in ``--repeat``
    (``quick_repeat`` with ``--quick``, else ``repeat``) and checks
    ``--repeat``, ``--input-sets`` and ``--min-sample-ms``, exiting through
    ``parser.error`` (status 2)."""
    if args.repeat is None:
        args.repeat = quick_repeat if args.quick else repeat
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    if args.input_sets < 1:
        parser.error(f"--input-sets must be >= 1, got {args.input_sets}")
    if args.min_sample_ms <= 0:
        parser.error(f"--min-sample-ms must be > 0, got {args.min_sample_ms}")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (NumPy's linear interpolation), as a float."""
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def p50(values: Sequence[float]) -> float:
    return percentile(values, 50)


def p90(values: Sequence[float]) -> float:
    return percentile(values, 90)


def sample_stats(ns: Sequence[float], scale: float, unit: str) -> dict[str, float]:
    """p50, p90 and min of per-call nanoseconds, divided by ``scale``, keyed
    ``p50_<unit>``, ``p90_<unit>``, ``min_<unit>``."""
    import numpy as np

    a = np.asarray(ns, dtype=np.float64)
    return {f"p50_{unit}": float(np.percentile(a, 50)) / scale,
            f"p90_{unit}": float(np.percentile(a, 90)) / scale,
            f"min_{unit}": float(a.min()) / scale}


# --------------------------------------------------------------------------
# The environment, for the JSON
# --------------------------------------------------------------------------

def _cpuinfo() -> str | None:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return None


def cpu_model() -> str:
    text = _cpuinfo()
    if text is None:
        return platform.processor() or "unknown"
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
        if fields.get(key):
            return fields[key]
    if fields.get("CPU part"):  # aarch64 without a model name
        return f"CPU implementer {fields.get('CPU implementer', '?')} part {fields['CPU part']}"
    return platform.processor() or "unknown"


def cpu_simd_flags() -> list[str]:
    """The SIMD extensions /proc/cpuinfo lists (edgepose picks AVX2 at run time)."""
    text = _cpuinfo()
    if text is None:
        return []
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
            break
    known = ("sse2", "sse4_1", "sse4_2", "avx", "avx2", "fma", "avx512f", "asimd", "sve")
    return [f for f in known if f in flags]


def git_revision() -> str | None:
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{rev}{'-dirty' if dirty else ''}" if rev else None


def blas_info() -> Any:
    """The thread pools threadpoolctl sees, else NumPy's build-time BLAS."""
    import numpy as np

    try:
        import threadpoolctl
        return [{k: info.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
                for info in threadpoolctl.threadpool_info()]
    except ImportError:
        pass
    try:
        return np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:
        return None


def core_build() -> dict[str, Any]:
    """Which compiled C core was timed (it can be older than csrc/)."""
    from edgepose import _core
    path = Path(_core.__file__)
    built = path.stat().st_mtime
    newer = sorted(p.name for p in (REPO_ROOT / "csrc").glob("*.[ch]")
                   if p.stat().st_mtime > built)
    return {
        "file": str(path),
        "sha256": sha256(path),
        "modified": datetime.datetime.fromtimestamp(
            built, datetime.timezone.utc).isoformat(timespec="seconds"),
        "sources_newer_than_build": newer,
    }


def dist_version(name: str) -> str | None:
    """The installed version of a distribution, or None."""
    from edgepose.versions import installed_version

    return installed_version(name)


def environment(edgepose_threads: str = KERNEL_THREADS) -> dict[str, Any]:
    """Versions, CPU and threads, for a benchmark's JSON document.

    Args:
        edgepose_threads: what ``["threads"]["edgepose"]`` says about how
            edgepose itself was run.
    """
    import cv2
    import numpy as np

    import edgepose

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "edgepose": getattr(edgepose, "__version__", None) or dist_version("edgepose"),
        "edgepose_git": git_revision(),
        "edgepose_core": core_build(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_simd": cpu_simd_flags(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "threads": {
            **{var: os.environ.get(var) for var in THREAD_VARS},
            "cv2_num_threads": cv2.getNumThreads(),
            "edgepose": edgepose_threads,
            "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
            "blas": blas_info(),
        },
    }


# --------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------

def fmt_time(us: float) -> str:
    """Microseconds, in us or ms with three significant digits or so."""
    if us >= 1e3:
        return f"{us / 1e3:.2f} ms"
    if us >= 100:
        return f"{us:.0f} us"
    if us >= 10:
        return f"{us:.1f} us"
    return f"{us:.2f} us"


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]],
                 right: Iterable[int]) -> str:
    """A plain-text table: a header, a rule of dashes, then the rows; the
    columns numbered in ``right`` are right-aligned, the others left."""
    right = set(right)
    widths = [max(len(str(row[i])) for row in [*rows, header]) for i in range(len(header))]

    def line(cells: Sequence[Any]) -> str:
        return "  ".join((str(v).rjust(w) if i in right else str(v).ljust(w))
                         for i, (v, w) in enumerate(zip(cells, widths))).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (a document's ``created``)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    """Writes ``doc`` as indented JSON (creating the folder) and says so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {path}")
