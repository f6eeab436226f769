//! Bakes the source revision into the binary, for `poolwatch --version` and the image labels:
//! `POOLWATCH_REVISION` when the build sets it (a release pipeline, a source tarball), else the
//! git commit of the checkout, else `unknown`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=POOLWATCH_REVISION");
    let revision = std::env::var("POOLWATCH_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=POOLWATCH_REVISION={}", revision.trim());
}

/// The checkout's commit, and a rebuild whenever it moves (HEAD, or the branch HEAD names).
fn git_revision() -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let output = Command::new("git").args(args).output().ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let revision = git(&["rev-parse", "HEAD"])?;
    for file in ["HEAD", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", file]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(path) = git(&["rev-parse", "--git-path", &branch])
    {
        println!("cargo:rerun-if-changed={path}");
    }
    Some(revision)
}
