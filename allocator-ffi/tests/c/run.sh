#!/usr/bin/env bash
# Build and run the C tests against the static library: plain, under ASan+UBSan, and under
# valgrind memcheck (zero errors, zero leaks). Called by `make ffi-test`.
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
out="$root/target/ffi-c"
mkdir -p "$out"
cargo build --release -p allocator-ffi --manifest-path "$root/Cargo.toml"
lib="$root/target/release/libtarget_allocator.a"
for v in v0.10.0 v1.0.0; do
  python3 "$root/scripts/parity_tsv.py" "$root/testdata/parity/ring-$v.json" > "$out/parity-$v.tsv"
done
src="$root/allocator-ffi/tests/c/ffi_test.c"
cflags=(-std=c11 -Wall -Wextra -Werror -g -I "$root/include")
libs=("$lib" -lpthread -ldl -lm)
args=("$out/parity-v0.10.0.tsv" "$out/parity-v1.0.0.tsv")

cc "${cflags[@]}" -O1 "$src" "${libs[@]}" -o "$out/ffi_test"
echo "== C tests"
"$out/ffi_test" "${args[@]}"

cc "${cflags[@]}" -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
  "$src" "${libs[@]}" -o "$out/ffi_test_asan"
echo "== C tests under AddressSanitizer + UndefinedBehaviorSanitizer"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 "$out/ffi_test_asan" "${args[@]}"

echo "== C tests under valgrind memcheck"
# --fair-sched=yes: valgrind runs one thread at a time, and its default lock hands the CPU back
# unfairly; the threads test's readers then starved the writer (a CI run spent over 17 minutes of
# CPU in it, against about 2 minutes usually).
valgrind --quiet --fair-sched=yes --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
  "$out/ffi_test" "${args[@]}"
