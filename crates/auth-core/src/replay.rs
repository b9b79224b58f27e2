//! Requests that can be sent again: the auth layer replays one after a 401, the retry layer
//! after a failure. A bottom module, so `auth` and `retry` share it without using each other.

use bytes::Bytes;
use http::Request;

/// A request body that may be copied for a replay. Streaming bodies return `None`, and
/// such requests are then never replayed.
pub trait TryCloneBody: Sized {
    /// A copy of the body, or `None` if it cannot be replayed.
    fn try_clone_body(&self) -> Option<Self>;
}

macro_rules! clone_body {
    ($($t:ty),*) => {$(
        impl TryCloneBody for $t {
            fn try_clone_body(&self) -> Option<Self> { Some(self.clone()) }
        }
    )*};
}
clone_body!(Bytes, String, Vec<u8>, (), &'static str, &'static [u8]);

impl<D: Clone> TryCloneBody for http_body_util::Full<D> {
    fn try_clone_body(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D> TryCloneBody for http_body_util::Empty<D> {
    fn try_clone_body(&self) -> Option<Self> {
        Some(http_body_util::Empty::new())
    }
}

impl<T: TryCloneBody> TryCloneBody for Option<T> {
    fn try_clone_body(&self) -> Option<Self> {
        match self {
            Some(b) => b.try_clone_body().map(Some),
            None => Some(None),
        }
    }
}

/// Copies a request if its body can be replayed.
pub(crate) fn clone_request<B: TryCloneBody>(req: &Request<B>) -> Option<Request<B>> {
    let body = req.body().try_clone_body()?;
    let mut out = Request::new(body);
    *out.method_mut() = req.method().clone();
    *out.uri_mut() = req.uri().clone();
    *out.version_mut() = req.version();
    *out.headers_mut() = req.headers().clone();
    *out.extensions_mut() = req.extensions().clone();
    Some(out)
}
