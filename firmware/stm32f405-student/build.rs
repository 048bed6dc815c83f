//! Links memory.x, and hands the task blob (made on the host by `cargo run --example
//! firmware_task`; scripts/firmware/run_stm32f405.sh does it) to `include_bytes!`. Without
//! one, an empty blob goes in and the firmware says so when it runs (so `cargo clippy` works
//! on a fresh clone).
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    println!("cargo:rustc-link-search={}", dir.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=student.bin");
    println!("cargo:rerun-if-env-changed=STUDENT_TASK_BLOB");
    let task = match std::env::var_os("STUDENT_TASK_BLOB") {
        Some(p) => PathBuf::from(p),
        None => dir.join("../../target/firmware/student-task.bin"),
    };
    let task = if task.is_file() {
        println!("cargo:rerun-if-changed={}", task.display());
        task.canonicalize().unwrap()
    } else {
        let empty = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("no-task.bin");
        std::fs::write(&empty, b"").unwrap();
        println!("cargo:rerun-if-changed={}", task.display());
        empty
    };
    println!("cargo:rustc-env=STUDENT_TASK_BLOB={}", task.display());
}
