//! Generated operations as types, and anything that can call one.
//!
//! Each generated `operations` module has one unit struct per operation implementing
//! [`Operation`] (its [`OperationInfo`], typed path, query, body and success response), and an
//! extension trait with one method per operation, implemented for every [`Caller`]. A client implements [`Caller`] once (a few lines over its request engine) and
//! has every operation of its specs as a method.

use std::future::Future;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::info::OperationInfo;

/// One operation of a spec, as a type: what it is ([`Self::INFO`]) and the types of its inputs
/// and its success answer. Header parameters are not part of it: the ones every call carries
/// (credentials, application ids) are the client's stack's; an operation-specific header is
/// added by the client that knows what to put in it.
pub trait Operation {
    /// Method, path template and media types.
    const INFO: OperationInfo;
    /// The path parameters (the generated `*Path`), `()` when the path has none.
    type Path: Sync;
    /// The query parameters (the generated `*Query`), `()` when there are none.
    type Query: Serialize + Sync;
    /// The request body (the generated `*Request`), `()` when there is none. Sent as
    /// [`OperationInfo::request_media_type`] says (JSON or a form).
    type Body: Serialize + Sync;
    /// The success answer (the generated `*Response`): a model read from JSON, `()` for an
    /// answer without a body, `Vec<u8>` for a binary one and `String` for text.
    type Response: DeserializeOwned + Send + 'static;
    /// The path with every parameter filled in and percent-encoded (the template itself when
    /// it has none).
    fn path(path: &Self::Path) -> String;
}

/// Anything that can call a generated [`Operation`]: a client, which sends it through its
/// stack and turns a failure into its own error. The generated extension traits (each spec
/// module's `operations::ServicesApi`, `operations::DeliveryApi`, …) give every `Caller` one
/// named method per operation.
pub trait Caller {
    /// The caller's error.
    type Error;
    /// Calls `O` with its typed inputs (`&()` for none, `None` for no body) and decodes the
    /// success answer.
    fn call<O: Operation>(
        &self,
        path: &O::Path,
        query: &O::Query,
        body: Option<&O::Body>,
    ) -> impl Future<Output = Result<O::Response, Self::Error>> + Send;
}
