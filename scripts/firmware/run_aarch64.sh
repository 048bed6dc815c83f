#!/usr/bin/env bash
# Build the bare-metal aarch64 firmware, pack MiniLM + a sentence + the host's embedding into a
# blob, and run it on QEMU's virt board with semihosting. The guest exits 0 when its embedding
# matches the host's within 1e-4; this script exits with the guest's code.
# Needs: qemu-system-aarch64 (Debian: qemu-system-arm), rustup target aarch64-unknown-none.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p target/firmware
blob=target/firmware/minilm.blob
cargo build -q --workspace --all-features --examples
target/debug/examples/firmware_pack minilm "$blob"
(cd firmware/aarch64-minilm && cargo build -q --release)
elf=firmware/aarch64-minilm/target/aarch64-unknown-none/release/firmware-aarch64-minilm
echo "firmware: $(stat -c %s "$elf") bytes ELF; blob (config + vocab + weights): $(stat -c %s "$blob") bytes"
timeout 600 qemu-system-aarch64 -M virt -cpu cortex-a72 -m 1024 -nic none -nographic \
  -semihosting-config enable=on,target=native -icount shift=0 \
  -kernel "$elf" -device loader,file="$blob",addr=0x48000000,force-raw=on
