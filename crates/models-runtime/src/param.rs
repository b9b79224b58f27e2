//! The error of a parameter codec. A bottom module, so the codecs ([`crate::header`]) and the
//! crate root can both use it.

/// A path or header parameter that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{name}`: {message}")]
pub struct ParamError {
    /// The parameter's wire name.
    pub name: &'static str,
    /// What is wrong with it.
    pub message: String,
}
