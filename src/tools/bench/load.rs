//! The load generator: HTTP/1.1 keep-alive connections on loopback, each sending its next
//! request as soon as the last reply is read, every loop bounded by a request count and a
//! deadline. A plain TCP client with pre-built requests, so the generator costs as little of
//! the machine's CPU as it can (it shares the cores with the server).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Latencies (µs) and counts of one measured run.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub latencies_us: Vec<u32>,
    pub errors: u64,
    pub elapsed: Duration,
    /// The body of the first failed reply (cut short), to say what went wrong.
    pub first_error: Option<String>,
}

impl Sample {
    pub fn merge(&mut self, other: Sample) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        self.elapsed = self.elapsed.max(other.elapsed);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    pub fn count(&self) -> u64 {
        self.latencies_us.len() as u64 + self.errors
    }

    /// Successful requests per second.
    pub fn per_second(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The `q` quantile in milliseconds (0 when nothing succeeded).
    pub fn quantile_ms(&mut self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        self.latencies_us.sort_unstable();
        let i = ((self.latencies_us.len() as f64 * q) as usize).min(self.latencies_us.len() - 1);
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

/// The bounds of a run: whichever comes first.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub requests: u64,
    pub duration: Duration,
}

/// A request body per request number (so requests may differ, e.g. one workspace each).
pub type Body = Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync>;

/// `POST path` with `body(n)` on `connections` keep-alive connections until `bounds`; a reply
/// counts as an error unless it is 2xx and its body has no `"error"` key.
pub async fn post(
    addr: SocketAddr,
    path: &str,
    bearer: &str,
    connections: usize,
    bounds: Bounds,
    body: Body,
) -> anyhow::Result<Sample> {
    send("POST", addr, path, bearer, connections, bounds, body).await
}

/// [`post`] with another method (`GET` sends the body too: give it an empty one).
pub async fn send(
    method: &'static str,
    addr: SocketAddr,
    path: &str,
    bearer: &str,
    connections: usize,
    bounds: Bounds,
    body: Body,
) -> anyhow::Result<Sample> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + bounds.duration;
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        let (next, body, path, bearer) = (next.clone(), body.clone(), path.to_owned(), bearer.to_owned());
        tasks.push(tokio::spawn(async move {
            connection(method, addr, &path, &bearer, bounds.requests, deadline, &next, &*body).await
        }));
    }
    let mut sample = Sample::default();
    for task in tasks {
        sample.merge(task.await??);
    }
    sample.elapsed = started.elapsed();
    Ok(sample)
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    method: &str,
    addr: SocketAddr,
    path: &str,
    bearer: &str,
    limit: u64,
    deadline: Instant,
    next: &AtomicU64,
    body: &(dyn Fn(u64) -> Vec<u8> + Send + Sync),
) -> anyhow::Result<Sample> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut sample = Sample::default();
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= limit || Instant::now() >= deadline {
            break;
        }
        let payload = body(n);
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {bearer}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            payload.len()
        )
        .into_bytes();
        request.extend_from_slice(&payload);
        let t = Instant::now();
        stream.write_all(&request).await?;
        let failure = read_reply(&mut stream, &mut buf).await?;
        let us = t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        match failure {
            None => sample.latencies_us.push(us),
            Some(reply) => {
                sample.errors += 1;
                sample.first_error.get_or_insert(reply);
            }
        }
    }
    Ok(sample)
}

/// Reads one HTTP/1.1 reply with a Content-Length body; `Some(reply)` when it is a failure.
async fn read_reply(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<Option<String>> {
    buf.clear();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..header_end]).unwrap_or_default().to_ascii_lowercase();
    let status_ok = head.starts_with("http/1.1 2");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("a reply without Content-Length"))?;
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "the server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = &buf[header_end..header_end + length];
    if status_ok && find(body, b"\"error\"").is_none() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&buf[..header_end + length]);
    Ok(Some(text.chars().take(300).collect()))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_sorted_latencies() {
        let mut s = Sample {
            latencies_us: (1..=100).rev().map(|v| v * 1000).collect(),
            errors: 2,
            elapsed: Duration::from_secs(2),
            first_error: None,
        };
        assert_eq!(s.quantile_ms(0.5), 51.0);
        assert_eq!(s.quantile_ms(0.99), 100.0);
        assert_eq!(s.count(), 102);
        assert_eq!(s.per_second(), 50.0);
        assert_eq!(Sample::default().quantile_ms(0.5), 0.0);
    }

    #[test]
    fn find_locates_the_header_end() {
        assert_eq!(find(b"HTTP/1.1 200 OK\r\n\r\n{}", b"\r\n\r\n"), Some(15));
        assert_eq!(find(b"abc", b"\r\n\r\n"), None);
    }
}
