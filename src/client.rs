//! The MLflow REST client that [`crate::tracking`] and [`crate::registry`]
//! add their calls to.
//!
//! A client has one of two backends: an MLflow server reached over HTTP, or
//! the local file store ([`crate::store`]) for `file:` URIs and plain paths.
//! [`Client::call_api`] is the one place that picks between them.

use std::sync::Arc;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::error::{Error, Result};
use crate::http::{Credentials, Http, HttpConfig};
use crate::store::FileStore;
use crate::uri::TrackingUri;

/// Results asked for per search request; the MLflow server accepts at
/// most 1000 for registered model and experiment searches.
pub const SEARCH_PAGE_SIZE: usize = 1000;

/// A connection to one MLflow tracking server and its model registry, or
/// to a local file store that serves the same calls.
#[derive(Debug, Clone)]
pub struct Client {
    backend: Backend,
    /// REST base, such as `http://127.0.0.1:5000` or the https form of an
    /// `azureml://` URI; never ends with `/`. For a file store, its
    /// `file://` URL.
    base: Url,
    tracking_uri: String,
    /// Stops requests and waits of this client; the HTTP backend holds a
    /// clone of the same token.
    cancel: crate::cancel::CancelToken,
}

#[derive(Debug, Clone)]
enum Backend {
    Rest(Http),
    File(Arc<FileStore>),
}

impl Client {
    /// Connects to `tracking_uri` with credentials and transport settings
    /// from the `MLFLOW_*` environment variables. `origin` says where the
    /// URI came from (a variable name or function) and appears in errors.
    ///
    /// For an `azureml://` URI the token is an Azure ML token that renews
    /// itself in a job (see [`crate::azureml::credentials_from_env`]).
    pub fn new(tracking_uri: &str, origin: &str) -> Result<Self> {
        Self::with_settings(
            tracking_uri,
            origin,
            HttpConfig::from_env()?,
            crate::azureml::credentials_from_env(tracking_uri)?,
        )
    }

    /// Connects with explicit settings instead of the environment's.
    pub fn with_settings(
        tracking_uri: &str,
        origin: &str,
        config: HttpConfig,
        credentials: Credentials,
    ) -> Result<Self> {
        let base = match TrackingUri::parse(tracking_uri)? {
            TrackingUri::Http(url) => url,
            TrackingUri::File(path) => {
                let store = FileStore::open(&path)?;
                return Ok(Client {
                    base: store.root_url()?,
                    backend: Backend::File(Arc::new(store)),
                    tracking_uri: tracking_uri.to_string(),
                    cancel: crate::cancel::CancelToken::new(),
                });
            }
        };
        if config.insecure_tls && base.scheme() == "https" {
            tracing::warn!(
                uri = %crate::http::redact_url(&base),
                "TLS certificate verification is off because MLFLOW_TRACKING_INSECURE_TLS is true; \
                 set MLFLOW_TRACKING_SERVER_CERT_PATH to the server's CA instead"
            );
        }
        let http = Http::new(config, credentials, origin)?;
        Ok(Client {
            cancel: http.cancel_token().clone(),
            backend: Backend::Rest(http),
            base,
            tracking_uri: tracking_uri.to_string(),
        })
    }

    /// The tracking URI as given.
    pub fn tracking_uri(&self) -> &str {
        &self.tracking_uri
    }

    /// The REST base URL, or the `file://` URL of a local store.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// Returns the HTTP client of a server backend. A local file store has
    /// none, so server-only features (proxied `mlflow-artifacts:` URIs) fail here.
    pub fn http(&self) -> Result<&Http> {
        match &self.backend {
            Backend::Rest(http) => Ok(http),
            Backend::File(store) => Err(Error::Unsupported(format!(
                "server artifact URIs (mlflow-artifacts:) with the local file store {}; \
                 set MLFLOW_TRACKING_URI to the MLflow server that holds those artifacts",
                store.root().display()
            ))),
        }
    }

    /// Returns a copy whose requests, waits and transfers stop with
    /// [`crate::Error::Interrupted`] once `cancel` is set. The copy shares
    /// the connection pool.
    pub fn with_cancel(&self, cancel: crate::cancel::CancelToken) -> Self {
        let backend = match &self.backend {
            Backend::Rest(http) => Backend::Rest(http.with_cancel(cancel.clone())),
            // The file store's calls are local and short; only waits check the token.
            Backend::File(store) => Backend::File(store.clone()),
        };
        Client {
            backend,
            cancel,
            ..self.clone()
        }
    }

    /// Returns the token that stops this client's requests and waits.
    pub fn cancel_token(&self) -> &crate::cancel::CancelToken {
        &self.cancel
    }

    /// Builds `<base>/<path>` where `path` has no leading slash; each path
    /// segment of `path` is percent-encoded as needed.
    pub fn url(&self, path: &str) -> Url {
        Self::url_under(&self.base, path)
    }

    /// Builds `<base>/<path>` for any base URL, as [`Client::url`] does.
    pub(crate) fn url_under(base: &Url, path: &str) -> Url {
        let mut url = base.clone();
        {
            let mut segments = url.path_segments_mut().expect("http URLs have a path");
            segments.pop_if_empty();
            for segment in path.split('/') {
                segments.push(segment);
            }
        }
        url
    }

    /// Calls `api/2.0/mlflow/<endpoint>`. GET sends `body`'s fields as the
    /// query string (arrays as repeated keys); other methods, DELETE
    /// included, send it as JSON, as the MLflow server reads them.
    pub fn call(&self, method: Method, endpoint: &str, body: &Value) -> Result<Value> {
        self.call_api("api/2.0/mlflow", method, endpoint, body)
    }

