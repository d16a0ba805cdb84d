//! The MLflow REST client that [`crate::tracking`] and [`crate::registry`]
//! add their calls to.

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use crate::error::{Error, Result};
use crate::http::{Credentials, Http, HttpConfig};
use crate::uri::TrackingUri;

/// Results asked for per search request; the MLflow server accepts at
/// most 1000 for registered model and experiment searches.
pub const SEARCH_PAGE_SIZE: usize = 1000;

/// A connection to one MLflow tracking server and its model registry.
#[derive(Debug, Clone)]
pub struct Client {
    http: Http,
    /// REST base, such as `http://127.0.0.1:5000` or the https form of an
    /// `azureml://` URI; never ends with `/`.
    base: Url,
    tracking_uri: String,
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
                return Err(Error::Unsupported(format!(
                    "the local file store ({}) as tracking URI; start an MLflow server and set \
                     MLFLOW_TRACKING_URI to its http:// address",
                    path.display()
                )))
            }
        };
        if config.insecure_tls && base.scheme() == "https" {
            tracing::warn!(uri = %base, "TLS certificate verification is off (MLFLOW_TRACKING_INSECURE_TLS)");
        }
        let http = Http::new(config, credentials, origin)?;
        Ok(Client {
            http,
            base,
            tracking_uri: tracking_uri.to_string(),
        })
    }

    /// The tracking URI as given.
    pub fn tracking_uri(&self) -> &str {
        &self.tracking_uri
    }

    /// The REST base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    pub fn http(&self) -> &Http {
        &self.http
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
    pub fn call_api(&self, prefix: &str, method: Method, endpoint: &str, body: &Value) -> Result<Value> {
        let mut url = self.url(&format!("{prefix}/{endpoint}"));
        if method == Method::GET {
            append_query(&mut url, body);
            self.http.send_json(method, &url, None)
        } else {
            self.http.send_json(method, &url, Some(body))
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
    fn file_store_is_reported_as_unsupported() {
        let err = Client::with_settings("file:///tmp/mlruns", "test", HttpConfig::default(), Credentials::None)
            .unwrap_err();
        assert_eq!(err.kind(), "unsupported");
        assert!(err.to_string().contains("MLFLOW_TRACKING_URI"), "{err}");
    }
}
