//! [`Broker`] runs a real Kafka-protocol broker (tansu) on a free loopback port for one test,
//! creates topics, and can be stopped and started again on the same port and storage. The
//! binary comes from `IAMD_TEST_TANSU` (set by `make test`, which installs it), else the
//! cache `scripts/tansu.sh` installs into.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    storage: String,
    /// The broker's working directory: where a `sqlite://` engine keeps its file.
    dir: tempfile::TempDir,
}

pub fn tansu() -> PathBuf {
    if let Ok(p) = std::env::var("IAMD_TEST_TANSU") {
        if !p.trim().is_empty() {
            return PathBuf::from(p.trim());
        }
    }
    let home = std::env::var("HOME").unwrap_or_default();
    // Where scripts/tansu.sh installs it.
    let cached = PathBuf::from(home).join(".cache/iamd-tools/tansu-0.6.0-dynostore-libsql/bin/tansu");
    assert!(
        cached.exists(),
        "no Kafka-protocol broker: run `make test` (it installs tansu with scripts/tansu.sh) or set IAMD_TEST_TANSU"
    );
    cached
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Broker {
    /// A broker keeping its data in memory (gone when it stops).
    pub fn memory() -> Broker {
        Self::start_on(free_port(), "memory://tansu/".into())
    }

    /// A broker whose topics and committed offsets survive a restart, like a Kafka
    /// cluster's: tansu's libsql engine, in a file in the broker's own temporary directory.
    pub fn restartable() -> Broker {
        Self::start_on(free_port(), "sqlite://tansu.db".into())
    }

    /// A broker on a chosen port (the test of a broker that comes up late).
    pub fn memory_on(port: u16) -> Broker {
        Self::start_on(port, "memory://tansu/".into())
    }

    fn start_on(port: u16, storage: String) -> Broker {
        let dir = tempfile::tempdir().expect("a directory for the broker");
        let mut broker = Broker { child: None, port, storage, dir };
        broker.start();
        broker
    }

    /// Starts the broker and waits until it listens. After a restart the port may still be
    /// held by the old process's closing connections (TIME_WAIT, up to a minute) and tansu
    /// does not reuse it, so a broker that exits at once is started again.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let mut child = Command::new(tansu())
                .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
                .args(["--storage-engine", &self.storage, "--silent"])
                .current_dir(self.dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting tansu");
            loop {
                if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                    self.child = Some(child);
                    return;
                }
                if child.try_wait().ok().flatten().is_some() {
                    break; // exited: the port is not free yet
                }
                assert!(Instant::now() < deadline, "tansu did not listen on {}", self.port);
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(Instant::now() < deadline, "tansu could not bind {}", self.port);
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates a topic, retrying while the broker warms up.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new(tansu())
                .args(["topic", "create", name, "--partitions", &partitions.to_string()])
                .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
                .output()
                .expect("running tansu topic create");
            if out.status.success() {
                return;
            }
            let text = String::from_utf8_lossy(&out.stderr).to_lowercase();
            if text.contains("exist") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "creating topic {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The topics iamd uses by default.
    pub fn create_iam_topics(&self, request_partitions: u32) {
        self.create_topic("iam.request", request_partitions);
        self.create_topic("iam.response", 1);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
