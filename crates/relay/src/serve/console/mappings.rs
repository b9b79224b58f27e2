//! Mappings: what the configuration maps, read-only, so support can answer "why this
//! carrier?" without the file.

use axum::response::Response;
use maud::{Markup, html};

use super::layout::{self, Operator};

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "—".to_owned()
    } else {
        items.join(", ")
    }
}

fn or_dash(value: Option<&str>) -> &str {
    value.filter(|v| !v.is_empty()).unwrap_or("—")
}

/// `GET /console/mappings`.
pub(super) async fn page(operator: Operator) -> Response {
    let config = &operator.shared().ctx.config;
    let shipping = &config.shipping;
    let services = crate::flows::shipping::services_in_force(shipping);
    let stock = &config.stock;
    let orders = &config.orders;
    let section = |id: &str, title: &str, note: &str, content: Markup| {
        html! {
            section.mapping id=(id) {
                h2 { (title) }
                @if !note.is_empty() { p.muted { (note) } }
                (content)
            }
        }
    };
    let body = html! {
        p { "As configured in this process (" code { "relay.toml" } " and the built-in defaults). Change them in the file and restart." }
        (section("delivery-methods", "Delivery methods → nShift services", "A Norce delivery method code books this nShift service with these add-ons; per destination country, overrides apply. Built-in mappings are listed unless the file replaces them.", html! {
            table {
                thead { tr { th { "Norce delivery method" } th { "nShift service" } th { "Add-ons" } th { "Carrier (partner)" } th { "Customer no." } th { "Pickup network" } th { "Sender" } th { "Return" } th { "Per country" } } }
                tbody {
                    @for (method, m) in &services {
                        tr {
                            td { code { (method) } }
                            td { code { (m.service_id) } }
                            td { (list(&m.addons)) }
                            td { (or_dash(m.partner_id.as_deref())) }
                            td { (or_dash(m.customer_no.as_deref())) }
                            td { (or_dash(m.agent_type.as_deref())) }
                            td { (or_dash(m.sender_quick_id.as_deref().or(Some(shipping.sender_quick_id.as_str())))) }
                            td.return-mapping {
                                (or_dash(m.return_service.as_deref()))
                                @if m.return_with_outbound { " (label with the outbound)" }
                            }
                            td {
                                @for (country, o) in &m.countries {
                                    div { strong { (country) } ": " (or_dash(o.service_id.as_deref())) @if let Some(addons) = &o.addons { " + " (list(addons)) } }
                                }
                            }
                        }
                    }
                }
            }
            p { "Not shipped by relay (skipped): " (list(&shipping.skip_delivery_methods)) }
            p { "Orders shipped when in Norce status: " (list(&shipping.order_statuses)) }
        }))
        (section("warehouses", "Warehouses (stock)", "Brightpearl warehouse → Norce warehouse and location.", html! {
            @if stock.warehouses.is_empty() {
                p.empty { "No warehouse mapped: the stock flow has nothing to write." }
            } @else {
                table {
                    thead { tr { th { "Brightpearl warehouse" } th { "Norce warehouse" } th { "Norce location" } } }
                    tbody {
                        @for w in &stock.warehouses {
                            tr { td { (w.brightpearl_warehouse) } td { code { (w.norce_warehouse) } } td { (or_dash(w.norce_location.as_deref())) } }
                        }
                    }
                }
            }
        }))
        (section("price-lists", "Price lists", "Brightpearl price list → Norce price list and the price field it fills.", html! {
            @if stock.price_lists.is_empty() {
                p.empty { "No price list mapped." }
            } @else {
                table {
                    thead { tr { th { "Brightpearl price list" } th { "Norce price list" } th { "Field" } th { "Includes VAT" } } }
                    tbody {
                        @for p in &stock.price_lists {
                            tr {
                                td { (p.brightpearl_price_list) }
                                td { code { (p.norce_price_list) } }
                                td { (serde_json::to_value(p.field).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()) }
                                td { (p.includes_vat.map_or("per Brightpearl", |v| if v { "yes" } else { "no" })) }
                            }
                        }
                    }
                }
                p { "VAT removed from gross prices: " (stock.vat_percent) " %" }
            }
        }))
        (section("order-statuses", "Orders into Brightpearl", "", html! {
            table {
                tr { th { "Norce statuses imported (ids)" } td { (list(&orders.import_status_ids.iter().map(i32::to_string).collect::<Vec<_>>())) } }
                tr { th { "Brightpearl order status" } td { (orders.status_id) } }
                tr { th { "Brightpearl warehouse" } td { (orders.warehouse_id) } }
                tr { th { "Brightpearl price list" } td { (orders.price_list_id) } }
                tr { th { "Brightpearl channel" } td { (orders.channel_id.map(|c| c.to_string()).unwrap_or_else(|| "—".to_owned())) } }
                tr { th { "Tax code / nominal code" } td { (orders.tax_code) " / " (or_dash(orders.nominal_code.as_deref())) } }
                tr { th { "Norce status when confirmed" } td { (orders.confirmed_status) } }
                tr { th { "Norce status when delivered / partly" } td { (orders.delivered_status) " / " (orders.partly_delivered_status) } }
            }
            @if !orders.country_codes.is_empty() {
                h2 { "Country codes" }
                table { tbody { @for (from, to) in &orders.country_codes { tr { td { (from) } td { "→ " (to) } } } } }
            }
            @if !orders.currency_codes.is_empty() {
                h2 { "Currency codes" }
                table { tbody { @for (from, to) in &orders.currency_codes { tr { td { (from) } td { "→ " (to) } } } } }
            }
        }))
    };
    layout::page(&operator, "Mappings", "/console/mappings", None, body)
}
