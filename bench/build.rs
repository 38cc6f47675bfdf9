//! Records the compiler that builds the bench (`rustc -V`), for the written report: the
//! `rustc` on the PATH when the report is written may not be the one that compiled it.

use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = Command::new(&rustc)
        .arg("-V")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map_or_else(
            || "unknown".to_owned(),
            |output| String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        );
    println!("cargo:rustc-env=OUTBOX_BENCH_RUSTC={version}");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
