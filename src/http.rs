//! The one HTTP client: authentication, TLS, timeouts, retries and decoding
//! of MLflow error bodies.
//!
//! Every request of the crate goes through [`Http::send`], so the retry
//! policy and the redaction rules live here and nowhere else.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::blocking::{Body, Client as ReqwestClient, RequestBuilder, Response};
pub use reqwest::Method;
use reqwest::StatusCode;
use serde::Deserialize;
use url::Url;

use crate::artifacts::progress::{CountingReader, Progress};
use crate::azureml::JobToken;
use crate::cancel::CancelToken;
use crate::error::{Error, Result};

/// `MLFLOW_HTTP_REQUEST_MAX_RETRIES` default, as in Python mlflow.
pub const DEFAULT_MAX_RETRIES: u32 = 7;
/// `MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR` default in seconds, as in Python mlflow.
pub const DEFAULT_BACKOFF_FACTOR: f64 = 2.0;
/// `MLFLOW_HTTP_REQUEST_BACKOFF_JITTER` default in seconds, as in Python mlflow.
pub const DEFAULT_BACKOFF_JITTER: f64 = 1.0;
/// `MLFLOW_HTTP_REQUEST_TIMEOUT` default in seconds, as in Python mlflow.
pub const DEFAULT_TIMEOUT_SECS: u64 = 120;
/// Longest single wait between two attempts, in seconds.
pub const MAX_BACKOFF_SECS: f64 = 120.0;

/// Statuses retried with backoff, the same set as Python mlflow.
const RETRY_STATUSES: [u16; 6] = [408, 429, 500, 502, 503, 504];

/// Largest error body kept for the error message, in bytes.
const MAX_ERROR_BODY: usize = 4096;

/// Transport settings, read from the `MLFLOW_*` environment variables.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// Retries after the first attempt (`MLFLOW_HTTP_REQUEST_MAX_RETRIES`).
    pub max_retries: u32,
    /// Base of the exponential backoff in seconds (`MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`).
    pub backoff_factor: f64,
    /// Upper bound of the random extra wait in seconds (`MLFLOW_HTTP_REQUEST_BACKOFF_JITTER`).
    pub backoff_jitter: f64,
    /// Timeout of one attempt, connect to last byte (`MLFLOW_HTTP_REQUEST_TIMEOUT`).
    pub timeout: Duration,
    /// Skip TLS certificate verification (`MLFLOW_TRACKING_INSECURE_TLS`).
    pub insecure_tls: bool,
    /// PEM file with a CA to trust (`MLFLOW_TRACKING_SERVER_CERT_PATH`).
    pub server_cert: Option<PathBuf>,
    /// PEM file with client certificate and key (`MLFLOW_TRACKING_CLIENT_CERT_PATH`).
    pub client_cert: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_retries: DEFAULT_MAX_RETRIES,
            backoff_factor: DEFAULT_BACKOFF_FACTOR,
            backoff_jitter: DEFAULT_BACKOFF_JITTER,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            insecure_tls: false,
            server_cert: None,
            client_cert: None,
        }
    }
}

