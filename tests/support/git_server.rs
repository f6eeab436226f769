//! A git repository served over smart HTTP on 127.0.0.1, as source-controller clones one in a
//! cluster: Flux's own test git server (`github.com/fluxcd/pkg/gittestserver`, in the program
//! `gitserver` of `tests/go/flux`) serves a bare repository that the test commits to through a
//! work tree of its own.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::control_plane::run;
use super::daemon::Daemon;
use super::faults::scratch_dir;

/// The branch the tests commit to and Flux follows.
pub const BRANCH: &str = "main";

/// A served repository and the work tree the test commits from. The server stops when dropped.
pub struct GitRepo {
    server: Daemon,
    /// The repository's clone URL (`http://127.0.0.1:PORT/NAME.git`).
    pub url: String,
    work: PathBuf,
}

impl GitRepo {
    /// A new empty repository `name` served by the `gitserver` in `bin`.
    pub fn serve(bin: &Path, name: &str) -> Self {
        let dir = scratch_dir(&format!("git-{name}"));
        let root = dir.join("repositories");
        let bare = root.join(format!("{name}.git"));
        let work = dir.join("work");
        std::fs::create_dir_all(&bare).expect("create the repository folder");
        std::fs::create_dir_all(&work).expect("create the work tree");
        git_ok(git(&bare).args(["init", "--quiet", "--bare", "--initial-branch", BRANCH]));
        git_ok(git(&work).args(["init", "--quiet", "--initial-branch", BRANCH]));
        git_ok(git(&work).args(["remote", "add", "origin"]).arg(&bare));

        let mut command = Command::new(bin.join("gitserver"));
        command.arg("-root").arg(&root);
        let mut server = Daemon::spawn("gitserver", command);
        let base = server.wait_for_line(Duration::from_secs(30), |l| l.starts_with("http://"));
        assert!(
            base.starts_with("http://127.0.0.1:"),
            "the git server must listen on loopback only, it says {base}"
        );
        Self {
            server,
            url: format!("{}/{name}.git", base.trim()),
            work,
        }
    }

    /// Writes `files` (path relative to the repository, contents) and deletes `removed`, commits
    /// them with `message` and pushes; returns the commit's id, as Flux names revisions
    /// (`main@sha1:ID`).
    pub fn commit(&self, files: &[(&str, String)], removed: &[&str], message: &str) -> String {
        for (path, contents) in files {
            let path = self.work.join(path);
            std::fs::create_dir_all(path.parent().expect("a file in a folder"))
                .expect("create the folder");
            std::fs::write(&path, contents)
                .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
        for path in removed {
            let path = self.work.join(path);
            std::fs::remove_file(&path)
                .unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
        }
        git_ok(git(&self.work).args(["add", "--all"]));
        git_ok(git(&self.work).args(["commit", "--quiet", "--message", message]));
        git_ok(git(&self.work).args(["push", "--quiet", "origin", BRANCH]));
        git_ok(git(&self.work).args(["rev-parse", "HEAD"]))
            .trim()
            .to_owned()
    }

    /// Panics with the server's last lines if it has exited.
    pub fn assert_serving(&mut self) {
        self.server.assert_running();
    }
}

/// A `git` command in `dir` that reads no user or system configuration.
fn git(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "poolwatch tests")
        .env("GIT_AUTHOR_EMAIL", "tests@poolwatch.invalid")
        .env("GIT_COMMITTER_NAME", "poolwatch tests")
        .env("GIT_COMMITTER_EMAIL", "tests@poolwatch.invalid");
    command
}

fn git_ok(command: &mut Command) -> String {
    run(command).unwrap_or_else(|e| panic!("{e}"))
}
