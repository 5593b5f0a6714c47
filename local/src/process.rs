//! Child process handling: every child gets `PR_SET_PDEATHSIG = SIGKILL` and its own process
//! group; stopping is SIGTERM to the group, a bounded wait, then SIGKILL.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

const POLL: Duration = Duration::from_millis(20);

/// Bound on the wait for a process to disappear after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Makes `cmd` die with us and run in its own process group.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that spawned the child exits, so children must be
/// spawned from a thread that lives as long as the [`crate::LocalNet`] (the normal case).
pub(crate) fn harden(cmd: &mut Command) {
    // SAFETY: getpid is always safe to call.
    let parent = unsafe { libc::getpid() };
    cmd.process_group(0);
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe
    // functions (prctl, getppid) without allocating.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// A long-running child whose output is appended to a log file.
#[derive(Debug)]
pub(crate) struct ManagedChild {
    name: String,
    child: Child,
    log: PathBuf,
    exited: Option<ExitStatus>,
}

impl ManagedChild {
    /// Spawns `cmd` (hardened, stdin from /dev/null) with stdout and stderr appended to `log`.
    pub(crate) fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Self> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening log file {}", log.display()))?;
        writeln!(
            file,
            "==== dome-localnet: starting {name} at {}: {:?} ====",
            crate::genesis::rfc3339_utc(std::time::SystemTime::now()),
            cmd
        )
        .with_context(|| format!("writing {}", log.display()))?;
        let err = file
            .try_clone()
            .with_context(|| format!("duplicating handle of {}", log.display()))?;
        cmd.stdin(Stdio::null()).stdout(file).stderr(err);
        harden(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {name}: {cmd:?}"))?;
        Ok(ManagedChild {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
            exited: None,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// `Some(status)` once the process has exited (it is reaped here).
    pub(crate) fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
            }
        }
        self.exited
    }

    /// Sends `signal` to the child's process group unless the child has already been reaped.
    pub(crate) fn signal(&mut self, signal: libc::c_int) {
        if self.exit_status().is_some() {
            return;
        }
        // The child leads its own process group (process_group(0)), so its pid is the pgid.
        // It is not reaped yet, so the pgid cannot have been reused.
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: plain kill(2) on a process group we created.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }

    /// Waits until the process exits or `deadline` passes.
    pub(crate) fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILL to the process group and a bounded wait.
    pub(crate) fn kill(&mut self) -> Result<ExitStatus> {
        self.signal(libc::SIGKILL);
        self.wait_until(Instant::now() + KILL_WAIT).ok_or_else(|| {
            anyhow!(
                "{} (pid {}) did not exit within {KILL_WAIT:?} of SIGKILL",
                self.name,
                self.pid()
            )
        })
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL.
    pub(crate) fn terminate(&mut self, grace: Duration) -> Result<ExitStatus> {
        self.signal(libc::SIGTERM);
        match self.wait_until(Instant::now() + grace) {
            Some(status) => Ok(status),
            None => self.kill(),
        }
    }
}

impl Drop for ManagedChild {
    fn drop(&mut self) {
        if self.exit_status().is_none() {
            let _ = self.kill();
        }
    }
}

/// Stops many children concurrently: SIGTERM to all, one shared `grace` period, then SIGKILL to
/// the stragglers. Returns the first error (all children are still dealt with).
pub(crate) fn terminate_all(children: &mut [&mut ManagedChild], grace: Duration) -> Result<()> {
    for c in children.iter_mut() {
        c.signal(libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    let mut first_err = None;
    for c in children.iter_mut() {
        if c.wait_until(deadline).is_none() {
            if let Err(e) = c.kill() {
                first_err.get_or_insert(e);
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Runs a short-lived command to completion with a bound on its run time, capturing output.
/// Fails if it does not finish in time (it is then killed) or exits unsuccessfully.
pub(crate) fn run_bounded(mut cmd: Command, timeout: Duration) -> Result<Output> {
    let desc = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    harden(&mut cmd);
    let child = cmd.spawn().with_context(|| format!("spawning {desc}"))?;
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(timeout) {
        Ok(result) => result.with_context(|| format!("waiting for {desc}"))?,
        Err(_) => {
            // SAFETY: kill(2) on the process group of the child we spawned. The waiting thread
            // has not reaped it (it would have sent a result), so the pgid is still ours.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
            bail!("{desc} did not finish within {timeout:?} and was killed");
        }
    };
    if !output.status.success() {
        bail!(
            "{desc} failed ({}):\n{}{}",
            describe_status(output.status),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

/// Human-readable exit status ("exit code 1", "signal 9").
pub(crate) fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// The last `max_bytes` of a log file (for error messages); empty if unreadable.
pub fn log_tail(path: &Path, max_bytes: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(max_bytes)));
    let mut buf = Vec::new();
    let _ = file.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// True if a process with this pid exists (possibly a zombie).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence and permission.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminate_stops_child_and_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        let mut cmd = Command::new("sh");
        // The shell ignores nothing; `sleep` runs in the same process group.
        cmd.args(["-c", "echo hello; sleep 30 & wait"]);
        let mut c = ManagedChild::spawn("sleeper", cmd, &log).unwrap();
        let pid = c.pid();
        std::thread::sleep(Duration::from_millis(200));
        assert!(c.exit_status().is_none());
        assert!(pid_alive(pid));
        let status = c.terminate(Duration::from_secs(5)).unwrap();
        assert!(!status.success());
        assert!(!pid_alive(pid));
        let text = log_tail(&log, 10_000);
        assert!(text.contains("starting sleeper"), "{text}");
        assert!(text.contains("hello"), "{text}");
    }

    #[test]
    fn kill_falls_back_after_grace() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("y.log");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "trap '' TERM; sleep 30"]);
        let mut c = ManagedChild::spawn("stubborn", cmd, &log).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let start = Instant::now();
        let status = c.terminate(Duration::from_millis(300)).unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn run_bounded_reports_failure_and_timeout() {
        let mut ok = Command::new("sh");
        ok.args(["-c", "echo out"]);
        assert_eq!(
            run_bounded(ok, Duration::from_secs(5)).unwrap().stdout,
            b"out\n"
        );

        let mut fail = Command::new("sh");
        fail.args(["-c", "echo bad >&2; exit 3"]);
        let err = format!(
            "{:#}",
            run_bounded(fail, Duration::from_secs(5)).unwrap_err()
        );
        assert!(err.contains("exit code 3") && err.contains("bad"), "{err}");

        let mut slow = Command::new("sleep");
        slow.arg("30");
        let start = Instant::now();
        assert!(run_bounded(slow, Duration::from_millis(200)).is_err());
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
