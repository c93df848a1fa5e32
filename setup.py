"""Builds the C postprocessing core (csrc/*.c) and its Cython wrapper.

Metadata lives in pyproject.toml; this file only declares the extension.
Typed memoryviews need no NumPy headers, so the build needs only a C99
compiler and Cython >= 3.
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

core = Extension(
    "edgepose._core",
    sources=["edgepose/_core.pyx", *C_SOURCES],
    include_dirs=["csrc"],
    extra_compile_args=compile_args,
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
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
    )
)
