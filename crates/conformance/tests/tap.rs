//! The tap through the public API.

use auth_core::Error;
use bytes::Bytes;
use conformance::{Exchange, Tap};
use http::{Request, Response};
use tower::ServiceExt as _;

#[tokio::test]
async fn records_each_answer_in_order_and_debug_hides_the_body_and_query() {
    let answer = tower::service_fn(|request: Request<Bytes>| async move {
        let body = format!(
            "{{\"path\":\"{}\",\"token\":\"s3cr3t\"}}",
            request.uri().path()
        );
        Ok::<_, Error>(
            Response::builder()
                .status(200)
                .header("content-type", "application/json; charset=utf-8")
                .body(Bytes::from(body))
                .unwrap(),
        )
    });
    let tap = Tap::new(answer);
    for path in ["/a?secret=q", "/b"] {
        let request = Request::get(format!("http://h{path}"))
            .body(Bytes::new())
            .unwrap();
        tap.clone().oneshot(request).await.unwrap();
    }
    let recorded = tap.take();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].uri.query(), Some("secret=q"));
    assert_eq!(recorded[1].uri.path(), "/b");
    assert!(recorded.iter().all(Exchange::is_json_success));
    let shown = format!("{recorded:?}");
    assert!(
        !shown.contains("s3cr3t") && !shown.contains("secret=q"),
        "{shown}"
    );
    assert!(tap.take().is_empty(), "take empties the record");
}
