//! The bearer token of an Azure ML job, refreshed as it nears expiry.
//!
//! Azure ML hands a job a short-lived token in `MLFLOW_TRACKING_TOKEN`. A
//! fresh one comes from `GET <run-history>/experimentids/<experiment>/runs/<run>/token`,
//! authorized by the current token, which returns `{"token": "..."}`. The
//! expiry is read from the JWT `exp` claim without checking the signature:
//! the server checks the token, the client only needs to know when to renew.
//! Refreshing happens on the request that finds the token close to expiry,
//! so there is no background timer.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use reqwest::Method;
use serde::Deserialize;
use url::Url;

use crate::error::{Error, Result};
use crate::http::{Http, RequestBody, Secret};
use crate::model::format_utc;

/// Maximum time before `exp` at which a job token is renewed, in seconds.
/// A token whose whole lifetime (`exp - iat`) is shorter than twice this is
/// renewed when half of it remains, so that it is not renewed on every request.
pub const REFRESH_MARGIN_SECS: u64 = 60;

/// The claims of a JWT that decide when it expires, in seconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenClaims {
    pub expires_at: Option<u64>,
    pub issued_at: Option<u64>,
}

impl TokenClaims {
    /// Seconds before `exp` at which the token should be renewed.
    pub fn refresh_margin(&self) -> u64 {
        match (self.issued_at, self.expires_at) {
            (Some(iat), Some(exp)) if exp > iat => REFRESH_MARGIN_SECS.min((exp - iat) / 2),
            _ => REFRESH_MARGIN_SECS,
        }
    }
}

/// Reads `exp` and `iat` from a JWT's payload. A token that is not a JWT
/// (three base64url parts) yields empty claims: it is used until the server
/// rejects it.
pub fn decode_claims(token: &str) -> TokenClaims {
    #[derive(Deserialize)]
    struct Payload {
        exp: Option<f64>,
        iat: Option<f64>,
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return TokenClaims::default();
    }
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new().with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let Ok(bytes) = engine.decode(parts[1]) else {
        return TokenClaims::default();
    };
    let Ok(payload) = serde_json::from_slice::<Payload>(&bytes) else {
        return TokenClaims::default();
    };
    let seconds = |value: Option<f64>| value.filter(|v| v.is_finite() && *v >= 0.0).map(|v| v as u64);
    TokenClaims {
        expires_at: seconds(payload.exp),
        issued_at: seconds(payload.iat),
    }
}

/// An Azure ML bearer token shared by all clones of a client.
///
/// With a refresh route (in a job) it renews itself before `exp` and after
/// a 401; without one (a token the user set) it is used until it expires,
/// and an expired token fails before any request is sent.
#[derive(Clone)]
pub struct JobToken(Arc<Inner>);

struct Inner {
    state: Mutex<State>,
    refresh_url: Option<Url>,
}

struct State {
    token: Secret,
    claims: TokenClaims,
    /// Counts refreshes, so a 401 handler can tell whether another thread
    /// already replaced the token it sent.
    generation: u64,
}

#[derive(Deserialize)]
struct RefreshResponse {
    token: Option<String>,
}

impl JobToken {
    /// Wraps `token`; `refresh_url` is the run's token route, or `None`
    /// outside a job.
    pub fn new(token: impl Into<String>, refresh_url: Option<Url>) -> Self {
        let token = token.into();
        let claims = decode_claims(&token);
        JobToken(Arc::new(Inner {
            state: Mutex::new(State {
                token: Secret::new(token),
                claims,
                generation: 0,
            }),
            refresh_url,
        }))
    }

    /// Returns the token of a job, shared by every client built in this
    /// process for the same run and starting token. A client rebuilt later
    /// (the R package rebuilds one when a setting changes) then continues
    /// with the renewed token rather than the expired one still in
    /// `MLFLOW_TRACKING_TOKEN`.
    pub fn shared(token: impl Into<String>, refresh_url: Url) -> Self {
        static JOB_TOKENS: Mutex<Option<HashMap<(String, u64), JobToken>>> = Mutex::new(None);
        let token = token.into();
        let mut hasher = DefaultHasher::new();
        token.hash(&mut hasher);
        let key = (refresh_url.to_string(), hasher.finish());
        let mut tokens = JOB_TOKENS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        tokens
            .get_or_insert_with(HashMap::new)
            .entry(key)
            .or_insert_with(|| JobToken::new(token, Some(refresh_url)))
            .clone()
    }

    /// Returns true when the token can be renewed (it came from a job).
    pub fn can_refresh(&self) -> bool {
        self.0.refresh_url.is_some()
    }

    /// Returns the path of the token route, for messages and tests.
    pub fn refresh_route(&self) -> Option<String> {
        self.0.refresh_url.as_ref().map(|url| url.path().to_string())
    }

    /// Returns the number of refreshes so far.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Returns the token to send and its generation, renewing it first when
    /// it expires within its refresh margin.
    pub(crate) fn bearer(&self, http: &Http) -> Result<(Secret, u64)> {
        let mut state = self.lock();
        if let Some(expires_at) = state.claims.expires_at {
            let now = now_secs();
            if now + state.claims.refresh_margin() >= expires_at {
                if self.can_refresh() {
                    self.refresh_locked(http, &mut state)?;
                } else if now >= expires_at {
                    return Err(Error::Authentication(format!(
                        "the token in MLFLOW_TRACKING_TOKEN expired at {} UTC; set a fresh one, for example \
                         the output of `az account get-access-token --resource https://ml.azure.com --query \
                         accessToken --output tsv`. In an Azure ML job, where MLFLOW_RUN_ID and \
                         MLFLOW_EXPERIMENT_ID are set, the token is renewed automatically",
                        format_utc(UNIX_EPOCH + Duration::from_secs(expires_at))
                    )));
                }
            }
        }
        Ok((state.token.clone(), state.generation))
    }

