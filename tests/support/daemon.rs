//! A long-running process of a test (the operator, a Flux controller, the git server): its output
//! kept for failure messages, stopped with SIGTERM and then SIGKILL when dropped, also when the
//! test panics.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a stopped process gets to exit after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(10);

/// The shell of [`Daemon::spawn_for_the_binary`]: runs "$@" with stdin kept on fd 3 for a
/// background `cat`, which ends when the test binary's end of the pipe closes and then stops it.
/// (A background job's own stdin is /dev/null, hence the explicit fd.)
const STOP_WHEN_STDIN_CLOSES: &str = r#"exec 3<&0 </dev/null
"$@" &
pid=$!
{ cat <&3 >/dev/null; kill -TERM "$pid" 2>/dev/null; } &
wait "$pid""#;

/// A running process and its output, line by line (stdout and stderr interleaved).
pub struct Daemon {
    name: String,
    child: Child,
    /// Kept open: a process that reads its stdin sees its parent go when it closes.
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    /// The threads copying its output into `lines`; they end when it exits.
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Daemon {
    /// Starts `command` as `name`; panics, with the reason, when it cannot start.
    pub fn spawn(name: &str, mut command: Command) -> Self {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} ({command:?}) does not start: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let lines = Arc::clone(&lines);
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            }));
        }
        Self {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            readers,
        }
    }

    /// Starts `command` as `name` for the whole test binary: a process kept in a `static`, which
    /// is never dropped. A shell around it stops it (SIGTERM) when its stdin closes, which happens
    /// when the test binary exits however it exits, and exits with it, so that
    /// [`Daemon::assert_running`] still sees it die.
    pub fn spawn_for_the_binary(name: &str, command: Command) -> Self {
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            .arg(STOP_WHEN_STDIN_CLOSES)
            .arg(name)
            .arg(command.get_program())
            .args(command.get_args());
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => shell.env(key, value),
                None => shell.env_remove(key),
            };
        }
        if let Some(dir) = command.get_current_dir() {
            shell.current_dir(dir);
        }
        Self::spawn(name, shell)
    }

    /// Every line of output so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The last `n` lines of output, for a failure message.
    pub fn last_lines(&self, n: usize) -> String {
        let lines = self.lines();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Panics with the process's last lines if it has exited: a helper that died explains
    /// itself instead of leaving the test to time out.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!(
                "{} exited ({status}); its last lines:\n{}",
                self.name,
                self.last_lines(40)
            );
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`TERM`, `KILL`, `STOP`, `CONT`) to the process.
    pub fn signal(&self, signal: &str) {
        send_signal(self.pid(), signal);
    }

    /// Waits up to `timeout` for the process to exit; returns whether it did. Looked at once even
    /// with a zero timeout: a caller polling with `Duration::ZERO` asks "has it exited yet?".
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.exited().is_some() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How it exited, if it has; its last lines are then all in [`Daemon::lines`].
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.try_wait().ok().flatten()?;
        // Its output threads may still be reading the last lines: they end at the pipes' end.
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Some(status)
    }

    /// Waits until a line of output satisfies `wanted` and returns it; panics with the last
    /// lines when the process exits first or `timeout` passes.
    pub fn wait_for_line(&mut self, timeout: Duration, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.lines().into_iter().find(|l| wanted(l)) {
                return line;
            }
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "{} did not print the expected line in {timeout:?}; its last lines:\n{}",
                self.name,
                self.last_lines(40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stdin.take();
        if self.child.try_wait().ok().flatten().is_some() {
            return; // exited already (a test signalled it, or it died)
        }
        self.signal("TERM");
        if !self.wait_exit(GRACE) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends `signal` to `pid` with kill(1).
fn send_signal(pid: u32, signal: &str) {
    // Never pid 0: `kill 0` signals the whole process group, the test runner included.
    if pid != 0 {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status();
    }
}
