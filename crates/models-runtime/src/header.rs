//! Header parameter codecs used by the generated `*Headers` types.

use std::fmt::Display;
use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::param::ParamError;

/// Writes a primitive header value.
pub fn encode_display<T: Display>(value: &T) -> String {
    value.to_string()
}

/// Writes a JSON-valued header (Norce's `X-StormConnect-Header`) as single-line JSON.
pub fn encode_json<T: Serialize>(name: &'static str, value: &T) -> Result<String, ParamError> {
    serde_json::to_string(value).map_err(|e| ParamError {
        name,
        message: e.to_string(),
    })
}

/// Reads a primitive header value.
pub fn decode_parse<T>(name: &'static str, value: &str) -> Result<T, ParamError>
where
    T: FromStr,
    T::Err: Display,
{
    value.trim().parse().map_err(|e: T::Err| ParamError {
        name,
        message: format!("`{value}` is not valid: {e}"),
    })
}

/// Reads a JSON-valued header; it must be one line of JSON.
pub fn decode_json<T: DeserializeOwned>(name: &'static str, value: &str) -> Result<T, ParamError> {
    if value.contains(['\n', '\r']) {
        return Err(ParamError {
            name,
            message: "must be single-line JSON".to_owned(),
        });
    }
    serde_json::from_str(value).map_err(|e| ParamError {
        name,
        message: format!("invalid JSON: {e}"),
    })
}

/// The error for a required header that is absent.
pub fn missing(name: &'static str) -> ParamError {
    ParamError {
        name,
        message: "is required but missing".to_owned(),
    }
}
