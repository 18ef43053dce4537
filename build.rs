//! Records the build's git revision for `binlog2es version` (BINLOG2ES_GIT_REV wins, e.g. in a
//! container build without `.git`; "unknown" when neither is there).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=BINLOG2ES_GIT_REV");
    let rev = std::env::var("BINLOG2ES_GIT_REV")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            let rev = String::from_utf8(out.stdout).ok()?.trim().to_owned();
            (out.status.success() && !rev.is_empty()).then_some(rev)
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=BINLOG2ES_GIT_REV={rev}");
    // A new commit or checkout changes the revision: watch HEAD and the branch refs (in a
    // worktree, HEAD is in its own git dir and the refs in the common one).
    for (flag, file) in [("--git-dir", "HEAD"), ("--git-common-dir", "refs/heads")] {
        if let Ok(out) = Command::new("git").args(["rev-parse", flag]).output() {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if out.status.success() && !dir.is_empty() {
                println!("cargo:rerun-if-changed={dir}/{file}");
            }
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
