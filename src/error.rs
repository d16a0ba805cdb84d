//! The one public error type of the crate.
//!
//! Every fallible function returns [`Error`]. Its variants are the cases a
//! caller can act on; [`Error::kind`] gives a stable short name for each,
//! which the R package turns into the condition class
//! `mlflowreg_error_<kind>`.

use std::path::PathBuf;

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in mlflowreg.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An argument has a value the operation cannot use.
    #[error("invalid {name} {value:?}: {reason}")]
    InvalidArgument {
        name: &'static str,
        value: String,
        reason: String,
    },

    /// A file or directory could not be read or written.
    #[error("{action} {path:?} failed: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A directory exists where a model should go and is not an MLflow model.
    #[error(
        "{path:?} exists and is not an MLflow model directory (it has no MLmodel file); \
         choose another path or remove it yourself"
    )]
    NotAModelDirectory { path: PathBuf },

    /// An `MLmodel` file or another document could not be parsed.
    #[error("cannot parse {what} {location}: {message}")]
    Parse {
        what: &'static str,
        location: String,
        message: String,
    },

    /// No tracking URI is configured, or it cannot be used.
    #[error("{0}")]
    Configuration(String),

    /// The server could not be reached: connection refused, DNS, TLS or a timeout.
    #[error("cannot reach the MLflow server at {url} (tracking URI from {origin}): {message}")]
    Unreachable {
        url: String,
        origin: String,
        message: String,
    },

    /// An error status returned by the server.
    #[error("{}", api_message(.status, .error_code, .message, .method, .route))]
    Api {
        status: u16,
        /// MLflow's `error_code`, such as `RESOURCE_DOES_NOT_EXIST`; empty when
        /// the body was not an MLflow error document.
        error_code: String,
        message: String,
        method: String,
        /// The request path without query string, so no secret can leak.
        route: String,
    },

    /// A registry object does not exist, where the server reports that with
    /// a status other than 404 (MLflow returns 400 for a missing alias).
    #[error("{0}")]
    NotFound(String),

    /// No artifact is stored at a path.
    #[error("no artifact at {uri}")]
    ArtifactNotFound { uri: String },

    /// A model version stayed out of `READY`.
    #[error("model version {name} version {version} is {status}: {message}")]
    Registration {
        name: String,
        version: String,
        status: String,
        message: String,
    },

    /// A model breaks a registry's acceptance rules; nothing was created.
    #[error("{}", validation_message(.source_uri, .profile, .problems))]
    Validation {
        source_uri: String,
        profile: String,
        problems: Vec<crate::validate::Problem>,
    },

    /// A transfer stopped because its [`crate::artifacts::Progress`] was
    /// cancelled, for example by an interrupt in R.
    #[error("the transfer was cancelled: {0}")]
    Cancelled(String),

    /// A feature the crate does not implement yet.
    #[error("{0} is not supported yet")]
    Unsupported(String),

    /// A bearer token is missing, expired or rejected, or refreshing it failed.
    /// The message names the variable or route to check and never contains the token.
    #[error("{0}")]
    Authentication(String),

    /// Azure Blob Storage rejected or did not finish a transfer to a SAS URL.
    #[error("Azure Blob Storage {operation} of {url} failed: {message}")]
    Storage {
        /// `upload` or `download`.
        operation: &'static str,
        /// The blob URL without its query string, so the SAS signature never shows.
        url: String,
        /// HTTP status, or `None` when no response arrived (timeout, connection error).
        status: Option<u16>,
        message: String,
    },

    /// The caller cancelled the operation (Ctrl-C in R) before it finished.
    #[error("the operation was interrupted")]
    Interrupted,

    /// Files of a model are missing or have the wrong size where they were
    /// uploaded to or downloaded from.
    #[error("{}", incomplete_message(.location, .problems, .outcome))]
    IncompleteModel {
        location: String,
        /// One line per file, such as `crate.bin is missing`.
        problems: Vec<String>,
        /// What was not done because of it, such as "no version was created".
        outcome: &'static str,
    },
}

fn incomplete_message(location: &str, problems: &[String], outcome: &str) -> String {
    let mut message = format!("the model files at {location} are incomplete, so {outcome}:");
    for problem in problems {
        message.push_str("\n- ");
        message.push_str(problem);
    }
    message.push_str("\nTry again; if this repeats, check the artifact store's free space and its server's logs.");
    message
}

