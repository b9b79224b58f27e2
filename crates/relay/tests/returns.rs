//! Return labels against the in-process sandbox: booked with the outbound shipment when the
//! delivery method's mapping asks for it, or on demand (`relay return`'s function and the
//! console's **Book return label**); saved beside the outbound labels, recorded on the
//! shipping entity, and booked exactly once when nShift's answer is lost.

mod common;

use std::sync::Arc;
use std::time::Duration;

use relay::config::RelayConfig;
use relay::flows::FlowContext;
use relay::flows::shipping::{self, RETURN_FLOW};
use relay::operator::{self, ActionError};
use relay::serve::{self, SecretString, ServeSecrets};
use relay::state::{EventKind, Status};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use sandbox::{DatasetConfig, FaultRule, Sandbox, SandboxConfig};
use serde_json::Value;

const TOKEN: &str = "console-token-for-return-tests-0123";

/// A sandbox with `orders` new Norce orders (none delivered yet).
async fn sandbox(orders: usize) -> Sandbox {
    let mut config = SandboxConfig {
        dataset: DatasetConfig {
            orders,
            skus: 12,
            ..DatasetConfig::default()
        },
        ..SandboxConfig::default()
    };
    config.norce.seed_delivered_every = 0;
    common::sandbox_with(config).await
}

