//! Starts and stops a broker process. The broker is ready when it logs
//! "sluice broker ready" on stderr; it is stopped by its own PID on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

/// Upper bound on start-up before the test fails (not a timing assertion:
/// only a guard against hanging forever).
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Broker {
    child: Option<Child>,
    pub address: SocketAddr,
    pub data_dir: PathBuf,
    /// Every stderr line, as the reader thread sees them.
    log: Arc<(Mutex<Vec<String>>, Condvar)>,
    _temp: Option<tempfile::TempDir>,
}

/// What the reader of a starting broker's stderr saw.
enum Started {
    Ready,
    /// stderr closed before the ready line: everything it said.
    Exited(String),
}

/// A broker that exited instead of becoming ready.
#[derive(Debug)]
pub struct StartFailed {
    pub status: Option<std::process::ExitStatus>,
    pub stderr: String,
}

pub fn free_port() -> u16 {
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
        Broker::start_on_with(data_dir, free_port(), args, settings)
    }

    /// Starts on `data_dir` and this loopback `port` (a restart reuses the
    /// port its clients know).
    pub fn start_on(data_dir: &Path, port: u16, settings: &[&str]) -> Broker {
        Broker::start_on_with(data_dir, port, &[], settings)
    }

    /// `start_on` with extra command-line arguments.
    pub fn start_on_with(data_dir: &Path, port: u16, args: &[&str], settings: &[&str]) -> Broker {
        match Broker::try_start_on(data_dir, port, args, settings) {
            Ok(broker) => broker,
            Err(failed) => panic!(
                "broker did not become ready (exit status {:?}):\n{}",
                failed.status, failed.stderr
            ),
        }
    }

    /// Starts a broker and waits until it is ready or has exited; a broker
    /// that exits before it is ready gives its status and stderr.
    pub fn try_start_on(
        data_dir: &Path,
        port: u16,
        args: &[&str],
        settings: &[&str],
    ) -> Result<Broker, StartFailed> {
        let (mut broker, started_rx) = Broker::spawn(data_dir, port, args, settings);
        match started_rx.recv_timeout(START_TIMEOUT) {
            Ok(Started::Ready) => Ok(broker),
            Ok(Started::Exited(stderr)) => {
                let status = broker.child.take().and_then(|mut c| c.wait().ok());
                Err(StartFailed { status, stderr })
            }
            Err(_) => {
                let status = broker
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                panic!("broker neither ready nor exited (exit status {status:?})");
            }
        }
    }

    /// Starts a broker and returns as soon as its client listener accepts,
    /// before it is ready: for tests of what a broker answers while it is
    /// still registering, taking its roles and loading its groups.
    pub fn start_listening_on(data_dir: &Path, port: u16, settings: &[&str]) -> Broker {
        let (mut broker, _started) = Broker::spawn(data_dir, port, &[], settings);
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        while std::net::TcpStream::connect(broker.address).is_err() {
            if let Some(Ok(Some(status))) = broker.child.as_mut().map(|c| c.try_wait()) {
                panic!("broker exited before listening: {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "broker not listening on {}",
                broker.address
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        broker
    }

    fn spawn(
        data_dir: &Path,
        port: u16,
        args: &[&str],
        settings: &[&str],
    ) -> (Broker, mpsc::Receiver<Started>) {
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let mut command = Command::new(env!("CARGO_BIN_EXE_broker"));
        command
            .arg("--listen")
            .arg(address.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            // Off unless a test asks (tests run brokers in parallel).
            .args(["--set", "sluice.admin.listen="])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for setting in settings {
            command.arg("--set").arg(setting);
        }
        let mut child = command.spawn().expect("spawn broker");
        let stderr = child.stderr.take().expect("stderr");
        let (started_tx, started_rx) = mpsc::channel();
        let log: Arc<(Mutex<Vec<String>>, Condvar)> = Arc::default();
        let log_lines = log.clone();
        std::thread::spawn(move || {
            // Lines until ready; after that stderr is only drained (and
            // echoed with SLUICE_TEST_LOG) so the broker never blocks on it.
            let mut started = Some((started_tx, String::new()));
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("SLUICE_TEST_LOG").is_some() {
                    eprintln!("[broker {port}] {line}");
                }
                let ready = line.contains("sluice broker ready");
                {
                    let (lines, added) = &*log_lines;
                    if let Ok(mut lines) = lines.lock() {
                        lines.push(line.clone());
                    }
                    added.notify_all();
                }
                if let Some((_, seen)) = started.as_mut() {
                    seen.push_str(&line);
                    seen.push('\n');
                }
                if ready {
                    if let Some((tx, _)) = started.take() {
                        let _ = tx.send(Started::Ready);
                    }
                }
            }
            if let Some((tx, seen)) = started.take() {
                let _ = tx.send(Started::Exited(seen));
            }
        });
        let broker = Broker {
            child: Some(child),
            address,
            data_dir: data_dir.to_path_buf(),
            log,
            _temp: None,
        };
        (broker, started_rx)
    }

    /// Waits until a stderr line contains `needle` and returns every line
    /// logged so far (stderr is one ordered stream, so lines logged before
    /// that one are in). Panics after `START_TIMEOUT`: a guard against
    /// hanging, not a timing assertion.
    pub fn wait_for_log(&self, needle: &str) -> Vec<String> {
        let (lines, added) = &*self.log;
        let lines = lines.lock().expect("log lock");
        let (lines, timeout) = added
            .wait_timeout_while(lines, START_TIMEOUT, |lines| {
                !lines.iter().any(|l| l.contains(needle))
            })
            .expect("log lock");
        assert!(!timeout.timed_out(), "broker never logged {needle:?}");
        lines.clone()
    }

    /// Every stderr line so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.0.lock().expect("log lock").clone()
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
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }

    /// Sends `signal` to the broker process (while it runs).
    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            #[expect(unsafe_code)]
            // SAFETY: kill(2) on our own child's pid with a valid signal number.
            unsafe {
                libc::kill(child.id() as i32, signal);
            }
        }
    }

    /// Waits for the process to exit; its status.
    pub fn wait_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.take()?.wait().ok()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `GET path` on an admin endpoint (a broker started with
/// `sluice.admin.listen=127.0.0.1:<port>`); the response body.
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("admin connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("admin request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("admin response");
    response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_string())
}
