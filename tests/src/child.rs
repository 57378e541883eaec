//! A node run as a child process, read line by line and killed with
//! SIGKILL: the crash and damage tests' harness.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

/// A child process, killed (SIGKILL) and reaped when dropped, so that a
/// failing test leaves no node running.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `command` with its standard output piped and returns it with a
/// channel of its output lines (read on a thread of their own).
pub fn spawn_lines(command: &mut Command) -> anyhow::Result<(Killed, mpsc::Receiver<String>)> {
    let mut child = Killed(command.stdout(Stdio::piped()).spawn()?);
    let stdout = child
        .0
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("the child has no standard output"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok((child, rx))
}
