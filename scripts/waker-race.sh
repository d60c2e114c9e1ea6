#!/usr/bin/env bash
# Reproduces (or shows fixed) the glommio foreign-waker race behind the crash
# soak's double free: builds scripts/waker-race/main.rs against a copy of
# third_party/glommio, optionally with src/task/raw.rs from another commit,
# with a spin inserted in the window so that it shows in seconds, and counts
# glommio's "Waker invariant broken" reports (a task's count read after the
# task was freed). Not part of CI.
#
#   scripts/waker-race.sh [ROUNDS] [REV]   # REV: e.g. 7511843 = before the fix
#   NOSPIN=1 scripts/waker-race.sh ...     # the window as it is (rarely hit)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-100000}; rev=${2:-}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cp -r third_party/glommio "$work/glommio"
[ -n "$rev" ] && git show "$rev:third_party/glommio/src/task/raw.rs" > "$work/glommio/src/task/raw.rs"
if [ -z "${NOSPIN:-}" ]; then
    # Before the fix the window lies after the foreign decrement; after it,
    # the same spin sits before the hand-over (there is no window to widen).
    sed -i -e '/if Self::decrement_references(&\*(raw.header as \*mut Header)) == 0 {/a for _ in 0..20_000 { std::hint::spin_loop() }' \
           -e '/SLUICE PATCH (foreign waker drops): upstream took the/i for _ in 0..20_000 { std::hint::spin_loop() }' \
        "$work/glommio/src/task/raw.rs"
fi
mkdir -p "$work/race/src"
cp scripts/waker-race/main.rs "$work/race/src/main.rs"
cat > "$work/race/Cargo.toml" <<TOML
[package]
name = "waker-race"
version = "0.1.0"
edition = "2021"
[dependencies]
glommio = { path = "../glommio" }
futures-lite = "1"
[workspace]
TOML
CARGO_TARGET_DIR="$PWD/target/waker-race" cargo build -q --release -j2 --manifest-path "$work/race/Cargo.toml"
"$PWD/target/waker-race/release/waker-race" "$rounds" > "$work/out" 2>&1 || true
grep finished "$work/out" || tail -5 "$work/out"
echo "invariant reports (task touched after free): $(grep -c 'Waker invariant broken' "$work/out" || true)"
