//! [`TestServer`] spawns the real `iamd serve` binary on a test database, on a port the OS
//! picks (`IAMD_HTTP_LISTEN=127.0.0.1:0`, read back from the JSON start-up log line), and kills
//! it when dropped. [`TestServer::call`] posts an `IamRequest` to `/api/v1/iam`.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

pub const GATEWAY_SECRET: &str = "test-gateway-secret-0123456789";

pub struct TestServer {
    child: Child,
    pub port: u16,
    pub base: String,
    /// Everything the process printed on standard output.
    pub stdout: Vec<String>,
    /// Everything it logged on standard error up to the "serving" line.
    pub stderr: Vec<String>,
    /// Everything it logged on standard error since, as it comes.
    pub later: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
    db_url: String,
    env: Vec<(String, String)>,
}

/// The command line of `iamd serve` on `db_url` with test settings and `env` on top.
pub fn command(db_url: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_iamd"));
    cmd.arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("IAMD_DATABASE_URL", db_url)
        .env("IAMD_HTTP_LISTEN", "127.0.0.1:0")
        .env("IAMD_HTTP_GATEWAY_SECRET", GATEWAY_SECRET)
        .env("IAMD_LOG_FORMAT", "json")
        .env("IAMD_LOG_LEVEL", "info")
        .env("IAMD_DATABASE_POOL_SIZE", "4")
        .current_dir(std::env::temp_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `iamd ARGS…` once on `db_url` (no other `IAMD_*` setting) and returns its exit code,
/// standard output and standard error.
pub fn run_iamd(db_url: &str, args: &[&str]) -> (i32, String, String) {
    run_iamd_with(db_url, &[], args)
}

/// [`run_iamd`] with `env` (`IAMD_*` settings) on top.
pub fn run_iamd_with(db_url: &str, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_iamd"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("IAMD_DATABASE_URL", db_url)
        .envs(env.iter().copied())
        .current_dir(std::env::temp_dir())
        .output()
        .expect("the iamd binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().expect("an exit code"), stdout, stderr)
}

impl TestServer {
    /// Starts `iamd serve` and waits until it listens.
    pub fn spawn(db_url: &str, env: &[(&str, &str)]) -> TestServer {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self::start(db_url.to_owned(), env)
    }

    fn start(db_url: String, env: Vec<(String, String)>) -> TestServer {
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut child = command(&db_url, &pairs)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning iamd");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (out_tx, out_rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = out_tx.send(line);
            }
        });
        let (err_tx, err_rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = err_tx.send(line);
            }
        });
        let mut logged = Vec::new();
        let port = loop {
            match err_rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    let port = serde_json::from_str::<Value>(&line)
                        .ok()
                        .and_then(|v| v["fields"]["port"].as_u64())
                        .filter(|_| line.contains("iamd serving HTTP"));
                    logged.push(line);
                    if let Some(p) = port {
                        break p as u16;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!("iamd did not start; it said:\n{}", logged.join("\n"));
                }
            }
        };
        // Keep draining stderr so the child never blocks on a full pipe.
        let later = Arc::new(Mutex::new(Vec::new()));
        let sink = later.clone();
        std::thread::spawn(move || {
            while let Ok(line) = err_rx.recv() {
                sink.lock().unwrap().push(line);
            }
        });
        // Give stdout a moment: the bootstrap lines are printed before serving starts.
        let mut stdout_lines = Vec::new();
        while let Ok(line) = out_rx.recv_timeout(Duration::from_millis(200)) {
            stdout_lines.push(line);
        }
        TestServer {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            stdout: stdout_lines,
            stderr: logged,
            later,
            http: reqwest::Client::new(),
            db_url,
            env,
        }
    }

    /// Stops the process (SIGKILL) and starts a new one on the same database and settings.
    pub fn restart(self) -> TestServer {
        let db_url = self.db_url.clone();
        let env = self.env.clone();
        drop(self);
        Self::start(db_url, env)
    }

    /// `POST /api/v1/iam` with the gateway secret; returns (status, body).
    pub async fn post(&self, bearer: Option<&str>, body: &str) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}/api/v1/iam", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        let resp = req.send().await.expect("HTTP request to iamd");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// An `IamRequest` through the gateway secret; asserts HTTP 200 and returns the body.
    pub async fn call(&self, request: Value) -> Value {
        self.call_as(GATEWAY_SECRET, request).await
    }

    /// Creates a user in `ws` through the gateway; its id.
    pub async fn create_user(&self, ws: &str, username: &str, password: &str, roles: &[&str]) -> String {
        let reply = ok(self
            .call(serde_json::json!({"operation": "create-user", "workspace": ws,
                "user": {"username": username, "password": password, "roles": roles}}))
            .await);
        reply["user"]["id"].as_str().expect("a user id").to_owned()
    }

    /// A JWT from a login through the gateway.
    pub async fn jwt(&self, username: &str, password: &str) -> String {
        let reply = ok(self
            .call(serde_json::json!({"operation": "login", "username": username, "password": password}))
            .await);
        reply["jwt"].as_str().expect("a jwt").to_owned()
    }

    pub async fn call_as(&self, bearer: &str, request: Value) -> Value {
        let (status, body) = self.post(Some(bearer), &request.to_string()).await;
        assert_eq!(status, 200, "{request} -> {status} {body}");
        body
    }

    /// Any request: (status, JSON body), `Value::Null` for an empty body and the text as a
    /// `Value::String` when it is not JSON.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self.http.get(format!("{}{path}", self.base)).send().await.expect("GET");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

impl TestServer {
    /// Sends a signal (`TERM`, `KILL`) to the process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} failed");
    }

    /// Waits for the process to exit; its status, or None after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Log lines whose text contains `needle`, from start-up on: the Kafka adapter starts
    /// before the "serving" line, so what it says first may be among the start-up lines.
    pub fn logged(&self, needle: &str) -> Vec<String> {
        let later = self.later.lock().unwrap();
        self.stderr.iter().chain(later.iter()).filter(|l| l.contains(needle)).cloned().collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The error type of a reply, or "" when it succeeded.
pub fn error_type(reply: &Value) -> &str {
    reply["error"]["type"].as_str().unwrap_or("")
}

/// Asserts success and returns the reply.
#[track_caller]
pub fn ok(reply: Value) -> Value {
    assert!(reply.get("error").is_none(), "expected success, got {reply}");
    reply
}
