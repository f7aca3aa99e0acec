#!/usr/bin/env bash
# Build and run the C tests against the static library: plain, under ASan+UBSan, and under
# valgrind memcheck (zero errors, zero leaks); then against the shared library as a package
# would install it (found by its SONAME). Called by `make ffi-test`.
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

echo "== C tests against the shared library"
so="$root/target/release/libtarget_allocator.so"
soname=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
case "$soname" in
  libtarget_allocator.so.[0-9]*) ;;
  *) echo "$so: SONAME is '$soname', expected libtarget_allocator.so.<abi>" >&2; exit 1 ;;
esac
# Only the ta_ functions of the header are exported: no Rust or libc symbol leaks into programs.
stray=$(nm -D --defined-only "$so" | awk '{print $3}' | grep -v '^ta_' || true)
if [ -n "$stray" ]; then
  echo "$so exports symbols outside the ta_ namespace:" >&2
  echo "$stray" >&2
  exit 1
fi
# Installed as a distribution does: the file under its SONAME, the link-time name a symlink to it.
rm -rf "$out/so" && mkdir -p "$out/so"
cp "$so" "$out/so/$soname"
ln -s "$soname" "$out/so/libtarget_allocator.so"
cc "${cflags[@]}" -O1 "$src" -L "$out/so" -ltarget_allocator -Wl,-rpath,"$out/so" -lpthread -o "$out/ffi_test_shared"
if ! readelf -d "$out/ffi_test_shared" | grep -q "Shared library: \[$soname\]"; then
  echo "ffi_test_shared does not record $soname as needed" >&2
  exit 1
fi
"$out/ffi_test_shared" "${args[@]}"
