//! Starts and stops a broker process. The broker is ready when it logs
//! "sluice broker ready" on stderr; it is stopped by its own PID on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Upper bound on start-up before the test fails (not a timing assertion:
/// only a guard against hanging forever).
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Broker {
    child: Option<Child>,
    pub address: SocketAddr,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind :0");
    listener.local_addr().expect("local addr").port()
}

impl Broker {
    pub fn start(settings: &[&str]) -> Broker {
        let temp = tempfile::tempdir().expect("tempdir");
        let dir = temp.path().to_path_buf();
        let mut broker = Broker::start_in(&dir, settings);
        broker._temp = Some(temp);
        broker
    }

    /// Starts on `data_dir`, which the caller keeps (for restarts).
    pub fn start_in(data_dir: &Path, settings: &[&str]) -> Broker {
        Broker::start_with(data_dir, &[], settings)
    }

    /// Starts on `data_dir` with extra command-line arguments.
    pub fn start_with(data_dir: &Path, args: &[&str], settings: &[&str]) -> Broker {
        let port = free_port();
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let mut command = Command::new(env!("CARGO_BIN_EXE_broker"));
        command
            .arg("--listen")
            .arg(address.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for setting in settings {
            command.arg("--set").arg(setting);
        }
        let mut child = command.spawn().expect("spawn broker");
        let stderr = child.stderr.take().expect("stderr");
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("SLUICE_TEST_LOG").is_some() {
                    eprintln!("[broker {port}] {line}");
                }
                if line.contains("sluice broker ready") {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
            }
        });
        let mut broker = Broker {
            child: Some(child),
            address,
            data_dir: data_dir.to_path_buf(),
            _temp: None,
        };
        if ready_rx.recv_timeout(START_TIMEOUT).is_err() {
            let status = broker
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            panic!("broker did not become ready (exit status {status:?})");
        }
        broker
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for the clean stop; returns the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        #[expect(unsafe_code)]
        // SAFETY: kill(2) on our own child's pid with a valid signal number.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        child.wait().ok()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}
