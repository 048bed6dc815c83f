#!/usr/bin/env bash
# Build the Cortex-M4F firmware, pack SPLADE-tiny (quantized to int8 on the host) + a sentence
# with [MASK] + the host's f32 top-1 token into a blob, and run it on QEMU's mps2-an386 board
# with semihosting. The guest exits 0 when its top-1 equals the host's; so does this script.
# Needs: qemu-system-arm, rustup target thumbv7em-none-eabihf.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p target/firmware
blob=target/firmware/splade-int8.blob
cargo build -q --workspace --all-features --examples
target/debug/examples/firmware_pack splade-int8 "$blob"
(cd firmware/cortex-m4-splade && cargo build -q --release)
elf=firmware/cortex-m4-splade/target/thumbv7em-none-eabihf/release/firmware-cortex-m4-splade
echo "firmware: $(stat -c %s "$elf") bytes ELF; blob (config + vocab + int8 weights): $(stat -c %s "$blob") bytes"
timeout 600 qemu-system-arm -M mps2-an386 -cpu cortex-m4 -nographic -nic none \
  -semihosting-config enable=on,target=native -icount shift=0 \
  -kernel "$elf" -device loader,file="$blob",addr=0x21000000,force-raw=on