    /// Like [`Client::call`] under another API prefix, such as `api/3.0/mlflow`.
    /// A file store serves only the `api/2.0/mlflow` endpoints.
    pub fn call_api(&self, prefix: &str, method: Method, endpoint: &str, body: &Value) -> Result<Value> {
        let http = match &self.backend {
            Backend::Rest(http) => http,
            Backend::File(store) if prefix == "api/2.0/mlflow" => return store.call(&method, endpoint, body),
            Backend::File(store) => {
                return Err(Error::Unsupported(format!(
                    "the REST endpoint {method} {prefix}/{endpoint} on the local file store {}; use an MLflow server",
                    store.root().display()
                )))
            }
        };
        let mut url = self.url(&format!("{prefix}/{endpoint}"));
        if method == Method::GET {
            append_query(&mut url, body);
            http.send_json(method, &url, None)
        } else {
            http.send_json(method, &url, Some(body))
        }
    }

    /// Calls a search endpoint page after page until `max_results` items
    /// (all when `None`) have been read, starting at `page_token`. Returns
    /// the items of the response field `field` and the token of the next
    /// page, if any is left. `body` holds the search's own arguments.
    pub fn search_all<T: DeserializeOwned>(
        &self,
        method: Method,
        endpoint: &str,
        field: &str,
        mut body: Value,
        max_results: Option<usize>,
        page_token: Option<&str>,
    ) -> Result<(Vec<T>, Option<String>)> {
        let mut items: Vec<T> = Vec::new();
        let mut token = page_token.map(str::to_string);
        loop {
            let wanted = max_results.map_or(SEARCH_PAGE_SIZE, |max| (max - items.len()).min(SEARCH_PAGE_SIZE));
            body["max_results"] = serde_json::json!(wanted);
            body["page_token"] = token.as_ref().map_or(Value::Null, |t| serde_json::json!(t));
            let response = self.call(method.clone(), endpoint, &body)?;
            if let Some(page) = response.get(field) {
                items.extend(decode::<Vec<T>>(page.clone(), endpoint)?);
            }
            token = response["next_page_token"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if token.is_none() || max_results.is_some_and(|max| items.len() >= max) {
                return Ok((items, token));
            }
        }
    }

    /// Calls a POST endpoint that must not take effect twice, such as a
    /// create; `took_effect` looks up the result of an attempt whose
    /// response was lost (see [`Http::send_json_checked`]).
    pub fn call_checked(
        &self,
        method: Method,
        endpoint: &str,
        body: &Value,
        took_effect: &dyn Fn() -> Result<Option<Value>>,
    ) -> Result<Value> {
        let url = self.url(&format!("api/2.0/mlflow/{endpoint}"));
        match &self.backend {
            Backend::Rest(http) => http.send_json_checked(method, &url, body, took_effect),
            // A local store cannot lose a response, so there is nothing to look up.
            Backend::File(store) => store.call(&method, endpoint, body),
        }
    }

    /// Calls an endpoint and decodes the response into `T`.
    pub fn call_typed<T: DeserializeOwned>(&self, method: Method, endpoint: &str, body: &Value) -> Result<T> {
        let value = self.call(method, endpoint, body)?;
        decode(value, endpoint)
    }
}

/// Decodes a response document, naming the endpoint on failure.
pub(crate) fn decode<T: DeserializeOwned>(value: Value, endpoint: &str) -> Result<T> {
    serde_json::from_value(value).map_err(|err| Error::Parse {
        what: "server response",
        location: endpoint.to_string(),
        message: err.to_string(),
    })
}

fn append_query(url: &mut Url, body: &Value) {
    let Some(fields) = body.as_object() else {
        return;
    };
    if fields.is_empty() {
        return;
    }
    let mut query = url.query_pairs_mut();
    for (key, value) in fields {
        match value {
            Value::Null => {}
            Value::Array(items) => {
                for item in items {
                    query.append_pair(key, &scalar_text(item));
                }
            }
            other => {
                query.append_pair(key, &scalar_text(other));
            }
        }
    }
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn client(uri: &str) -> Client {
        Client::with_settings(uri, "test", HttpConfig::default(), Credentials::None).unwrap()
    }

    #[test]
    fn url_encodes_segments_under_base_path() {
        let client = client("https://host.example/mlflow/v1.0/ws/");
        let url = client.url("api/2.0/mlflow-artifacts/artifacts/1/run id/model");
        assert_eq!(
            url.as_str(),
            "https://host.example/mlflow/v1.0/ws/api/2.0/mlflow-artifacts/artifacts/1/run%20id/model"
        );
    }

    #[test]
    fn get_body_becomes_query() {
        let mut url = Url::parse("http://127.0.0.1/x").unwrap();
        append_query(
            &mut url,
            &json!({"name": "a b", "max_results": 5, "stages": ["None", "Staging"], "skip": null}),
        );
        assert_eq!(
            url.query(),
            Some("max_results=5&name=a+b&stages=None&stages=Staging")
        );
    }

    #[test]
    fn file_uri_opens_the_local_store() {
        let dir = tempfile::tempdir().unwrap();
        let uri = format!("file://{}", dir.path().join("mlruns").display());
        let client = Client::with_settings(&uri, "test", HttpConfig::default(), Credentials::None).unwrap();
        assert_eq!(client.base_url().scheme(), "file");
        let response = client.call(Method::GET, "experiments/get", &json!({ "experiment_id": "0" })).unwrap();
        assert_eq!(response["experiment"]["name"], "Default");
        assert_eq!(client.http().unwrap_err().kind(), "unsupported");
    }
}
