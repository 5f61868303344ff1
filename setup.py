"""Build the C core (csrc/*.c, a static library) and the Cython binding connectome._core.

Metadata lives in pyproject.toml; this file only describes the compiled parts.

    pip install .                                  # wheel build in an isolated env
    python setup.py build_clib build_ext --inplace # dev loop (build_ext alone also works)

Environment switches (read at build time, "0" or unset means off):
    CONNECTOME_DEBUG=1     -O0 -g, assertions, Cython boundscheck/initializedcheck on
    CONNECTOME_SANITIZE=1  -fsanitize=address,undefined on the core and the extension
                           (run Python with LD_PRELOAD of libasan/libubsan; see tools/sanitize.sh)
    CONNECTOME_OPENMP=0    build serial even if the compiler supports -fopenmp
    CONNECTOME_MARCH=1     -march=native (opt-in: the result only runs on this kind of CPU)
    CONNECTOME_WERROR=0    keep csrc warnings as warnings (escape hatch for a newer compiler
                           that warns where gcc 12 did not; CI and development keep -Werror)
"""

import hashlib
import os
import sys
import tempfile
from glob import glob

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_clib import build_clib
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError, LinkError


def _env_flag(name: str, default: str = "0") -> bool:
    return os.environ.get(name, default).strip() not in ("", "0")


DEBUG = _env_flag("CONNECTOME_DEBUG")
SANITIZE = _env_flag("CONNECTOME_SANITIZE")
OPENMP = _env_flag("CONNECTOME_OPENMP", "1")
MARCH = _env_flag("CONNECTOME_MARCH")
WERROR = _env_flag("CONNECTOME_WERROR", "1")

# Every path below is relative to the project root, wherever setup.py is run from.
os.chdir(os.path.dirname(os.path.abspath(__file__)))
C_SOURCES = sorted(glob("csrc/*.c"))
C_HEADERS = sorted(glob("csrc/*.h"))

# Flags shared by the core and the extension.  Python's own CFLAGS come first
# (-O3 -DNDEBUG -g ...), so ours override them.
common = ["-O0", "-g", "-UNDEBUG"] if DEBUG else ["-O3"]
if MARCH:
    common.append("-march=native")
ldflags = []
if SANITIZE:
    common += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    ldflags += ["-fsanitize=address,undefined"]
# The core is ours, so it must compile warning-free; Cython's generated C is not held to that.
core_cflags = ["-std=c11", "-Wall", "-Wextra", *(["-Werror"] if WERROR else []), *common]
ext_cflags = list(common)

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "initializedcheck": DEBUG,
    "wraparound": False,
    "cdivision": True,
    "embedsignature": True,
    "autotestdict": False,
}

# Everything that changes the compiled output.  The core's objects and the
# extension depend on this stamp file, so switching e.g. CONNECTOME_SANITIZE in a
# tree that already has a build/ recompiles instead of silently reusing the old
# objects (build_clib and build_ext both skip what looks up to date by mtime).
FLAVOR = repr((sys.version, core_cflags, ext_cflags, ldflags, OPENMP, directives))
STAMP = os.path.join("build", "connectome-flavor.txt")


def _write_stamp() -> None:
    os.makedirs(os.path.dirname(STAMP), exist_ok=True)
    try:
        with open(STAMP) as f:
            if f.read() == FLAVOR:
                return
    except OSError:
        pass
    with open(STAMP, "w") as f:
        f.write(FLAVOR)


_OMP_TEST = r"""
#include <omp.h>
int main(void) {
    int n = 0;
#pragma omp parallel for reduction(+ : n)
    for (int i = 0; i < 4; i++) n += omp_get_num_threads() > 0;
    return n == 4 ? 0 : 1;
}
"""
_openmp_cache: dict[str, list[str]] = {}


def openmp_flags(compiler) -> list[str]:
    """["-fopenmp"] if this compiler compiles and links an OpenMP program, else [] (and warn)."""
    if not OPENMP:
        return []
    key = " ".join(getattr(compiler, "compiler_so", None) or [type(compiler).__name__])
    if key not in _openmp_cache:
        flags = ["-fopenmp"]
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "omp_check.c")
            with open(src, "w") as f:
                f.write(_OMP_TEST)
            try:
                objs = compiler.compile([src], output_dir=tmp, extra_postargs=flags)
                compiler.link_executable(objs, "omp_check", output_dir=tmp, extra_postargs=flags)
            except (CompileError, LinkError) as exc:
                print(
                    f"WARNING: the compiler cannot build with -fopenmp ({exc}); "
                    "building connectome without OpenMP (kernels run on one thread)",
                    file=sys.stderr,
                )
                flags = []
        _openmp_cache[key] = flags
    return _openmp_cache[key]


class BuildClib(build_clib):
    """Compile csrc/*.c into the static library cx_core (-fPIC comes from Python's CCSHARED)."""

    def run(self):
        _write_stamp()
        super().run()

    def build_libraries(self, libraries):
        omp = openmp_flags(self.compiler)
        libraries = [(name, {**info, "cflags": [*info.get("cflags", []), *omp]}) for name, info in libraries]
        super().build_libraries(libraries)


class BuildExt(build_ext):
    """Build the core first (so `build_ext --inplace` alone is enough), then the extension."""

    def run(self):
        self.run_command("build_clib")
        clib = self.get_finalized_command("build_clib")
        archive = os.path.join(clib.build_clib, clib.compiler.library_filename("cx_core"))
        for e in self.extensions:  # relink when the core archive was rebuilt
            if archive not in e.depends:
                e.depends.append(archive)
        super().run()

    def build_extension(self, ext):
        omp = openmp_flags(self.compiler)
        ext.extra_compile_args = [*ext.extra_compile_args, *omp]
        ext.extra_link_args = [*ext.extra_link_args, *omp]
        # The static core goes before libm so the linker resolves its math calls.
        ext.libraries = [*ext.libraries, "cx_core", "m"]
        super().build_extension(ext)


core_lib = (
    "cx_core",
    {
        "sources": C_SOURCES,
        "include_dirs": ["csrc"],
        "cflags": core_cflags,
        # Recompile every object when a header or the build flavour changes.
        "obj_deps": {"": [*C_HEADERS, STAMP]},
    },
)

ext = Extension(
    "connectome._core",
    ["connectome/_core.pyx"],
    include_dirs=["csrc"],
    extra_compile_args=ext_cflags,
    extra_link_args=ldflags,
)
(ext,) = cythonize(
    [ext],
    compiler_directives=directives,
    # Generated C per directive set (cythonize only compares mtimes), so e.g. a
    # debug build never reuses a release _core.c.
    build_dir=os.path.join("build", "cython-" + hashlib.sha1(repr(directives).encode()).hexdigest()[:10]),
    quiet=True,
)
# Rebuild when the public header or the build flavour changes (set after
# cythonize, which would otherwise copy these files into its build_dir);
# BuildExt adds the core archive itself.
ext.depends += [*C_HEADERS, STAMP]

setup(
    libraries=[core_lib],
    ext_modules=[ext],
    cmdclass={"build_clib": BuildClib, "build_ext": BuildExt},
)
