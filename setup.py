"""Builds the C extension celeris._celeris from src/core (no Python.h) and
src/binding.  CELERIS_SANITIZE=1 builds it with ASan+UBSan (run Python with
LD_PRELOAD of libasan then; see Makefile target pytest-asan)."""
import os
from glob import glob

from setuptools import Extension, setup

sources = sorted(glob("src/core/*.c")) + sorted(glob("src/binding/*.c"))
cflags = ["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-O2",
          "-fvisibility=hidden", "-Wno-missing-field-initializers"]
ldflags = []
if os.environ.get("CELERIS_SANITIZE"):
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1", "-g"]
    cflags += san
    ldflags += san
if os.environ.get("CELERIS_DEBUG"):
    cflags += ["-O0", "-g"]

setup(
    ext_modules=[
        Extension(
            "celeris._celeris",
            sources=sources,
            include_dirs=["src/core", "src/binding"],
            extra_compile_args=cflags,
            extra_link_args=ldflags,
            libraries=["z"],            # permessage-deflate (src/core/ws_deflate.c)
        )
    ]
)
