#!/bin/sh
# Build and run the storage C test (owner: storage).
#   tests/c/run.sh [episodes]
# Also builds tests/c/test_rewire.c (cx_proj_rewire) in every variant.
# Variants: sanitizers with and without OpenMP (allocation-failure
# injection through -Wl,--wrap), and the separate-payload batch path.
set -e
cd "$(dirname "$0")/../.."
SRC="csrc/proj.c csrc/edit.c csrc/random.c csrc/rewire.c"

WARN="-std=c11 -Wall -Wextra -Werror"
OUT=${TMPDIR:-/tmp}/cx_test_storage.$$
trap 'rm -f "$OUT"' EXIT
# strict -O3 compile of the sources, with and without OpenMP
for omp in "" "-fopenmp"; do
  for f in $SRC; do gcc $WARN -O3 $omp -Icsrc -c "$f" -o /dev/null; done
done
WRAP="-DCX_TEST_WRAP -Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc"
SAN="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
for variant in "-fopenmp" "" "-fopenmp -DCX_STORAGE_TEST_ALT"; do
  echo "== variant: ${variant:-serial}"
  gcc $WARN $SAN $variant $WRAP -Icsrc $SRC tests/c/test_storage.c -lm -o "$OUT"
  "$OUT" "$@"
  # every thread count even on small projections (rewire.c's serial cutoff off)
  gcc $WARN $SAN $variant $WRAP -DRW_SERIAL_SYNAPSES=0 -Icsrc $SRC tests/c/test_rewire.c -lm -o "$OUT"
  "$OUT" ${REWIRE_CASES:-200}
done
