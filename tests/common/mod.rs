//! Helpers for the integration tests that start the test fixtures: the
//! fault-injecting proxy and the HTTPS gateway (`tests/fixtures`). Each
//! fixture runs as a child process on free loopback ports and is stopped
//! when its handle is dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use mlflowreg::http::{Credentials, HttpConfig};
use mlflowreg::Client;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python that runs the fixtures: `MLFLOWREG_TEST_PYTHON`, else the
/// repository's venv.
pub fn python() -> PathBuf {
    std::env::var_os("MLFLOWREG_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"))
}

pub fn server_uri() -> String {
    std::env::var("MLFLOWREG_TEST_TRACKING_URI").unwrap_or_else(|_| {
        panic!("MLFLOWREG_TEST_TRACKING_URI is not set; run the tests with scripts/test.sh, which starts the MLflow servers")
    })
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Transport settings for fault tests: few, short retries.
pub fn fast_config() -> HttpConfig {
    HttpConfig {
        max_retries: 2,
        backoff_factor: 0.05,
        backoff_jitter: 0.0,
        timeout: std::time::Duration::from_secs(2),
        ..HttpConfig::default()
    }
}

pub fn client_for(uri: &str, config: HttpConfig) -> Client {
    Client::with_settings(uri, "test", config, Credentials::None).expect("client")
}

/// A child process killed on drop.
pub struct Fixture {
    child: Child,
}

impl Drop for Fixture {
    /// Sends SIGTERM, so the fixture stops what it started (nginx), and
    /// SIGKILL when it has not exited after 10 s.
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the fixture's stderr goes: a new file in `MLFLOWREG_TEST_LOG_DIR`
/// (which scripts/test.sh searches for leaked credentials), else ours.
fn fixture_stderr(script: &str) -> Stdio {
    let Some(dir) = std::env::var_os("MLFLOWREG_TEST_LOG_DIR") else {
        return Stdio::inherit();
    };
    let path = PathBuf::from(dir).join(format!("{}-{}.log", script, uuid::Uuid::new_v4().simple()));
    std::fs::File::create(&path).map(Stdio::from).unwrap_or_else(|_| Stdio::inherit())
}

/// Starts a fixture script and returns it with its first stdout line.
fn start(script: &str, args: &[String], envs: &[(&str, &str)]) -> (Fixture, String) {
    let mut command = Command::new(python());
    command
        .arg(repo_root().join("tests/fixtures").join(script))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(fixture_stderr(script));
    for (key, value) in envs {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap_or_else(|err| panic!("starting {script} failed: {err}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let fixture = Fixture { child };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("reading the fixture's first line");
    assert!(!line.trim().is_empty(), "{script} exited before it was ready");
    (fixture, line.trim().to_string())
}

/// The fault-injecting proxy in front of the plain test server.
pub struct FaultProxy {
    _fixture: Fixture,
    pub uri: String,
}

impl FaultProxy {
    pub fn start(rules: serde_json::Value) -> Self {
        Self::start_for(&server_uri(), rules)
    }

    pub fn start_for(upstream: &str, rules: serde_json::Value) -> Self {
        let args = vec![
            "--upstream".to_string(),
            upstream.to_string(),
            "--rules".to_string(),
            rules.to_string(),
            "--max-lifetime".to_string(),
            "600".to_string(),
        ];
        let (fixture, line) = start("fault_proxy.py", &args, &[]);
        let port = line.strip_prefix("PORT ").unwrap_or_else(|| panic!("unexpected proxy output {line:?}"));
        FaultProxy {
            _fixture: fixture,
            uri: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The finished requests: `method`, `path`, `action`, `status`.
    pub fn log(&self) -> Vec<serde_json::Value> {
        let text = reqwest::blocking::get(format!("{}/__fault_proxy__/log", self.uri))
            .and_then(|r| r.text())
            .expect("reading the proxy log");
        serde_json::from_str(&text).expect("proxy log is JSON")
    }

    /// Like [`FaultProxy::count`], but first waits up to 10 s for `at_least`
    /// such requests, because a delayed request is logged only once the
    /// proxy has answered it.
    pub fn count_after(&self, method: &str, path: &str, at_least: usize) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let count = self.count(method, path);
            if count >= at_least || std::time::Instant::now() > deadline {
                return count;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// How many logged requests have `method` and a path containing `path`.
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.log()
            .iter()
            .filter(|e| e["method"] == method && e["path"].as_str().is_some_and(|p| p.contains(path)))
            .count()
    }
}

/// nginx with a throwaway CA in front of the plain test server.
pub struct Gateway {
    _fixture: Fixture,
    _dir: tempfile::TempDir,
    pub https_uri: String,
    pub mtls_uri: String,
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub user: String,
}

impl Gateway {
    pub fn start(password: &str) -> Self {
        let dir = tempfile::tempdir().expect("gateway directory");
        let args = vec![
            "--upstream".to_string(),
            server_uri(),
            "--dir".to_string(),
            dir.path().display().to_string(),
            "--max-lifetime".to_string(),
            "600".to_string(),
        ];
        let (fixture, line) = start("https_gateway.py", &args, &[("MLFLOWREG_GATEWAY_PASSWORD", password)]);
        let info: serde_json::Value = serde_json::from_str(&line).expect("gateway prints JSON");
        Gateway {
            _fixture: fixture,
            _dir: dir,
            https_uri: format!("https://127.0.0.1:{}", info["https_port"]),
            mtls_uri: format!("https://127.0.0.1:{}", info["mtls_port"]),
            ca: PathBuf::from(info["ca"].as_str().unwrap()),
            client_cert: PathBuf::from(info["client_cert"].as_str().unwrap()),
            user: info["user"].as_str().unwrap().to_string(),
        }
    }
}

/// The fixed fake credentials from `tests/fixtures/test-secrets.env`, which
/// scripts/test.sh exports and later searches every log for.
pub fn secret(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set; run the tests with scripts/test.sh, which reads tests/fixtures/test-secrets.env")
    })
}

/// A valid R serialization stream (the header of `serialize(NULL, NULL)`
/// and the NULL object) followed by `payload`, which the crate writer
/// stores as it is.
pub fn serialized(payload: &[u8]) -> Vec<u8> {
    let mut bytes = b"X\n".to_vec();
    for word in [3i32, 0x0004_0202, 0x0003_0500, 5] {
        bytes.extend_from_slice(&word.to_be_bytes());
    }
    bytes.extend_from_slice(b"UTF-8");
    bytes.extend_from_slice(&254i32.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// `len` pseudo-random bytes, which gzip cannot shrink.
pub fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Computes FNV-1a over a file's bytes, plus its length, read in 64 KiB
/// blocks: enough to tell two files apart in a test without a hashing
/// dependency.
pub fn fingerprint(path: &std::path::Path) -> String {
    use std::io::Read;

    let mut file = std::fs::File::open(path).unwrap();
    let mut buffer = vec![0u8; 1 << 16];
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
        for byte in &buffer[..n] {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}-{total}")
}
