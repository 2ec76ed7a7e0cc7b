//! What a benchmark runs against: a throwaway database on the configured PostgreSQL server and
//! the real `iamd serve` (this very binary) as a child process on a free loopback port. Both go
//! away when the [`Target`] is dropped.

use anyhow::Context as _;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bearer the benchmark speaks as (the API gateway).
pub const GATEWAY_SECRET: &str = "bench-gateway-secret-0123456789abcdef";

/// A database created for one benchmark run, dropped at the end.
pub struct BenchDb {
    admin: tokio_postgres::Config,
    pub name: String,
    /// Connection string of the benchmark database (key=value form).
    pub url: String,
    pub pool: deadpool_postgres::Pool,
}

impl BenchDb {
    /// Creates and migrates `iamd_bench_<pid>_<n>` on the server of `admin_url`.
    pub async fn create(admin_url: &str, tag: &str) -> anyhow::Result<BenchDb> {
        let admin = crate::db::parse_url(admin_url)?;
        let name = format!("iamd_bench_{}_{tag}", std::process::id());
        let client = connect(&admin).await?;
        client.batch_execute("SET client_min_messages TO warning").await?;
        client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("bench: creating the database {name} (the user needs CREATEDB)"))?;
        let url = key_value_url(&admin, &name);
        let pool = crate::db::connect(&url, 8).await?;
        crate::store::migrations::migrate(&pool).await?;
        Ok(BenchDb { admin, name, url, pool })
    }

    /// Drops the database (best effort; the next run drops a leftover of the same name).
    pub async fn drop_now(self) {
        self.pool.close();
        if let Ok(client) = connect(&self.admin).await {
            let _ =
                client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).await;
        }
    }
}

async fn connect(config: &tokio_postgres::Config) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.context(
        "bench: cannot reach PostgreSQL (start it, or run `make bench`, which finds or starts one)",
    )?;
    tokio::spawn(connection);
    Ok(client)
}

/// The admin connection's settings with another database, as a key=value string.
fn key_value_url(admin: &tokio_postgres::Config, dbname: &str) -> String {
    let mut parts = vec![format!("dbname={dbname}")];
    if let Some(tokio_postgres::config::Host::Tcp(h)) = admin.get_hosts().first() {
        parts.push(format!("host={h}"));
    }
    if let Some(tokio_postgres::config::Host::Unix(p)) = admin.get_hosts().first() {
        parts.push(format!("host={}", p.display()));
    }
    if let Some(port) = admin.get_ports().first() {
        parts.push(format!("port={port}"));
    }
    if let Some(user) = admin.get_user() {
        parts.push(format!("user={user}"));
    }
    if let Some(pw) = admin.get_password() {
        parts.push(format!("password='{}'", String::from_utf8_lossy(pw).replace('\'', "\\'")));
    }
    parts.join(" ")
}

/// `iamd serve` as a child process.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts this binary's `serve` on `db_url` with `env` on top, waits until `/healthz`
    /// answers (at most `timeout`), and returns it with the time that took.
    pub async fn start(
        db_url: &str,
        env: &[(&str, String)],
        timeout: Duration,
    ) -> anyhow::Result<(Server, Duration)> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let exe = std::env::current_exe().context("bench: locating the iamd binary")?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .env("IAMD_DATABASE_URL", db_url)
            .env("IAMD_HTTP_LISTEN", addr.to_string())
            .env("IAMD_HTTP_GATEWAY_SECRET", GATEWAY_SECRET)
            .env("IAMD_BOOTSTRAP_ON_START", "false")
            .env("IAMD_LOG_LEVEL", "warn")
            .env("IAMD_KAFKA_BROKERS", "")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let child = cmd.spawn().context("bench: starting iamd serve")?;
        let mut server = Server { child, addr };
        loop {
            if healthy(addr).await {
                return Ok((server, started.elapsed()));
            }
            if let Some(status) = server.child.try_wait()? {
                anyhow::bail!("bench: iamd serve exited during start-up ({status})");
            }
            anyhow::ensure!(
                started.elapsed() < timeout,
                "bench: iamd serve did not answer within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Resident set size of the server process, in MiB (Linux `/proc`).
    pub fn rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kib: f64 =
            status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.split_whitespace().next()?.parse().ok()?;
        Some(kib / 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn healthy(addr: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else { return false };
    let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).await.is_ok() && buf.starts_with(b"HTTP/1.1 200")
}