/// The built-in mappings with a return: PostNord (P17, P19) with or without the label booked
/// with the outbound shipment, Budbee (no return option in nShift) on demand only.
fn config(test: &str, with_outbound: bool) -> RelayConfig {
    let text = format!(
        r#"
[shipping.services.POSTNORD_HOME]
service_id = "P17"
addons = ["NOTSMS", "NOTEMAIL"]
return_service = "P24"
return_with_outbound = {with_outbound}

[shipping.services.POSTNORD_PICKUP]
service_id = "P19"
agent_type = "POSTNORD"
return_service = "P24"
return_with_outbound = {with_outbound}

[shipping.services.BUDBEE_HOME]
service_id = "BUDBEEHD"
return_service = "P24"

[shipping.services.BUDBEE_HOME.countries.NO]
service_id = "P17"
"#
    );
    let mut config = RelayConfig::parse(&text, "relay.toml").unwrap();
    let dir = std::env::temp_dir().join(format!(
        "relay-returns-{test}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    config.state.dir = dir;
    config
}

fn payload(ctx: &FlowContext, flow: &str, id: &str) -> Value {
    let record = ctx.store.get(flow, id).unwrap().unwrap();
    serde_json::from_str(record.payload.as_deref().unwrap()).unwrap()
}

/// The nShift shipments booked under `order_no` (the sandbox's admin view).
async fn shipments(sb: &Sandbox, order_no: &str) -> Vec<Value> {
    let url = format!(
        "{}/_sandbox/nshift/shipments?orderNo={order_no}",
        sb.base_url()
    );
    let answer = common::http("GET", &url, None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json().as_array().unwrap().clone()
}

/// Ships every order; the Done shipping entities as (basket, payload).
async fn ship(ctx: &FlowContext) -> Vec<(String, Value)> {
    let report = shipping::run(ctx).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    let done = ctx
        .store
        .list(Some(shipping::FLOW), Some(Status::Done))
        .unwrap();
    assert!(!done.is_empty(), "{report:?}");
    done.into_iter()
        .map(|r| {
            let payload = serde_json::from_str(r.payload.as_deref().unwrap()).unwrap();
            (r.source_id, payload)
        })
        .collect()
}

fn method(payload: &Value) -> &str {
    payload["order"]["delivery_method"]
        .as_str()
        .unwrap_or_default()
}

fn is_pdf(path: &str) -> bool {
    std::fs::read(path).is_ok_and(|bytes| bytes.starts_with(b"%PDF"))
}

#[tokio::test]
async fn a_return_label_is_booked_with_the_outbound_shipment_when_the_mapping_asks() {
    let sb = sandbox(6).await;
    let ctx = common::context(&sb, config("outbound", true));
    let shipped = ship(&ctx).await;
    let postnord: Vec<_> = shipped
        .iter()
        .filter(|(_, p)| method(p).starts_with("POSTNORD"))
        .collect();
    assert!(!postnord.is_empty(), "the dataset has PostNord orders");
    for (basket, payload) in &postnord {
        let order_no = payload["order_no"].as_str().unwrap();
        let returned = &payload["return_shipment"];
        assert_eq!(returned["booked_with"], "with_outbound", "{payload}");
        assert_eq!(returned["service_id"], payload["shipment"]["service_id"]);
        let return_ids = returned["shipment_ids"].as_array().unwrap();
        let outbound_ids = payload["shipment"]["shipment_ids"].as_array().unwrap();
        assert_eq!((return_ids.len(), outbound_ids.len()), (1, 1), "{payload}");
        assert_ne!(return_ids[0], outbound_ids[0]);
        // The return parcels are the return's own, never on the delivery note's list.
        let return_parcels = returned["parcel_numbers"].as_array().unwrap();
        let outbound_parcels = payload["shipment"]["parcel_numbers"].as_array().unwrap();
        assert!(!return_parcels.is_empty());
        assert!(
            return_parcels.iter().all(|p| !outbound_parcels.contains(p)),
            "{payload}"
        );
        // One booking in nShift: the outbound and the return shipment, nothing else.
        let booked = shipments(&sb, order_no).await;
        assert_eq!(booked.len(), 2, "{booked:?}");
        // Saved beside the outbound labels.
        let labels = returned["labels"].as_array().unwrap();
        let expected = format!("{order_no}-return-1.pdf");
        assert!(
            labels[0].as_str().unwrap().ends_with(&expected),
            "{labels:?}"
        );
        assert!(is_pdf(labels[0].as_str().unwrap()));
        let outbound_label = payload["labels"][0].as_str().unwrap();
        assert_eq!(
            std::path::Path::new(outbound_label).parent(),
            std::path::Path::new(labels[0].as_str().unwrap()).parent()
        );
        // Asking again is refused: it has one.
        let again =
            operator::request_return(ctx.store.as_ref(), &ctx.config, order_no, None, "cli")
                .unwrap_err()
                .to_string();
        assert!(again.contains("has a return label already"), "{again}");
        assert!(ctx.store.get(RETURN_FLOW, basket).unwrap().is_none());
    }
    // Budbee's service has no return option: booked without one.
    for (_, payload) in shipped.iter().filter(|(_, p)| method(p) == "BUDBEE_HOME") {
        assert!(payload.get("return_shipment").is_none(), "{payload}");
    }
    let _ = std::fs::remove_dir_all(&ctx.config.state.dir);
}

/// The shop cancels `order_no` in Norce (the sandbox's admin), as a shopper or the merchant would.
async fn shop_cancels(sb: &Sandbox, order_no: &str) {
    let url = format!("{}/_sandbox/norce/orders/{order_no}/cancel", sb.base_url());
    let answer = common::http("POST", &url, None).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

fn all_cancelled(shipments: &[Value]) -> bool {
    !shipments.is_empty() && shipments.iter().all(|s| s["cancelled"] == true)
}

#[tokio::test]
async fn a_cancelled_order_takes_its_return_labels_with_it() {
    // Booked with the outbound: one booking, two shipments, both cancelled with the order.
    let sb = sandbox(6).await;
    let ctx = common::context(&sb, config("cancel-outbound", true));
    let shipped = ship(&ctx).await;
    let (basket, with_return) = shipped
        .iter()
        .find(|(_, p)| p.get("return_shipment").is_some())
        .expect("a PostNord order with its return");
    let order_no = with_return["order_no"].as_str().unwrap();
    assert_eq!(shipments(&sb, order_no).await.len(), 2);
    shop_cancels(&sb, order_no).await;
    let report = shipping::run(&ctx).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    let both = shipments(&sb, order_no).await;
    assert!(all_cancelled(&both), "{both:?}");
    let cancel = payload(&ctx, shipping::CANCEL_FLOW, basket);
    assert_eq!(cancel["cancelled"].as_array().unwrap().len(), 2, "{cancel}");
    let _ = std::fs::remove_dir_all(&ctx.config.state.dir);

    // On demand: a booked return is cancelled with its order; a queued one is never booked.
    let sb = sandbox(6).await;
    let ctx = common::context(&sb, config("cancel-on-demand", false));
    let shipped = ship(&ctx).await;
    let postnord: Vec<&str> = shipped
        .iter()
        .filter(|(_, p)| method(p).starts_with("POSTNORD"))
        .map(|(_, p)| p["order_no"].as_str().unwrap())
        .collect();
    let [booked, queued, ..] = postnord[..] else {
        panic!("two PostNord orders: {postnord:?}")
    };
    operator::request_return(ctx.store.as_ref(), &ctx.config, booked, None, "cli").unwrap();
    shipping::run(&ctx).await.unwrap();
    assert_eq!(shipments(&sb, &format!("{booked}-R")).await.len(), 1);
    let asked =
        operator::request_return(ctx.store.as_ref(), &ctx.config, queued, None, "cli").unwrap();
    shop_cancels(&sb, booked).await;
    shop_cancels(&sb, queued).await;
    let report = shipping::run(&ctx).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    assert!(all_cancelled(&shipments(&sb, booked).await));
    assert!(all_cancelled(&shipments(&sb, &format!("{booked}-R")).await));
    assert!(all_cancelled(&shipments(&sb, queued).await));
    assert!(
        shipments(&sb, &format!("{queued}-R")).await.is_empty(),
        "the queued return was never booked"
    );
    let record = ctx
        .store
        .get(RETURN_FLOW, &asked.record.source_id)
        .unwrap()
        .unwrap();
    assert_eq!(
        (record.status, record.step.as_deref()),
        (Status::Skipped, Some("cancelled"))
    );
    let _ = std::fs::remove_dir_all(&ctx.config.state.dir);
}

// Paused: book_once's pause between rounds passes on tokio's clock, not the wall clock.
#[tokio::test(start_paused = true)]
async fn a_return_asked_for_on_demand_is_booked_once_although_nshift_lost_the_answer() {
    let sb = sandbox(3).await;
    let ctx = common::context(&sb, config("ondemand", false));
    let shipped = ship(&ctx).await;
    let (basket, payload) = shipped.first().unwrap();
    assert!(
        payload.get("return_shipment").is_none(),
        "not with the outbound"
    );
    let order_no = payload["order_no"].as_str().unwrap().to_owned();
    let return_key = format!("{order_no}-R");

    let requested =
        operator::request_return(ctx.store.as_ref(), &ctx.config, &order_no, None, "cli").unwrap();
    assert_eq!(
        (
            requested.record.source_id.as_str(),
            requested.service_id.as_str(),
            requested.already_queued
        ),
        (basket.as_str(), "P24", false)
    );
    // The request is in the audit log, by its actor.
    let audit = ctx.store.audit_log(10).unwrap();
    assert!(
        audit.iter().any(|e| e.flow == RETURN_FLOW
            && e.source_id == *basket
            && e.kind == EventKind::Created
            && e.actor.as_deref() == Some("cli")),
        "{audit:?}"
    );
    // Asked twice before a pass: queued once.
    let twice =
        operator::request_return(ctx.store.as_ref(), &ctx.config, &order_no, None, "cli").unwrap();
    assert!(twice.already_queued);

    // nShift stores the return and prints it, but both answers are lost on the way back.
    sb.state()
        .faults
        .add(FaultRule {
            path_prefix: "/rs-extapi/v1/stored-shipments".into(),
            method: Some("POST".into()),
            commit_then_fail_rate: 1.0,
            remaining: Some(2),
            ..FaultRule::default()
        })
        .unwrap();
    let report = shipping::run(&ctx).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    let record = ctx.store.get(RETURN_FLOW, basket).unwrap().unwrap();
    assert_eq!(
        (record.status, record.step.as_deref()),
        (Status::Done, Some("return_labels_saved")),
        "{record:?}"
    );
    // Exactly one return shipment in nShift, under its own orderNo; the outbound untouched.
    let returns = shipments(&sb, &return_key).await;
    assert_eq!(returns.len(), 1, "{returns:?}");
    assert_eq!(shipments(&sb, &order_no).await.len(), 1);
    let injected = sb
        .state()
        .faults
        .requests()
        .into_iter()
        .filter(|r| r.fault.is_some() && r.path.starts_with("/rs-extapi/v1/stored-shipments"))
        .count();
    assert_eq!(injected, 2, "both answers were lost");

    // Recorded on the shipping entity, with the label beside the outbound ones.
    let shipping_payload = payload_of(&ctx, basket);
    let returned = &shipping_payload["return_shipment"];
    assert_eq!(returned["booked_with"], "on_demand");
    assert_eq!(returned["service_id"], "P24");
    assert_eq!(returned["order_no"], return_key.as_str());
    assert_eq!(
        returned["shipment_ids"][0].as_str(),
        record.target_id.as_deref()
    );
    assert_eq!(returns[0]["id"].as_str(), record.target_id.as_deref());
    let label = returned["labels"][0].as_str().unwrap();
    assert!(
        label.ends_with(&format!("{order_no}-return-1.pdf")),
        "{label}"
    );
    assert!(is_pdf(label));
    assert_eq!(payload_of(&ctx, basket)["shipment"], payload["shipment"]);

    // Another pass books nothing more; asking again is refused.
    shipping::run(&ctx).await.unwrap();
    assert_eq!(shipments(&sb, &return_key).await.len(), 1);
    let again = operator::request_return(ctx.store.as_ref(), &ctx.config, &order_no, None, "cli")
        .unwrap_err()
        .to_string();
    assert!(again.contains("has a return label already"), "{again}");
    let _ = std::fs::remove_dir_all(&ctx.config.state.dir);
}

fn payload_of(ctx: &FlowContext, basket: &str) -> Value {
    payload(ctx, shipping::FLOW, basket)
}

#[tokio::test]
async fn a_return_is_refused_with_the_reason_for_unknown_unbooked_or_unmapped_orders() {
    let sb = sandbox(2).await;
    let mut config = config("refused", false);
    // No return service anywhere: the built-in mappings have none.
    config.shipping.services.clear();
    let ctx = common::context(&sb, config);
    let refused = |order: &str, service: Option<&str>| match operator::request_return(
        ctx.store.as_ref(),
        &ctx.config,
        order,
        service,
        "cli",
    ) {
        Err(ActionError::Invalid(reason)) => reason,
        other => panic!("{order}: {other:?}"),
    };
    let unknown = refused("NC-999999", Some("P24"));
    assert!(
        unknown.contains("relay knows no order `NC-999999`"),
        "{unknown}"
    );

    // Known, but not booked yet.
    ctx.store
        .upsert_pending(shipping::FLOW, "4242", Some(r#"{"order_no":"NC-4242"}"#))
        .unwrap();
    ctx.store
        .set_alias(shipping::FLOW, "NC-4242", "4242")
        .unwrap();
    // Left out of the passes below (its basket is not in Norce).
    ctx.store
        .update(
            shipping::FLOW,
            "4242",
            &relay::state::EntityUpdate {
                status: Some(Status::Skipped),
                ..Default::default()
            },
        )
        .unwrap();
    let unbooked = refused("NC-4242", Some("P24"));
    assert!(unbooked.contains("not booked in nShift yet"), "{unbooked}");

    let shipped = ship(&ctx).await;
    let order_no = shipped[0].1["order_no"].as_str().unwrap().to_owned();
    let method = method(&shipped[0].1).to_owned();
    let unmapped = refused(&order_no, None);
    assert!(
        unmapped.contains(&format!("shipping.services.{method}.return_service"))
            && unmapped.contains("--service"),
        "{unmapped}"
    );
    assert!(ctx.store.list(Some(RETURN_FLOW), None).unwrap().is_empty());

    // With --service it is queued; a bad return product is refused by nShift (422) and
    // dead-lettered with nShift's reason, nothing booked.
    operator::request_return(
        ctx.store.as_ref(),
        &ctx.config,
        &order_no,
        Some("BUDBEEHD"),
        "cli",
    )
    .unwrap();
    let report = shipping::run(&ctx).await.unwrap();
    assert_eq!(report.failed, 1, "{report:?}");
    let basket = &shipped[0].0;
    let record = ctx.store.get(RETURN_FLOW, basket).unwrap().unwrap();
    assert_eq!(record.status, Status::Failed, "{record:?}");
    let error = record.last_error.unwrap_or_default();
    assert!(error.contains("no return shipment"), "{error}");
    assert!(shipments(&sb, &format!("{order_no}-R")).await.is_empty());
    let _ = std::fs::remove_dir_all(&ctx.config.state.dir);
}

#[test]
fn the_return_settings_are_checked_when_the_file_loads() {
    let blank = "[shipping.services.POSTNORD_HOME]\nservice_id = \"P17\"\nreturn_service = \" \"\n";
    let error = RelayConfig::parse(blank, "relay.toml")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("shipping.services.POSTNORD_HOME.return_service") && error.contains("P24"),
        "{error}"
    );
    let two_words = "[shipping.services.X]\nservice_id = \"P17\"\nreturn_service = \"P 24\"\n";
    let error = RelayConfig::parse(two_words, "relay.toml")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("shipping.services.X.return_service"),
        "{error}"
    );
    let wrong_type =
        "[shipping.services.X]\nservice_id = \"P17\"\nreturn_with_outbound = \"yes\"\n";
    let error = RelayConfig::parse(wrong_type, "relay.toml")
        .unwrap_err()
        .to_string();
    assert!(error.contains("return_with_outbound"), "{error}");
    // In the JSON Schema editors get.
    let schema = serde_json::to_string(&schemars::schema_for!(RelayConfig)).unwrap();
    assert!(
        schema.contains("return_service") && schema.contains("return_with_outbound"),
        "the schema names both"
    );
}

/// A signed-in console session: the cookie.
async fn sign_in(http: &reqwest::Client, base: &str) -> String {
    let response = http
        .post(format!("{base}/console/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}&name=Ann&next=%2Fconsole%2Fentities"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    cookie.split(';').next().unwrap().to_owned()
}

async fn page(http: &reqwest::Client, url: &str, cookie: &str) -> (StatusCode, String) {
    let response = http.get(url).header(COOKIE, cookie).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_books_a_return_label_and_serves_it() {
    let sb = sandbox(2).await;
    let mut config = config("console", false);
    config.serve.listen = "127.0.0.1:0".parse().unwrap();
    config.serve.inbox_sweep_secs = 0;
    config.serve.register_brightpearl_webhooks = false;
    config.serve.shipping_every_secs = 0;
    let ctx = common::context(&sb, config.clone());
    let shipped = ship(&ctx).await;
    let (basket, payload) = shipped.first().unwrap();
    let order_no = payload["order_no"].as_str().unwrap().to_owned();

    let secrets = ServeSecrets {
        console_token: Some(SecretString::from(TOKEN)),
        ..ServeSecrets::default()
    };
    let listener = serve::bind(&config.serve).await.unwrap();
    let flows: Vec<Arc<dyn relay::flows::Flow>> = vec![Arc::new(shipping::Shipping)];
    let store = ctx.store.clone();
    let handle = serve::start_with_flows(ctx, secrets, listener, flows)
        .await
        .unwrap();
    let base = handle.base_url();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = sign_in(&http, &base).await;
    // The mappings page shows each delivery method's return.
    let (_, mappings) = page(&http, &format!("{base}/console/mappings"), &cookie).await;
    assert!(
        mappings.contains("class=\"return-mapping\"") && mappings.contains("P24"),
        "{mappings}"
    );
    let detail = format!("{base}/console/entities/shipping/{basket}");
    let (status, body) = page(&http, &detail, &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("Book return label"),
        "offered on a booked item"
    );
    let at = body.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    let csrf = body[at..at + 64].to_owned();

    let post = |form: String| {
        http.post(format!("{detail}/return"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(COOKIE, &cookie)
            .body(form)
            .send()
    };
    // Without the CSRF token: refused, nothing queued.
    let refused = post("service=".to_owned()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(store.get(RETURN_FLOW, basket).unwrap().is_none());

    let runs = *handle.runs().borrow();
    let queued = post(format!("csrf={csrf}&service=")).await.unwrap();
    assert_eq!(queued.status(), StatusCode::SEE_OTHER);
    let location = queued.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(location.ends_with("?flash=return_queued"), "{location}");
    // The button starts the shipping pass, which books it.
    let mut passes = handle.runs();
    let mut booked = false;
    for _ in 0..20 {
        tokio::time::timeout(Duration::from_secs(10), passes.wait_for(|n| *n > runs))
            .await
            .expect("a pass within 10 s")
            .unwrap();
        if store
            .get(RETURN_FLOW, basket)
            .unwrap()
            .is_some_and(|r| r.status == Status::Done)
        {
            booked = true;
            break;
        }
    }
    assert!(booked, "{:?}", store.get(RETURN_FLOW, basket).unwrap());
    assert_eq!(shipments(&sb, &format!("{order_no}-R")).await.len(), 1);
    let audit = store.audit_log(10).unwrap();
    assert!(
        audit.iter().any(|e| e.flow == RETURN_FLOW
            && e.actor.as_deref().is_some_and(|a| a.starts_with("console"))),
        "{audit:?}"
    );

    // The page lists the return label after the outbound ones, downloadable; no button now.
    let (_, body) = page(&http, &detail, &cookie).await;
    let name = format!("{order_no}-return-1.pdf");
    assert!(body.contains(&name), "{body}");
    assert!(!body.contains("Book return label"));
    let outbound = body.matches("class=\"label-download\"").count();
    let (status, pdf) = {
        let response = http
            .get(format!("{detail}/labels/{outbound}"))
            .header(COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        let disposition = response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(disposition.contains(&name), "{disposition}");
        (response.status(), response.bytes().await.unwrap())
    };
    assert_eq!(status, StatusCode::OK);
    assert!(pdf.starts_with(b"%PDF"));
    handle.shutdown().await;
}

#[test]
fn relay_return_on_the_command_line_names_what_is_wrong_and_queues_only() {
    let dir = std::env::temp_dir().join(format!(
        "relay-returns-cli-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "[state]\ndir = {:?}\n",
            dir.join("data").display().to_string()
        ),
    )
    .unwrap();
    let relay = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_relay"))
            .env_clear()
            .current_dir(&dir)
            .args(args)
            .output()
            .unwrap()
    };
    let output = relay(&["return", "NC-404", "-c", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("relay return: relay knows no order `NC-404`"),
        "{stderr}"
    );
    // `-c` before the subcommand works as for the others.
    let output = relay(&["-c", config.to_str().unwrap(), "return", "NC-404"]);
    assert_eq!(output.status.code(), Some(2));
    let help = relay(&["return", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--service") && help.contains("next shipping pass"),
        "{help}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
