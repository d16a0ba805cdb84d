//! The `MLmodel` document at the root of every MLflow model directory.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use crate::error::{Error, Result};

/// Name of the YAML file that makes a directory an MLflow model.
pub const MLMODEL_FILE: &str = "MLmodel";

/// Flavor key of R mlflow's crate flavor.
pub const CRATE_FLAVOR: &str = "crate";

/// Flavor key of MLflow's generic Python flavor.
pub const PYFUNC_FLAVOR: &str = "python_function";

/// An `MLmodel` document.
///
/// Known keys are typed; any other key is kept in `extra` and written back
/// unchanged, so a round trip through this type loses nothing that MLflow
/// or another tool wrote.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MlModel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_path: Option<String>,
    /// Flavor name to flavor configuration, in key order as Python writes it.
    #[serde(default)]
    pub flavors: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_uuid: Option<String>,
    /// MLflow 3 logged-model id (`m-<hex>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// UTC time as `%Y-%m-%d %H:%M:%S.%f`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utc_time_created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mlflow_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_input_example_info: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_size_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A model signature. Each field is a JSON document stored as a string,
/// as MLflow writes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<String>,
}

/// R mlflow's `crate` flavor: `model` names the serialized function file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrateFlavor {
    pub version: String,
    pub model: String,
}

/// The `python_function` flavor that `mlflow.pyfunc.load_model` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PyFuncFlavor {
    pub loader_module: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python_version: Option<String>,
    /// Path, relative to the model directory, handed to `_load_pyfunc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Directory, relative to the model directory, prepended to `sys.path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<PyFuncEnv>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Environment files of a pyfunc model, relative to the model directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PyFuncEnv {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conda: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualenv: Option<String>,
}

impl MlModel {
    /// Parses an `MLmodel` document; `location` names its source in errors.
    pub fn from_yaml(text: &str, location: &str) -> Result<Self> {
        let model: MlModel = serde_yaml::from_str(text).map_err(|err| Error::Parse {
            what: "MLmodel",
            location: location.to_string(),
            message: err.to_string(),
        })?;
        Ok(model)
    }

    /// Reads `MLmodel` from a model directory.
    pub fn read_dir(dir: &Path) -> Result<Self> {
        let path = dir.join(MLMODEL_FILE);
        let text = std::fs::read_to_string(&path).map_err(|err| Error::io("reading", &path, err))?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Serializes the document as YAML.
    pub fn to_yaml(&self) -> Result<String> {
        serde_yaml::to_string(self).map_err(|err| Error::Parse {
            what: "MLmodel",
            location: "(serializing)".into(),
            message: err.to_string(),
        })
    }

    /// Serializes the document as the JSON object `runs/log-model` expects.
    pub fn to_json(&self) -> Result<serde_json::Value> {
        serde_json::to_value(self).map_err(|err| Error::Parse {
            what: "MLmodel",
            location: "(converting to JSON)".into(),
            message: err.to_string(),
        })
    }

    /// Returns the `crate` flavor, or `None` when the model has none.
    pub fn crate_flavor(&self) -> Result<Option<CrateFlavor>> {
        self.typed_flavor(CRATE_FLAVOR)
    }

    /// Returns the `python_function` flavor, or `None` when the model has none.
    pub fn pyfunc_flavor(&self) -> Result<Option<PyFuncFlavor>> {
        self.typed_flavor(PYFUNC_FLAVOR)
    }

    /// Adds or replaces a flavor.
    pub fn set_flavor<T: Serialize>(&mut self, name: &str, flavor: &T) -> Result<()> {
        let value = serde_yaml::to_value(flavor).map_err(|err| Error::Parse {
            what: "flavor",
            location: name.to_string(),
            message: err.to_string(),
        })?;
        self.flavors.insert(name.to_string(), value);
        Ok(())
    }

    fn typed_flavor<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        let Some(value) = self.flavors.get(name) else {
            return Ok(None);
        };
        serde_yaml::from_value(value.clone())
            .map(Some)
            .map_err(|err| Error::Parse {
                what: "flavor",
                location: name.to_string(),
                message: err.to_string(),
            })
    }
}

/// Formats a time as MLflow's `utc_time_created` (`%Y-%m-%d %H:%M:%S.%f`).
pub fn format_utc(time: std::time::SystemTime) -> String {
    let since_epoch = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since_epoch.as_secs() as i64;
    let micros = since_epoch.subsec_micros();
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{micros:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day),
/// after Howard Hinnant's public-domain `civil_from_days` algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn utc_format_matches_python() {
        // 2024-02-29 13:05:09.000123 UTC, a leap day.
        let time = UNIX_EPOCH + Duration::from_micros(1_709_211_909_000_123);
        assert_eq!(format_utc(time), "2024-02-29 13:05:09.000123");
        assert_eq!(format_utc(UNIX_EPOCH), "1970-01-01 00:00:00.000000");
    }

    #[test]
    fn unknown_keys_survive_round_trip() {
        let text = "\
artifact_path: model
flavors:
  crate:
    version: 0.1.0
    model: crate.bin
  sklearn:
    pickled_model: model.pkl
    serialization_format: cloudpickle
run_id: abc
custom_key:
  nested: [1, 2]
signature:
  inputs: '[{\"type\": \"double\"}]'
";
        let model = MlModel::from_yaml(text, "test").unwrap();
        assert_eq!(model.artifact_path.as_deref(), Some("model"));
        assert!(model.extra.contains_key("custom_key"));
        let again = MlModel::from_yaml(&model.to_yaml().unwrap(), "again").unwrap();
        assert_eq!(again, model);
        assert_eq!(
            again.flavors["sklearn"]["serialization_format"].as_str(),
            Some("cloudpickle")
        );
        assert_eq!(
            again.signature.unwrap().inputs.as_deref(),
            Some("[{\"type\": \"double\"}]")
        );
    }

    #[test]
    fn crate_flavor_reads_r_layout() {
        let model = MlModel::from_yaml(
            "flavors:\n  crate:\n    version: 0.1.0\n    model: crate.bin\n",
            "r",
        )
        .unwrap();
        let flavor = model.crate_flavor().unwrap().unwrap();
        assert_eq!(flavor.version, "0.1.0");
        assert_eq!(flavor.model, "crate.bin");
        assert!(model.pyfunc_flavor().unwrap().is_none());
    }

    #[test]
    fn malformed_yaml_is_parse_error() {
        let err = MlModel::from_yaml("flavors: [unclosed", "somewhere/MLmodel").unwrap_err();
        assert_eq!(err.kind(), "parse");
        assert!(err.to_string().contains("somewhere/MLmodel"), "{err}");
    }
}
