#!/usr/bin/env bash
# The distilled student on a real part's memory map: QEMU's netduinoplus2 (STM32F405, 1 MiB of
# flash at 0x08000000, 192 KiB of SRAM at 0x20000000). Packs the intent task with the host's
# answers (computed by the same core code from the committed student.bin), links student.bin
# and the task into the firmware's flash, and runs it with semihosting and -icount shift=0
# (one guest instruction per virtual nanosecond, which the firmware's SysTick counts).
# The linker fails the build when the image is over the flash; the guest exits 0 only when
# every pick and cosine equals the host's bit for bit and static data + heap high-water +
# stack high-water fit the SRAM. Needs: qemu-system-arm, rustup target thumbv7em-none-eabihf.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p target/firmware
fw=firmware/stm32f405-student
task="$PWD/target/firmware/student-task.bin"
# The same build as run_cortex_m4.sh (nothing to rebuild after it).
cargo build -q --workspace --all-features --examples
target/debug/examples/firmware_task "$fw/student.bin" "$fw/intents.tsv" "$task"
(cd "$fw" && STUDENT_TASK_BLOB="$task" cargo build -q --release)
elf=$fw/target/thumbv7em-none-eabihf/release/firmware-stm32f405-student
echo "firmware: $(stat -c %s "$elf") bytes ELF; student.bin $(stat -c %s "$fw/student.bin") bytes"
timeout 600 qemu-system-arm -M netduinoplus2 -nographic -nic none \
  -semihosting-config enable=on,target=native -icount shift=0 -kernel "$elf"