impl HttpConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`; an unset or empty variable
    /// keeps the default, and a value that does not parse is an error.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut config = HttpConfig::default();
        if let Some(value) = get("MLFLOW_HTTP_REQUEST_MAX_RETRIES") {
            config.max_retries = parse_env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", &value, "a whole number")?;
        }
        if let Some(value) = get("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR") {
            config.backoff_factor = parse_seconds("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", &value)?;
        }
        if let Some(value) = get("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER") {
            config.backoff_jitter = parse_seconds("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", &value)?;
        }
        if let Some(value) = get("MLFLOW_HTTP_REQUEST_TIMEOUT") {
            let secs = parse_seconds("MLFLOW_HTTP_REQUEST_TIMEOUT", &value)?;
            if secs <= 0.0 {
                return Err(Error::Configuration(format!(
                    "MLFLOW_HTTP_REQUEST_TIMEOUT is {value:?}; set it to a positive number of seconds"
                )));
            }
            config.timeout = Duration::from_secs_f64(secs);
        }
        if let Some(value) = get("MLFLOW_TRACKING_INSECURE_TLS") {
            config.insecure_tls = parse_bool("MLFLOW_TRACKING_INSECURE_TLS", &value)?;
        }
        config.server_cert = get("MLFLOW_TRACKING_SERVER_CERT_PATH").map(PathBuf::from);
        config.client_cert = get("MLFLOW_TRACKING_CLIENT_CERT_PATH").map(PathBuf::from);
        Ok(config)
    }
}

fn parse_env<T: std::str::FromStr>(name: &str, value: &str, expected: &str) -> Result<T> {
    value.trim().parse().map_err(|_| {
        Error::Configuration(format!("{name} is {value:?}; set it to {expected} or unset it"))
    })
}

/// Largest number of seconds a setting takes (about 31 years); larger
/// values do not fit a `Duration` computation safely.
const MAX_SETTING_SECS: f64 = 1e9;

fn parse_seconds(name: &str, value: &str) -> Result<f64> {
    let secs: f64 = parse_env(name, value, "a number of seconds")?;
    if !secs.is_finite() || !(0.0..=MAX_SETTING_SECS).contains(&secs) {
        return Err(Error::Configuration(format!(
            "{name} is {value:?}; set it to a number of seconds from 0 to {MAX_SETTING_SECS:e}"
        )));
    }
    Ok(secs)
}

fn parse_bool(name: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(Error::Configuration(format!(
            "{name} is {value:?}; set it to true or false"
        ))),
    }
}

/// A credential that never shows in `Debug` output.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// Returns the secret itself; call only where it goes on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How requests authenticate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Credentials {
    None,
    /// `Authorization: Bearer <token>` from `MLFLOW_TRACKING_TOKEN`.
    Bearer(Secret),
    /// Basic auth from `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD`.
    Basic { username: String, password: Secret },
    /// An Azure ML token, refreshed before it expires and once after a 401
    /// when it comes from a job (see [`crate::azureml::JobToken`]).
    AzureMl(JobToken),
}

impl Credentials {
    /// Reads credentials from the environment. Basic auth wins when both a
    /// username/password pair and a token are set, as in Python mlflow.
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        if let (Some(username), Some(password)) = (
            get("MLFLOW_TRACKING_USERNAME"),
            get("MLFLOW_TRACKING_PASSWORD"),
        ) {
            return Credentials::Basic {
                username,
                password: Secret::new(password),
            };
        }
        match get("MLFLOW_TRACKING_TOKEN") {
            Some(token) => Credentials::Bearer(Secret::new(token)),
            None => Credentials::None,
        }
    }

    fn apply(&self, request: RequestBuilder) -> RequestBuilder {
        match self {
            Credentials::None => request,
            Credentials::Bearer(token) => request.bearer_auth(token.expose()),
            Credentials::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose()))
            }
            // Needs the client for a refresh, so Http::authorize handles it.
            Credentials::AzureMl(_) => request,
        }
    }
}

/// A request body that can be rebuilt for every attempt.
pub enum RequestBody<'a> {
    Empty,
    Json(&'a serde_json::Value),
    Bytes(&'a [u8]),
    /// Streamed from disk; the file is reopened for each attempt.
    File(&'a std::path::Path),
    /// A byte range of a file, streamed from disk and reopened for each attempt.
    FileRange(FileRange<'a>),
}

/// The bytes `offset..offset + len` of a file.
#[derive(Debug, Clone, Copy)]
pub struct FileRange<'a> {
    pub path: &'a Path,
    pub offset: u64,
    /// Length in bytes; `None` sends everything from `offset` to the end.
    pub len: Option<u64>,
    /// Receives the bytes as they are read; a failed attempt takes its
    /// bytes back before the retry.
    pub progress: Option<&'a Arc<Progress>>,
}

/// Whether a request carries the tracking server's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    Tracking,
    /// For presigned URLs such as Azure SAS URLs: the URL is the credential,
    /// and the tracking token must not leak to another host.
    None,
}

/// The HTTP client shared by all REST calls and artifact transfers of a
/// [`crate::Client`].
#[derive(Debug, Clone)]
pub struct Http {
    client: ReqwestClient,
    config: HttpConfig,
    credentials: Credentials,
    /// Where the tracking URI came from, for "cannot reach" errors.
    origin: String,
    /// Checked before each attempt, while waiting and between body chunks.
    cancel: CancelToken,
    /// The async client for [`Http::upload`], shared by clones.
    uploader: Arc<LazyUploader>,
}

/// Bytes per frame of a body sent by [`Http::upload`]. The frames of one
/// upload are the only buffers of its data, so memory per upload stays
/// below a few times this size.
pub const UPLOAD_FRAME_BYTES: usize = 256 * 1024;

struct Uploader {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

#[derive(Default)]
struct LazyUploader(OnceLock<Uploader>);

impl fmt::Debug for LazyUploader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.get().is_some() { "LazyUploader(built)" } else { "LazyUploader(unbuilt)" })
    }
}

/// Reads the CA bundle and client identity the configuration names.
fn load_tls(config: &HttpConfig) -> Result<(Vec<reqwest::Certificate>, Option<reqwest::Identity>)> {
    let mut roots = Vec::new();
    if let Some(path) = &config.server_cert {
        let pem = std::fs::read(path).map_err(|err| Error::io("reading the CA certificate", path, err))?;
        roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|err| {
            Error::Configuration(format!(
                "MLFLOW_TRACKING_SERVER_CERT_PATH {path:?} is not a PEM certificate bundle: {err}"
            ))
        })?;
    }
    let mut identity = None;
    if let Some(path) = &config.client_cert {
        let pem = std::fs::read(path).map_err(|err| Error::io("reading the client certificate", path, err))?;
        identity = Some(reqwest::Identity::from_pem(&pem).map_err(|err| {
            Error::Configuration(format!(
                "MLFLOW_TRACKING_CLIENT_CERT_PATH {path:?} must hold a PEM certificate and its private key: {err}"
            ))
        })?);
    }
    Ok((roots, identity))
}

/// A file range as an async request body, read in frames of
/// [`UPLOAD_FRAME_BYTES`]. Reads happen inside `poll_frame`, on the upload
/// runtime's thread: a read of one frame from a local disk is short, and
/// this keeps the body free of another thread hand-off.
struct FileBody {
    reader: std::io::Take<std::fs::File>,
    remaining: u64,
    progress: Option<(Arc<Progress>, Arc<AtomicU64>)>,
    cancel: CancelToken,
}

impl FileBody {
    fn open(range: &FileRange<'_>, attempt_bytes: &Arc<AtomicU64>, cancel: &CancelToken) -> Result<Self> {
        let (reader, len) = open_range(range)?;
        Ok(FileBody {
            reader,
            remaining: len,
            progress: range.progress.map(|p| (Arc::clone(p), Arc::clone(attempt_bytes))),
            cancel: cancel.clone(),
        })
    }
}

impl http_body::Body for FileBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        use std::task::Poll;
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let progress_cancelled = self.progress.as_ref().is_some_and(|(progress, _)| progress.is_cancelled());
        if progress_cancelled || self.cancel.is_cancelled() {
            // Not ErrorKind::Interrupted, which readers retry.
            return Poll::Ready(Some(Err(std::io::Error::other("the transfer was cancelled"))));
        }
        let size = self.remaining.min(UPLOAD_FRAME_BYTES as u64) as usize;
        // read_to_end fills the spare capacity without zeroing it first.
        let mut frame = Vec::with_capacity(size);
        match (&mut self.reader).take(size as u64).read_to_end(&mut frame) {
            Ok(n) if n == size => {}
            Ok(n) => {
                return Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the file ended {} bytes early; it changed during the upload", self.remaining - n as u64),
                ))))
            }
            Err(err) => return Poll::Ready(Some(Err(err))),
        }
        self.remaining -= size as u64;
        if let Some((progress, attempt)) = &self.progress {
            progress.add_bytes(size as u64);
            attempt.fetch_add(size as u64, Ordering::Relaxed);
        }
        Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from(frame)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

impl Http {
    /// Builds the client; fails when a certificate file cannot be read.
    pub fn new(config: HttpConfig, credentials: Credentials, origin: impl Into<String>) -> Result<Self> {
        let mut builder = ReqwestClient::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(30)))
            .user_agent(concat!("mlflowreg/", env!("CARGO_PKG_VERSION")));
        if config.insecure_tls {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let (roots, identity) = load_tls(&config)?;
        for cert in roots {
            builder = builder.add_root_certificate(cert);
        }
        if let Some(identity) = identity {
            builder = builder.identity(identity);
        }
        let client = builder
            .build()
            .map_err(|err| Error::Configuration(format!("cannot build the HTTP client: {err}")))?;
        Ok(Http {
            client,
            config,
            credentials,
            origin: origin.into(),
            cancel: CancelToken::new(),
            uploader: Arc::new(LazyUploader::default()),
        })
    }

    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// Returns a copy that shares the connection pool but stops its
    /// requests when `cancel` is set.
    pub fn with_cancel(&self, cancel: CancelToken) -> Self {
        Http { cancel, ..self.clone() }
    }

    /// Returns the token that stops this client's requests.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// Sends a request with retries and returns the successful response.
    ///
    /// The retry policy is [`Http::execute`]'s. Use it for requests that
    /// have the same effect when repeated (GET, PUT, DELETE, and POSTs that
    /// set a value); [`Http::send_json_checked`] is for creates.
    pub fn send(&self, method: Method, url: &Url, body: RequestBody<'_>) -> Result<Response> {
        let request = Request { method: &method, url, body: &body, auth: Auth::Tracking, headers: &BTreeMap::new() };
        self.execute(&request, None, &mut |response| Ok(response))
    }

    /// Sends a request to a presigned URL, such as an Azure SAS URL, with the
    /// retry policy of [`Http::send`] but without the tracking credentials.
    /// `headers` are sent as given, so a caller with a credential of its own
    /// passes it as an `Authorization` header.
    pub fn send_presigned(
        &self,
        method: Method,
        url: &Url,
        body: RequestBody<'_>,
        headers: &BTreeMap<String, String>,
    ) -> Result<Response> {
        let request = Request { method: &method, url, body: &body, auth: Auth::None, headers };
        self.execute(&request, None, &mut |response| Ok(response))
    }

    /// Sends a JSON request and decodes the JSON response; an empty body
    /// decodes as `{}`. A connection lost while the response body arrives
    /// is retried like one lost before it.
    pub fn send_json(&self, method: Method, url: &Url, body: Option<&serde_json::Value>) -> Result<serde_json::Value> {
        let body = body.map_or(RequestBody::Empty, RequestBody::Json);
        let request = Request { method: &method, url, body: &body, auth: Auth::Tracking, headers: &BTreeMap::new() };
        let text = self.execute(&request, None, &mut read_text)?;
        parse_json(&text, &method, url)
    }

    /// Sends a request that must not be applied twice, such as
    /// `model-versions/create`, and decodes the JSON response.
    ///
    /// A failure can leave unknown whether the server applied the request:
    /// a timeout, a connection lost after the request was sent, or 500,
    /// 502, 503, 504. After one, `took_effect` looks the result up on the
    /// server. `Some(response)` is returned as if the lost response had
    /// arrived, and `None` lets the request be sent again. Failures where
    /// the server cannot have applied it (connection refused, 408, 429) are
    /// retried without asking.
    pub fn send_json_checked(
        &self,
        method: Method,
        url: &Url,
        body: &serde_json::Value,
        took_effect: &dyn Fn() -> Result<Option<serde_json::Value>>,
    ) -> Result<serde_json::Value> {
        let recovered = std::cell::Cell::new(false);
        let probe = || {
            let found = took_effect()?;
            recovered.set(found.is_some());
            Ok(found.map(|value| value.to_string()))
        };
        let body = RequestBody::Json(body);
        let request = Request { method: &method, url, body: &body, auth: Auth::Tracking, headers: &BTreeMap::new() };
        let text = self.execute(&request, Some(&probe), &mut read_text)?;
        if recovered.get() {
            tracing::info!(
                method = %method, route = url.path(),
                "an earlier attempt of the MLflow request took effect; not sending it again"
            );
        }
        parse_json(&text, &method, url)
    }

    /// Downloads `url` into `file`, which is emptied before each attempt, so
    /// a connection lost in the middle of the body is retried as a whole.
    pub fn download(&self, url: &Url, file: &mut std::fs::File) -> Result<()> {
        self.download_with_progress(url, file, None)
    }

    /// Downloads like [`Http::download`] and adds the bytes written to
    /// `progress`; an attempt that fails takes its bytes back.
    pub fn download_with_progress(&self, url: &Url, file: &mut std::fs::File, progress: Option<&Progress>) -> Result<()> {
        let cancel = self.cancel.clone();
        let request = Request {
            method: &Method::GET,
            url,
            body: &RequestBody::Empty,
            auth: Auth::Tracking,
            headers: &BTreeMap::new(),
        };
        self.execute(&request, None, &mut |mut response| copy_body(&mut response, file, &cancel, progress))
    }

    /// Uploads a byte range of a file as the body of one request and
    /// returns the response headers, with the retry policy of
    /// [`Http::execute`]. `presigned` carries the headers of a presigned
    /// URL, which is sent without the tracking server's credentials.
    ///
    /// Unlike a [`RequestBody::FileRange`] given to [`Http::send`], the body
    /// goes through reqwest's async client in frames of
    /// [`UPLOAD_FRAME_BYTES`]. reqwest's blocking bodies hand 8 KiB at a
    /// time from the reading thread to the runtime's thread. A 1 GiB PUT to
    /// a loopback socket that discards the data took 7.9 s that way and
    /// 0.6 s this way, as long as curl took (2-core machine under load).
    pub fn upload(
        &self,
        method: Method,
        url: &Url,
        range: FileRange<'_>,
        presigned: Option<&BTreeMap<String, String>>,
    ) -> Result<reqwest::header::HeaderMap> {
        let uploader = self.uploader()?;
        let started = std::time::Instant::now();
        let mut attempt: u32 = 0;
        let mut refreshed_after_401 = false;
        loop {
            self.cancel.check()?;
            attempt += 1;
            let attempt_bytes = Arc::new(AtomicU64::new(0));
            let body = FileBody::open(&range, &attempt_bytes, &self.cancel)?;
            let mut request = uploader.client.request(method.clone(), url.clone()).body(reqwest::Body::wrap(body));
            let mut token_generation = None;
            match presigned {
                Some(headers) => {
                    for (name, value) in headers {
                        request = request.header(name.as_str(), value.as_str());
                    }
                }
                None => {
                    let (authorized, generation) = self.authorize_async(request)?;
                    request = authorized;
                    token_generation = generation;
                }
            }
            let outcome = uploader.runtime.block_on(async move {
                let response = request.send().await?;
                let status = response.status();
                let headers = response.headers().clone();
                let text = if status.is_success() { String::new() } else { response.text().await.unwrap_or_default() };
                Ok::<_, reqwest::Error>((status, headers, text))
            });
            let failure = match outcome {
                Ok((status, headers, _)) if status.is_success() => return Ok(headers),
                Ok((status, _, text)) if status == StatusCode::UNAUTHORIZED && token_generation.is_some() => {
                    let Credentials::AzureMl(token) = &self.credentials else { unreachable!("only Azure ML tokens have a generation") };
                    rollback(range.progress, &attempt_bytes);
                    if refreshed_after_401 || !token.can_refresh() {
                        return Err(token.rejected(decode_error_text(status, text, &method, url)));
                    }
                    refreshed_after_401 = true;
                    tracing::info!(method = %method, route = url.path(), "Azure ML returned 401, refreshing the job token");
                    token.refresh_after_rejection(self, token_generation.expect("checked above"))?;
                    attempt -= 1;
                    continue;
                }
                Ok((status, headers, text)) => Failure {
                    retry: retry_for_status(status.as_u16()),
                    wait: retry_after(&headers),
                    status: Some(status.as_u16()),
                    error: decode_error_text(status, text, &method, url),
                },
                Err(err) => self.transport_failure(url, err)?,
            };
            rollback(range.progress, &attempt_bytes);
            self.wait_before_retry(&method, url, attempt, started, failure)?;
        }
    }

    /// The retry loop every request goes through.
    ///
    /// Statuses 408, 429, 500, 502, 503, 504 and transport errors are
    /// retried up to `max_retries` times, waiting `backoff_factor * 2^(n-1)`
    /// seconds plus up to `backoff_jitter` seconds, or the `Retry-After`
    /// value, capped at [`MAX_BACKOFF_SECS`]. A connection that cannot be
    /// made is retried only while the total time stays within one request
    /// timeout. Any other error status returns [`Error::Api`] at once.
    ///
    /// `read` consumes a successful response inside the loop, so its
    /// transport errors are retried too. With `took_effect`, an ambiguous
    /// failure is only retried when it returns `None` (see
    /// [`Http::send_json_checked`]). With [`Credentials::AzureMl`], a 401
    /// response makes a job token refresh once and the request repeat
    /// without counting as a retry. Every retry is logged at info level
    /// with method, route, status or error, and attempt; the body, query
    /// string and credentials are never logged.
    fn execute<T>(
        &self,
        request: &Request<'_>,
        took_effect: Option<&dyn Fn() -> Result<Option<T>>>,
        read: &mut dyn FnMut(Response) -> std::result::Result<T, ReadError>,
    ) -> Result<T> {
        let Request { method, url, body, auth, headers } = *request;
        let started = std::time::Instant::now();
        let mut attempt: u32 = 0;
        let mut refreshed_after_401 = false;
        let progress = match body {
            RequestBody::FileRange(range) => range.progress,
            _ => None,
        };
        loop {
            self.cancel.check()?;
            attempt += 1;
            let attempt_bytes = Arc::new(AtomicU64::new(0));
            let mut builder = self.build(method.clone(), url, body, &attempt_bytes)?;
            for (name, value) in headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            let mut token_generation = None;
            if auth == Auth::Tracking {
                let (authorized, generation) = self.authorize(builder)?;
                builder = authorized;
                token_generation = generation;
            }
            let outcome = builder.send();

            if let (Credentials::AzureMl(token), Some(generation), Ok(response)) =
                (&self.credentials, token_generation, &outcome)
            {
                if response.status() == StatusCode::UNAUTHORIZED {
                    rollback(progress, &attempt_bytes);
                    if refreshed_after_401 || !token.can_refresh() {
                        let Ok(response) = outcome else { unreachable!("matched Ok above") };
                        return Err(token.rejected(decode_error(response, method, url)));
                    }
                    refreshed_after_401 = true;
                    tracing::info!(method = %method, route = url.path(), "Azure ML returned 401, refreshing the job token");
                    token.refresh_after_rejection(self, generation)?;
                    attempt -= 1;
                    continue;
                }
            }

            let failure = match outcome {
                Ok(response) if response.status().is_success() => match read(response) {
                    Ok(value) => return Ok(value),
                    Err(ReadError::Local(err)) => return Err(err),
                    Err(ReadError::Transport(message)) => Failure {
                        retry: Retry::Ambiguous,
                        wait: None,
                        status: None,
                        error: self.unreachable_message(url, format!("the response was cut off: {message}")),
                    },
                },
                Ok(response) => {
                    let status = response.status().as_u16();
                    let wait = retry_after(response.headers());
                    Failure {
                        retry: retry_for_status(status),
                        wait,
                        status: Some(status),
                        error: decode_error(response, method, url),
                    }
                }
                Err(err) => self.transport_failure(url, err)?,
            };
            rollback(progress, &attempt_bytes);
            let retry = failure.retry;
            let failure_error = self.wait_before_retry(method, url, attempt, started, failure)?;
            if let (Retry::Ambiguous, Some(took_effect)) = (retry, took_effect) {
                match took_effect() {
                    Ok(Some(value)) => return Ok(value),
                    Ok(None) => {}
                    Err(Error::Interrupted) => return Err(Error::Interrupted),
                    Err(check) => {
                        return Err(failure_error.with_note(&format!(
                            "whether the server applied the request is unknown, because looking it up failed: {check}"
                        )))
                    }
                }
            }
        }
    }

    /// Classifies a transport error for the retry policy; an error in
    /// building the request is returned at once.
    fn transport_failure(&self, url: &Url, err: reqwest::Error) -> Result<Failure> {
        if err.is_builder() {
            return Err(Error::Configuration(format!(
                "cannot build the request to {}: {}; check MLFLOW_TRACKING_TOKEN, \
                 MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD for invalid characters",
                redact_url(url),
                err.without_url()
            )));
        }
        let retry = if err.is_connect() {
            Retry::NotApplied
        } else if err.is_timeout() || err.is_request() || err.is_body() {
            Retry::Ambiguous
        } else {
            Retry::Never
        };
        Ok(Failure {
            retry,
            wait: None,
            status: None,
            error: self.unreachable(url, err),
        })
    }

    /// Applies the retry policy to a failed attempt: returns its error when
    /// no retry is due, else waits the backoff and returns the error for a
    /// note should the retry be given up later.
    fn wait_before_retry(
        &self,
        method: &Method,
        url: &Url,
        attempt: u32,
        started: std::time::Instant,
        failure: Failure,
    ) -> Result<Error> {
        // An upload aborted by the cancellation flag fails as a transport error.
        self.cancel.check()?;
        if failure.retry == Retry::Never || attempt > self.config.max_retries {
            return Err(failure.error);
        }
        let wait = failure.wait.unwrap_or_else(|| self.backoff(attempt));
        // A server that cannot be reached fails within one request
        // timeout in total, not after every retry's backoff.
        let connection_failed = failure.status.is_none() && failure.retry == Retry::NotApplied;
        if connection_failed && started.elapsed() + wait >= self.config.timeout {
            return Err(failure.error);
        }
        match failure.status {
            Some(status) => tracing::info!(
                method = %method, route = url.path(), status, attempt,
                max_retries = self.config.max_retries, wait_secs = wait.as_secs_f64(),
                "retrying MLflow request"
            ),
            None => tracing::info!(
                method = %method, route = url.path(), error = %failure.error, attempt,
                max_retries = self.config.max_retries, wait_secs = wait.as_secs_f64(),
                "retrying MLflow request after a connection error"
            ),
        }
        self.cancel.sleep(wait)?;
        Ok(failure.error)
    }

    /// Adds the tracking credentials to a request of the async client, as
    /// [`Http::authorize`] does for the blocking one.
    fn authorize_async(&self, request: reqwest::RequestBuilder) -> Result<(reqwest::RequestBuilder, Option<u64>)> {
        Ok(match &self.credentials {
            Credentials::AzureMl(token) => {
                let (secret, generation) = token.bearer(self)?;
                (request.bearer_auth(secret.expose()), Some(generation))
            }
            Credentials::None => (request, None),
            Credentials::Bearer(token) => (request.bearer_auth(token.expose()), None),
            Credentials::Basic { username, password } => (request.basic_auth(username, Some(password.expose())), None),
        })
    }

    /// Returns the async client for uploads, built on first use with the
    /// settings of the blocking one.
    fn uploader(&self) -> Result<&Uploader> {
        if let Some(uploader) = self.uploader.0.get() {
            return Ok(uploader);
        }
        let (roots, identity) = load_tls(&self.config)?;
        // No total timeout: an upload of many GiB may rightly take longer
        // than MLFLOW_HTTP_REQUEST_TIMEOUT. The timeout bounds the connect and
        // each wait for response bytes instead.
        // NOTE: a server that stops reading the body mid-upload is therefore
        // only noticed by TCP, not by this timeout.
        let mut builder = reqwest::Client::builder()
            .connect_timeout(self.config.timeout.min(Duration::from_secs(30)))
            .read_timeout(self.config.timeout)
            .user_agent(concat!("mlflowreg/", env!("CARGO_PKG_VERSION")));
        if self.config.insecure_tls {
            builder = builder.danger_accept_invalid_certs(true);
        }
        for cert in roots {
            builder = builder.add_root_certificate(cert);
        }
        if let Some(identity) = identity {
            builder = builder.identity(identity);
        }
        let client = builder
            .build()
            .map_err(|err| Error::Configuration(format!("cannot build the HTTP upload client: {err}")))?;
        // Two threads drive the connections of all uploads of this client,
        // while the calling threads wait in block_on.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mlflowreg-upload")
            .enable_all()
            .build()
            .map_err(|err| Error::Configuration(format!("cannot start the HTTP upload runtime: {err}")))?;
        Ok(self.uploader.0.get_or_init(|| Uploader { runtime, client }))
    }

    /// Adds the tracking credentials to a request. For an Azure ML token it
    /// also returns the token's generation, which a 401 handler passes back.
    fn authorize(&self, request: RequestBuilder) -> Result<(RequestBuilder, Option<u64>)> {
        match &self.credentials {
            Credentials::AzureMl(token) => {
                let (secret, generation) = token.bearer(self)?;
                Ok((request.bearer_auth(secret.expose()), Some(generation)))
            }
            other => Ok((other.apply(request), None)),
        }
    }

    fn build(
        &self,
        method: Method,
        url: &Url,
        body: &RequestBody<'_>,
        attempt_bytes: &Arc<AtomicU64>,
    ) -> Result<RequestBuilder> {
        let request = self.client.request(method, url.clone());
        Ok(match body {
            RequestBody::Empty => request,
            RequestBody::Json(value) => request.json(value),
            RequestBody::Bytes(bytes) => request.body(bytes.to_vec()),
            RequestBody::File(path) => {
                let file = std::fs::File::open(path).map_err(|err| Error::io("opening", *path, err))?;
                let len = file
                    .metadata()
                    .map_err(|err| Error::io("inspecting", *path, err))?
                    .len();
                // The wrapper ends the upload at the next chunk once the
                // operation is cancelled.
                request.body(Body::sized(self.cancel.reader(file), len))
            }
            RequestBody::FileRange(range) => {
                let (reader, len) = open_range(range)?;
                match range.progress {
                    Some(progress) => {
                        let counting = CountingReader {
                            inner: reader,
                            progress: Arc::clone(progress),
                            attempt: Arc::clone(attempt_bytes),
                        };
                        request.body(Body::sized(self.cancel.reader(counting), len))
                    }
                    None => request.body(Body::sized(self.cancel.reader(reader), len)),
                }
            }
        })
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self.config.backoff_factor * 2f64.powi(attempt.saturating_sub(1) as i32);
        let jitter = fastrand::f64() * self.config.backoff_jitter;
        Duration::from_secs_f64((exponential + jitter).min(MAX_BACKOFF_SECS))
    }

    fn unreachable(&self, url: &Url, err: reqwest::Error) -> Error {
        let mut message = error_chain(&err.without_url());
        if message.contains("certificate") && url.scheme() == "https" {
            message.push_str(
                "; if the server's certificate comes from a private CA, set MLFLOW_TRACKING_SERVER_CERT_PATH \
                 to a PEM file with that CA",
            );
        }
        self.unreachable_message(url, message)
    }

    fn unreachable_message(&self, url: &Url, message: String) -> Error {
        Error::Unreachable {
            url: redact_url(url),
            origin: self.origin.clone(),
            message,
        }
    }
}

/// One request as [`Http::execute`] sends it, attempt after attempt.
#[derive(Clone, Copy)]
struct Request<'a> {
    method: &'a Method,
    url: &'a Url,
    body: &'a RequestBody<'a>,
    auth: Auth,
    headers: &'a BTreeMap<String, String>,
}

/// Whether and how a failed attempt may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// The server did not apply the request: the connection was never
    /// made, or it answered 408 or 429.
    NotApplied,
    /// The server may have applied the request: a timeout, a connection
    /// lost after the request was sent, or 500, 502, 503, 504.
    Ambiguous,
    Never,
}

struct Failure {
    retry: Retry,
    /// What `Retry-After` asked for.
    wait: Option<Duration>,
    status: Option<u16>,
    /// Returned when no retry is left.
    error: Error,
}

fn retry_for_status(status: u16) -> Retry {
    match status {
        408 | 429 => Retry::NotApplied,
        500 | 502 | 503 | 504 => Retry::Ambiguous,
        _ => Retry::Never,
    }
}

/// Why reading a successful response failed.
enum ReadError {
    /// The connection failed while the body arrived; retried.
    Transport(String),
    /// Writing on this machine failed; not retried.
    Local(Error),
}

fn read_text(response: Response) -> std::result::Result<String, ReadError> {
    response
        .text()
        .map_err(|err| ReadError::Transport(error_chain(&err.without_url())))
}

fn parse_json(text: &str, method: &Method, url: &Url) -> Result<serde_json::Value> {
    if text.trim().is_empty() {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    serde_json::from_str(text).map_err(|err| Error::Parse {
        what: "server response",
        location: format!("{method} {}", url.path()),
        message: err.to_string(),
    })
}

/// Size of the chunks a download is copied in; the cancellation flag is
/// checked between two chunks.
const DOWNLOAD_CHUNK: usize = 64 * 1024;

fn copy_body(
    response: &mut Response,
    file: &mut std::fs::File,
    cancel: &CancelToken,
    progress: Option<&Progress>,
) -> std::result::Result<(), ReadError> {
    let mut counted = 0u64;
    let result = copy_body_counted(response, file, cancel, progress, &mut counted);
    if let (Err(_), Some(progress)) = (&result, progress) {
        progress.remove_bytes(counted);
    }
    result
}

fn copy_body_counted(
    response: &mut Response,
    file: &mut std::fs::File,
    cancel: &CancelToken,
    progress: Option<&Progress>,
    counted: &mut u64,
) -> std::result::Result<(), ReadError> {
    use std::io::{Read, Seek, Write};
    let local = |err: std::io::Error| ReadError::Local(Error::io("writing the download to", "a temporary file", err));
    file.set_len(0).map_err(local)?;
    file.rewind().map_err(local)?;
    let mut buffer = vec![0u8; DOWNLOAD_CHUNK];
    loop {
        cancel.check().map_err(ReadError::Local)?;
        let n = match response.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(ReadError::Transport(format!("download interrupted: {}", io_error_text(err)))),
        };
        file.write_all(&buffer[..n]).map_err(local)?;
        if let Some(progress) = progress {
            progress.add_bytes(n as u64);
            *counted += n as u64;
        }
    }
    file.flush().map_err(local)
}

/// Takes the bytes a failed attempt counted back from `progress`.
fn rollback(progress: Option<&Arc<Progress>>, attempt_bytes: &AtomicU64) {
    if let Some(progress) = progress {
        progress.remove_bytes(attempt_bytes.load(Ordering::Relaxed));
    }
}


/// Opens a file positioned at the start of `range`, limited to its length.
fn open_range(range: &FileRange<'_>) -> Result<(std::io::Take<std::fs::File>, u64)> {
    let mut file = std::fs::File::open(range.path).map_err(|err| Error::io("opening", range.path, err))?;
    let size = file
        .metadata()
        .map_err(|err| Error::io("inspecting", range.path, err))?
        .len();
    let len = range.len.unwrap_or_else(|| size.saturating_sub(range.offset));
    if range.offset.checked_add(len).map_or(true, |end| end > size) {
        return Err(Error::invalid(
            "file range",
            format!("{}: bytes {}..{}", range.path.display(), range.offset, range.offset.saturating_add(len)),
            format!("the file has {size} bytes; it changed during the upload"),
        ));
    }
    file.seek(SeekFrom::Start(range.offset))
        .map_err(|err| Error::io("seeking in", range.path, err))?;
    Ok((file.take(len), len))
}

/// Reads `Retry-After` given in seconds; HTTP dates are ignored.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?;
    let secs: f64 = value.to_str().ok()?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(MAX_BACKOFF_SECS)))
}

/// MLflow's error document.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error_code: String,
    #[serde(default)]
    message: String,
}

pub(crate) fn decode_error(response: Response, method: &Method, url: &Url) -> Error {
    let status = response.status();
    decode_error_text(status, response.text().unwrap_or_default(), method, url)
}

fn decode_error_text(status: StatusCode, mut text: String, method: &Method, url: &Url) -> Error {
    let (error_code, message) = match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) if !body.error_code.is_empty() || !body.message.is_empty() => (body.error_code, body.message),
        _ => {
            if text.len() > MAX_ERROR_BODY {
                let cut = (0..=MAX_ERROR_BODY).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
                text.truncate(cut);
                text.push_str("...");
            }
            let message = if text.trim().is_empty() {
                status.canonical_reason().unwrap_or("no response body").to_string()
            } else {
                text.trim().to_string()
            };
            (String::new(), message)
        }
    };
    Error::Api {
        status: status.as_u16(),
        error_code,
        message,
        method: method.to_string(),
        route: url.path().to_string(),
    }
}

/// Returns the URL without query string, user info or fragment, which may
/// hold credentials such as a SAS signature.
pub fn redact_url(url: &Url) -> String {
    let mut clean = url.clone();
    clean.set_query(None);
    clean.set_fragment(None);
    let _ = clean.set_username("");
    let _ = clean.set_password(None);
    clean.to_string()
}

/// Formats an I/O error from a response body. Such an error can wrap a
/// `reqwest::Error`, whose message would name the URL with its query string.
fn io_error_text(err: std::io::Error) -> String {
    let kind = err.kind();
    match err.into_inner() {
        Some(inner) => match inner.downcast::<reqwest::Error>() {
            Ok(http) => error_chain(&http.without_url()),
            Err(other) => error_chain(other.as_ref()),
        },
        None => kind.to_string(),
    }
}

/// Returns `text` without the query string, fragment and user info when it
/// is a URL with a host; any other text is cut at its first `?` or `#`.
/// For messages about URIs that may carry a SAS token or a password.
pub fn redact_uri(text: &str) -> String {
    match Url::parse(text) {
        Ok(url) if url.has_host() => redact_url(&url),
        _ => crate::uri::redact_userinfo(text.split(['?', '#']).next().unwrap_or_default()),
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// Returns true for a status the retry policy retries.
pub fn is_retryable_status(status: StatusCode) -> bool {
    RETRY_STATUSES.contains(&status.as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn config_defaults_match_python_mlflow() {
        let config = HttpConfig::from_lookup(lookup(&[])).unwrap();
        assert_eq!(config.max_retries, 7);
        assert_eq!(config.backoff_factor, 2.0);
        assert_eq!(config.timeout, Duration::from_secs(120));
        assert!(!config.insecure_tls);
    }

    #[test]
    fn config_reads_environment() {
        let config = HttpConfig::from_lookup(lookup(&[
            ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2"),
            ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0.5"),
            ("MLFLOW_HTTP_REQUEST_TIMEOUT", "3"),
            ("MLFLOW_TRACKING_INSECURE_TLS", "TRUE"),
        ]))
        .unwrap();
        assert_eq!(config.max_retries, 2);
        assert_eq!(config.backoff_factor, 0.5);
        assert_eq!(config.timeout, Duration::from_secs(3));
        assert!(config.insecure_tls);
    }

    #[test]
    fn bad_config_value_names_variable() {
        let err = HttpConfig::from_lookup(lookup(&[("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "many")])).unwrap_err();
        assert_eq!(err.kind(), "configuration");
        assert!(err.to_string().contains("MLFLOW_HTTP_REQUEST_MAX_RETRIES is \"many\""), "{err}");
        let err = HttpConfig::from_lookup(lookup(&[("MLFLOW_HTTP_REQUEST_TIMEOUT", "0")])).unwrap_err();
        assert!(err.to_string().contains("positive"), "{err}");
    }

    #[test]
    fn basic_auth_wins_over_token() {
        let creds = Credentials::from_lookup(lookup(&[
            ("MLFLOW_TRACKING_TOKEN", "tok"),
            ("MLFLOW_TRACKING_USERNAME", "user"),
            ("MLFLOW_TRACKING_PASSWORD", "pw"),
        ]));
        assert!(matches!(creds, Credentials::Basic { ref username, .. } if username == "user"));
        let creds = Credentials::from_lookup(lookup(&[("MLFLOW_TRACKING_TOKEN", "tok")]));
        assert_eq!(creds, Credentials::Bearer(Secret::new("tok")));
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let creds = Credentials::Basic {
            username: "user".into(),
            password: Secret::new("hunter2"),
        };
        let shown = format!("{creds:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn redact_uri_handles_urls_and_other_uris() {
        assert_eq!(
            redact_uri("https://user:pw@acct.blob.core.windows.net/c/b?sv=1&sig=SECRET"),
            "https://acct.blob.core.windows.net/c/b"
        );
        assert_eq!(redact_uri("mlflow-artifacts:/1/run/artifacts?sig=SECRET"), "mlflow-artifacts:/1/run/artifacts");
        assert_eq!(redact_uri("not a url ?sig=SECRET"), "not a url ");
    }

    #[test]
    fn retry_classes_follow_status() {
        for status in [408, 429] {
            assert_eq!(retry_for_status(status), Retry::NotApplied, "{status}");
        }
        for status in [500, 502, 503, 504] {
            assert_eq!(retry_for_status(status), Retry::Ambiguous, "{status}");
        }
        for status in [400, 401, 403, 404, 409, 501] {
            assert_eq!(retry_for_status(status), Retry::Never, "{status}");
        }
    }

    #[test]
    fn redact_url_drops_query_and_userinfo() {
        let url = Url::parse("https://user:pw@acct.blob.core.windows.net/c/b?sv=1&sig=SECRET").unwrap();
        assert_eq!(redact_url(&url), "https://acct.blob.core.windows.net/c/b");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let config = HttpConfig {
            backoff_jitter: 0.0,
            ..HttpConfig::default()
        };
        let http = Http::new(config, Credentials::None, "test").unwrap();
        assert_eq!(http.backoff(1), Duration::from_secs(2));
        assert_eq!(http.backoff(3), Duration::from_secs(8));
        assert_eq!(http.backoff(30), Duration::from_secs(120));
    }
}
