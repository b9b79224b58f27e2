//! What a spec says about its operations: the metadata every generated `operations` module
//! lists, and the visitor that reaches an operation's response model by id.
//!
//! A bottom module (it uses no other module of the crate), so `operation` and the crate root
//! can both use it.

/// What the spec says about one operation, for clients and the sandbox alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationInfo {
    /// The spec's `operationId`.
    pub id: &'static str,
    /// HTTP method in upper case.
    pub method: &'static str,
    /// Path template relative to the server URL, with `{name}` placeholders.
    pub path: &'static str,
    /// Status code of the success response.
    pub success_status: u16,
    /// Media type of the request body, if the operation takes one.
    pub request_media_type: Option<&'static str>,
    /// Media type of the success response, if it has a body.
    pub response_media_type: Option<&'static str>,
}

/// Something done with an operation's response model, chosen by operation id at run time
/// (each generated `operations` module has `visit_response(id, visitor)`), e.g. a strict decode
/// of a raw answer against the model.
pub trait ResponseVisitor {
    /// What the visit returns.
    type Output;
    /// Called with `T`, the operation's success-response model.
    fn visit<T>(self) -> Self::Output
    where
        T: serde::de::DeserializeOwned + serde::Serialize + 'static;
}
