"""Builds the C postprocessing core (csrc/*.c) and its Cython wrapper.

Metadata lives in pyproject.toml; this file only declares the extension.
Typed memoryviews need no NumPy headers, so the build needs only a C99
compiler and Cython >= 3.

On CPython 3.11+ the extension is built against the stable ABI
(``Py_LIMITED_API=0x030B0000``; Cython supports memoryviews there from 3.1),
so one ``cp311-abi3`` wheel per architecture serves Python 3.11 and later.
Older Pythons (3.10) get an ordinary version-specific build.
"""
import glob
import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
C_SOURCES = sorted(
    os.path.relpath(p, HERE)
    for p in glob.glob(os.path.join(HERE, "csrc", "ep_*.c"))
)

if sys.platform == "win32":
    compile_args = ["/O2"]
else:
    # Portable code generation only: no -march=native, so wheels run on any
    # CPU of the target architecture (x86-64 baseline, aarch64).
    # -fno-trapping-math: no code here reads FP exception flags, and it lets
    # compilers vectorize branch-free selects (the box NMS sweep).
    compile_args = ["-std=c99", "-O3", "-fno-math-errno", "-fno-trapping-math", "-Wall", "-Wextra"]

# The stable ABI of CPython 3.11: the first with the buffer protocol in it,
# which typed memoryviews need.
LIMITED_API = sys.implementation.name == "cpython" and sys.version_info >= (3, 11)
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if LIMITED_API:
    macros.append(("Py_LIMITED_API", "0x030B0000"))

core = Extension(
    "edgepose._core",
    sources=["edgepose/_core.pyx", *C_SOURCES],
    include_dirs=["csrc"],
    extra_compile_args=compile_args,
    define_macros=macros,
    py_limited_api=LIMITED_API,
)

setup(
    ext_modules=cythonize(
        [core],
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
    # The wheel's tag: cp311-abi3 (setuptools names the .so *.abi3.so).
    options={"bdist_wheel": {"py_limited_api": "cp311"}} if LIMITED_API else {},
)
