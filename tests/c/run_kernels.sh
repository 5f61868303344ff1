#!/bin/sh
# Build and run the C kernel tests (tests/c/test_kernels.c) against
# csrc/{forward,backward,population,status}.c only -- no storage code, no
# Python.  Four flavours: serial and OpenMP, each plain -O3 and under
# -fsanitize=address,undefined.  Usage: sh tests/c/run_kernels.sh [bench]
#   bench: also build tests/c/bench_kernels (OpenMP, -O3) and run it.
set -eu
cd "$(dirname "$0")/../.."
OUT=${OUT:-build/ctest}
mkdir -p "$OUT"
CC=${CC:-gcc}
WARN="-std=c11 -Wall -Wextra -Werror ${CFLAGS_EXTRA:-}"
SRC="csrc/forward.c csrc/backward.c csrc/population.c csrc/status.c"

run() { # name, flags...
    name=$1
    shift
    echo "== test_kernels [$name]"
    $CC $WARN "$@" -Icsrc -o "$OUT/test_kernels_$name" tests/c/test_kernels.c $SRC -lm
    OMP_NUM_THREADS=3 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$OUT/test_kernels_$name"
}

SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
run serial -O3
run openmp -O3 -fopenmp
run serial_san -O1 -g $SAN
run openmp_san -O1 -g -fopenmp $SAN
# The baseline (SSE2) clone alone, to check the multiversioned code paths agree.
run openmp_noclones -O3 -fopenmp -DCONNECTOME_NO_CLONES
# The plain-C fallback (no GNU vector extension), and an -march=native build.
run serial_novec -O2 -DCONNECTOME_NO_VECTOR_EXT -DCONNECTOME_NO_CLONES
run openmp_native -O3 -fopenmp -march=native

if [ "${1:-}" = bench ]; then
    $CC $WARN -O3 -fopenmp -Icsrc -o "$OUT/bench_kernels" tests/c/bench_kernels.c $SRC -lm
    "$OUT/bench_kernels"
fi
echo "all kernel tests passed"
