//! [`TestServer`]: iamd on a test database, on a port the OS picks, stopped when dropped.
//! [`TestServer::call`] posts an `IamRequest` to `/api/v1/iam`.
//!
//! - [`TestServer::spawn`] runs the application **in this process**, as zero2prod's
//!   `spawn_app` does: `startup::Application` on port 0, served by
//!   `Application::serve` (Kafka too, when the settings name brokers) on a thread of its own
//!   with its own actix System. No binary to start, no log line to read the port from.
//! - [`TestServer::binary`] spawns the real `iamd serve` binary, for the tests of the process
//!   itself: what it prints and logs, signals, crashes and restarts, two processes.

use iamd::config::Settings;
use iamd::startup::Application;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

pub const GATEWAY_SECRET: &str = "test-gateway-secret-0123456789";

/// The settings every test server starts from; a test's own `IAMD_*` pairs go on top.
fn base_env(db_url: &str) -> Vec<(String, String)> {
    [
        ("IAMD_DATABASE_URL", db_url),
        ("IAMD_HTTP_LISTEN", "127.0.0.1:0"),
        ("IAMD_HTTP_GATEWAY_SECRET", GATEWAY_SECRET),
        ("IAMD_LOG_FORMAT", "json"),
        ("IAMD_LOG_LEVEL", "info"),
        ("IAMD_DATABASE_POOL_SIZE", "4"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

enum Runner {
    InProcess(InProcess),
    Binary(Binary),
}

/// The application on its own thread.
struct InProcess {
    /// Ends `Application::serve`.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    http: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    bootstrap_key: Option<String>,
}

/// The `iamd serve` process.
struct Binary {
    child: Child,
    /// Everything the process printed on standard output.
    stdout: Vec<String>,
    /// Everything it logged on standard error up to the "serving" line.
    stderr: Vec<String>,
    /// Everything it logged on standard error since, as it comes.
    later: Arc<Mutex<Vec<String>>>,
}

pub struct TestServer {
    runner: Runner,
    pub port: u16,
    pub base: String,
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
        .envs(base_env(db_url))
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
    /// Starts the application in this process and waits until it listens.
    pub fn spawn(db_url: &str, env: &[(&str, &str)]) -> TestServer {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self::in_process(db_url.to_owned(), env)
    }

    /// Starts the `iamd serve` binary and waits until it listens.
    pub fn binary(db_url: &str, env: &[(&str, &str)]) -> TestServer {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Self::process(db_url.to_owned(), env)
    }

    fn in_process(db_url: String, env: Vec<(String, String)>) -> TestServer {
        // The test's own pairs replace the base ones of the same name.
        let mut pairs = base_env(&db_url);
        pairs.retain(|(k, _)| env.iter().all(|(name, _)| name != k));
        pairs.extend(env.iter().cloned());
        let settings = Settings::from_sources("", pairs).expect("the test settings are valid");
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let app = match Application::build(&settings).await {
                    Ok(app) => app,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("{e:#}")));
                        return;
                    }
                };
                let key = app.bootstrap.as_ref().and_then(|b| b.admin_api_key.as_ref());
                let _ = ready_tx.send(Ok((app.port, app.handle(), key.map(|k| k.expose().to_owned()))));
                let stopped = async {
                    let _ = stop_rx.await;
                };
                if let Err(e) = app.serve(&settings, stopped).await {
                    eprintln!("in-process iamd: {e:#}");
                }
                actix_web::rt::System::current().stop();
            });
            // Until the System has stopped its arbiters (the actors, and their connections).
            let _ = system.run();
        });
        let (port, http, bootstrap_key) = match ready_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(ready)) => ready,
            Ok(Err(e)) => panic!("iamd did not start: {e}"),
            Err(_) => panic!("iamd did not start within 60 s"),
        };
        let runner =
            Runner::InProcess(InProcess { stop: Some(stop_tx), http, thread: Some(thread), bootstrap_key });
        Self::listening(runner, port, db_url, env)
    }

    fn listening(runner: Runner, port: u16, db_url: String, env: Vec<(String, String)>) -> TestServer {
        TestServer {
            runner,
            port,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            db_url,
            env,
        }
    }

    fn process(db_url: String, env: Vec<(String, String)>) -> TestServer {
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
        let runner = Runner::Binary(Binary { child, stdout: stdout_lines, stderr: logged, later });
        Self::listening(runner, port, db_url, env)
    }

    /// Stops the server and starts a new one of the same kind on the same database and
    /// settings: the process is killed (SIGKILL); the in-process application is stopped.
    pub fn restart(self) -> TestServer {
        let db_url = self.db_url.clone();
        let env = self.env.clone();
        let binary = matches!(self.runner, Runner::Binary(_));
        drop(self);
        if binary {
            Self::process(db_url, env)
        } else {
            Self::in_process(db_url, env)
        }
    }

    /// The admin API key the start-up bootstrap created (printed once by the binary).
    pub fn bootstrap_key(&self) -> Option<String> {
        match &self.runner {
            Runner::InProcess(app) => app.bootstrap_key.clone(),
            Runner::Binary(process) => process
                .stdout
                .iter()
                .find(|l| l.contains("admin API key"))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned),
        }
    }

    fn process_only(&self, what: &str) -> &Binary {
        match &self.runner {
            Runner::Binary(process) => process,
            Runner::InProcess(_) => panic!("{what}: only a process has it; start it with TestServer::binary"),
        }
    }

    /// What the process printed on standard output.
    pub fn stdout(&self) -> &[String] {
        &self.process_only("stdout").stdout
    }

    /// What the process logged on standard error up to the "serving" line.
    pub fn stderr(&self) -> &[String] {
        &self.process_only("stderr").stderr
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
        let pid = self.process_only("a signal").child.id();
        let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{name} failed");
    }

    /// Waits for the process to exit; its status, or None after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let Runner::Binary(process) = &mut self.runner else {
            panic!("wait_exit: start it with TestServer::binary")
        };
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = process.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Log lines whose text contains `needle`, from start-up on: the Kafka adapter starts
    /// before the "serving" line, so what it says first may be among the start-up lines.
    pub fn logged(&self, needle: &str) -> Vec<String> {
        let process = self.process_only("the log");
        let later = process.later.lock().unwrap();
        process.stderr.iter().chain(later.iter()).filter(|l| l.contains(needle)).cloned().collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        match &mut self.runner {
            Runner::Binary(process) => {
                let _ = process.child.kill();
                let _ = process.child.wait();
            }
            Runner::InProcess(app) => {
                // Not gracefully: idle keep-alive connections would hold a graceful stop. The
                // command is sent by the call; its future only waits for the stop to complete.
                drop(app.http.stop(false));
                if let Some(stop) = app.stop.take() {
                    let _ = stop.send(());
                }
                if let Some(thread) = app.thread.take() {
                    let _ = thread.join();
                }
            }
        }
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