    /// Renews the token after the server rejected the one of generation
    /// `rejected`, unless another request renewed it in the meantime.
    pub(crate) fn refresh_after_rejection(&self, http: &Http, rejected: u64) -> Result<()> {
        let mut state = self.lock();
        if state.generation != rejected {
            return Ok(());
        }
        self.refresh_locked(http, &mut state)
    }

    /// Turns the 401 error of a request into an authentication error that
    /// names what to check.
    pub(crate) fn rejected(&self, error: Error) -> Error {
        if self.can_refresh() {
            Error::Authentication(format!(
                "Azure ML rejected the job token even after renewing it: {error}. Check that the job's \
                 identity may use the workspace"
            ))
        } else {
            Error::Authentication(format!(
                "Azure ML rejected the token in MLFLOW_TRACKING_TOKEN: {error}. It may have expired or lack \
                 access to the workspace; set a fresh one, for example from `az account get-access-token \
                 --resource https://ml.azure.com`"
            ))
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fetches a new token from the run's token route while the caller
    /// holds the lock, so concurrent requests wait for one refresh.
    ///
    /// NOTE: the public run-history spec does not list the token route. Its
    /// path and `{"token": ...}` answer come from Azure's public R sample,
    /// and whether it accepts a token that a 401 just rejected is not documented.
    fn refresh_locked(&self, http: &Http, state: &mut State) -> Result<()> {
        let url = self.0.refresh_url.as_ref().expect("callers check can_refresh");
        let route = url.path();
        let failed = |detail: String| {
            Error::Authentication(format!(
                "renewing the Azure ML job token failed: GET {route} {detail}. Check that MLFLOW_RUN_ID and \
                 MLFLOW_EXPERIMENT_ID name this job's run and experiment"
            ))
        };
        let mut headers = BTreeMap::new();
        headers.insert("Authorization".to_string(), format!("Bearer {}", state.token.expose()));
        let response = match http.send_presigned(Method::GET, url, RequestBody::Empty, &headers) {
            Ok(response) => response,
            Err(Error::Api { status, error_code, message, .. }) => {
                let code = if error_code.is_empty() { String::new() } else { format!(" {error_code}") };
                return Err(failed(format!("returned {status}{code}: {message}")));
            }
            Err(other) => return Err(failed(format!("did not complete: {other}"))),
        };
        let text = response.text().map_err(|err| failed(format!("returned an unreadable body ({})", err.without_url())))?;
        let token = serde_json::from_str::<RefreshResponse>(&text)
            .ok()
            .and_then(|body| body.token)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| failed("returned no `token` field".to_string()))?;
        state.claims = decode_claims(&token);
        state.token = Secret::new(token);
        state.generation += 1;
        tracing::info!(route, generation = state.generation, expires_at = ?state.claims.expires_at, "renewed the Azure ML job token");
        Ok(())
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl fmt::Debug for JobToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobToken")
            .field("token", &"<redacted>")
            .field("refresh_route", &self.refresh_route())
            .finish()
    }
}

/// Two handles are equal when they share one token.
impl PartialEq for JobToken {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for JobToken {}

impl Hash for JobToken {
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0), state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}.sig", engine.encode(r#"{"alg":"HS256"}"#), engine.encode(payload))
    }

    #[test]
    fn claims_are_read_from_the_payload() {
        let claims = decode_claims(&jwt(r#"{"exp": 1700000600, "iat": 1700000000, "aud": "x"}"#));
        assert_eq!(claims, TokenClaims { expires_at: Some(1_700_000_600), issued_at: Some(1_700_000_000) });
        assert_eq!(claims.refresh_margin(), 60);
        let claims = decode_claims(&jwt(r#"{"exp": 1700000010.5, "iat": 1700000000}"#));
        assert_eq!(claims.expires_at, Some(1_700_000_010));
        assert_eq!(claims.refresh_margin(), 5);
    }

    #[test]
    fn opaque_tokens_have_no_claims() {
        for token in ["plain-token", "a.b", "a.!!!.c", &jwt("not json")] {
            assert_eq!(decode_claims(token), TokenClaims::default(), "{token}");
        }
        assert_eq!(TokenClaims::default().refresh_margin(), REFRESH_MARGIN_SECS);
    }

    #[test]
    fn expired_user_token_fails_before_sending() {
        let token = JobToken::new(jwt(r#"{"exp": 1000, "iat": 900}"#), None);
        let http = Http::new(crate::http::HttpConfig::default(), crate::http::Credentials::AzureMl(token.clone()), "test").unwrap();
        let err = token.bearer(&http).unwrap_err();
        assert_eq!(err.kind(), "authentication");
        let text = err.to_string();
        assert!(text.contains("expired at 1970-01-01 00:16:40"), "{text}");
        assert!(text.contains("MLFLOW_TRACKING_TOKEN"), "{text}");
        assert!(!text.contains("sig"), "{text}");
    }

    #[test]
    fn valid_user_token_is_sent_as_is() {
        let exp = now_secs() + 3600;
        let raw = jwt(&format!(r#"{{"exp": {exp}, "iat": {}}}"#, exp - 3600));
        let token = JobToken::new(raw.clone(), None);
        let http = Http::new(crate::http::HttpConfig::default(), crate::http::Credentials::None, "test").unwrap();
        let (secret, generation) = token.bearer(&http).unwrap();
        assert_eq!(secret.expose(), raw);
        assert_eq!(generation, 0);
        assert!(!format!("{token:?}").contains(&raw));
    }
}
