//! Builds the `drover` executable for the wheel to carry (as
//! `drover/bin/drover`): worker jobs run `drover worker` from the venv on
//! the shared filesystem, and the orphan watcher is `drover reaper`.
//!
//! Only when maturin builds the extension module (it sets
//! `PYO3_BUILD_EXTENSION_MODULE`): a `cargo check` or `clippy` of the
//! workspace does not pay for a second release build.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=PYO3_BUILD_EXTENSION_MODULE");
    println!("cargo:rerun-if-env-changed=DROVER_WHEEL_BIN");
    if env::var_os("PYO3_BUILD_EXTENSION_MODULE").is_none() {
        return;
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));
    let bin = out.join("bin");
    std::fs::create_dir_all(&bin).expect("OUT_DIR is writable");
    // An executable built already (the test suite's, `slurm/python-env
    // --dev`): carried as it is, with no second build of drover.
    if let Some(built) = env::var_os("DROVER_WHEEL_BIN") {
        let built = PathBuf::from(built);
        println!("cargo:rerun-if-changed={}", built.display());
        std::fs::copy(&built, bin.join("drover"))
            .unwrap_or_else(|e| panic!("DROVER_WHEEL_BIN={}: {e}", built.display()));
        return;
    }
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest
        .parent()
        .expect("python/ sits in the repository")
        .to_path_buf();
    for watched in ["src", "templates", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    // A target directory of its own: the outer build holds the lock on
    // the workspace's, and the two would wait on each other.
    let target = root.join("target").join("wheel-bin");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--locked",
            "--bin",
            "drover",
            "--target-dir",
        ])
        .arg(&target)
        // The outer build's flags are for a Python extension, not for this.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("PYO3_BUILD_EXTENSION_MODULE")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the drover executable failed");
    std::fs::copy(target.join("release").join("drover"), bin.join("drover"))
        .expect("the drover executable was built");
}