fn validation_message(source: &str, profile: &str, problems: &[crate::validate::Problem]) -> String {
    let mut message = format!(
        "the model at {source} would be rejected by the registry ({profile} rules), so no version was created:"
    );
    for problem in problems {
        message.push_str(&format!("\n- {}: {}; fix: {}", problem.field, problem.problem, problem.fix));
    }
    message
}

fn api_message(status: &u16, code: &str, message: &str, method: &str, route: &str) -> String {
    let code = if code.is_empty() { "HTTP error" } else { code };
    // The local file store gives no method and names its path in `route`.
    if method.is_empty() {
        return format!("The local MLflow store returned {status} {code} for {route}: {message}");
    }
    format!("MLflow server returned {status} {code} for {method} {route}: {message}")
}

impl Error {
    /// Returns a stable short name of the variant, used for R condition classes.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidArgument { .. } => "invalid_argument",
            Error::Io { .. } => "io",
            Error::NotAModelDirectory { .. } => "not_a_model_directory",
            Error::Parse { .. } => "parse",
            Error::Configuration(_) => "configuration",
            Error::Unreachable { .. } => "unreachable",
            Error::Api { status: 404, .. } | Error::ArtifactNotFound { .. } | Error::NotFound(_) => "not_found",
            Error::Api { error_code, .. } if error_code == "RESOURCE_ALREADY_EXISTS" => {
                "already_exists"
            }
            Error::Api { .. } => "api",
            Error::Registration { .. } => "registration",
            Error::Validation { .. } => "validation",
            Error::Unsupported(_) => "unsupported",
            Error::Authentication(_) => "authentication",
            Error::Storage { .. } => "storage",
            Error::Cancelled(_) => "cancelled",
            Error::Interrupted => "interrupted",
            Error::IncompleteModel { .. } => "incomplete_model",
        }
    }

    /// Returns the HTTP status for [`Error::Api`] and [`Error::Storage`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            Error::Storage { status, .. } => *status,
            _ => None,
        }
    }

    /// Returns MLflow's `error_code` for [`Error::Api`].
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Error::Api { error_code, .. } if !error_code.is_empty() => Some(error_code),
            _ => None,
        }
    }

    /// Returns true when the server reports that the resource does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind() == "not_found"
    }

    /// Returns true when the server reports that the resource exists already.
    pub fn is_already_exists(&self) -> bool {
        self.kind() == "already_exists"
    }

    /// Appends `note` to the message of an [`Error::Api`] or
    /// [`Error::Unreachable`]; other variants are returned unchanged.
    pub(crate) fn with_note(self, note: &str) -> Self {
        match self {
            Error::Api { status, error_code, message, method, route } => Error::Api {
                status,
                error_code,
                message: format!("{message} ({note})"),
                method,
                route,
            },
            Error::Unreachable { url, origin, message } => Error::Unreachable {
                url,
                origin,
                message: format!("{message} ({note})"),
            },
            other => other,
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(name: &'static str, value: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name,
            value: value.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_error_kind_follows_status_and_code() {
        let not_found = Error::Api {
            status: 404,
            error_code: "RESOURCE_DOES_NOT_EXIST".into(),
            message: "no such model".into(),
            method: "GET".into(),
            route: "/api/2.0/mlflow/registered-models/get".into(),
        };
        assert_eq!(not_found.kind(), "not_found");
        assert!(not_found.is_not_found());

        let exists = Error::Api {
            status: 400,
            error_code: "RESOURCE_ALREADY_EXISTS".into(),
            message: "exists".into(),
            method: "POST".into(),
            route: "/x".into(),
        };
        assert_eq!(exists.kind(), "already_exists");
        assert_eq!(exists.error_code(), Some("RESOURCE_ALREADY_EXISTS"));
    }

    #[test]
    fn api_error_message_names_code_and_route() {
        let err = Error::Api {
            status: 400,
            error_code: "INVALID_PARAMETER_VALUE".into(),
            message: "bad name".into(),
            method: "POST".into(),
            route: "/api/2.0/mlflow/registered-models/create".into(),
        };
        assert_eq!(
            err.to_string(),
            "MLflow server returned 400 INVALID_PARAMETER_VALUE for POST \
             /api/2.0/mlflow/registered-models/create: bad name"
        );
    }
}
