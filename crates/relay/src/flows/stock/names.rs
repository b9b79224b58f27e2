//! The names the stock flow records under (its two entity flows) and the span of its steps.

/// Flow name of on-hand per warehouse.
pub const STOCK: &str = "stock";
/// Flow name of prices.
pub const PRICES: &str = "prices";

/// The span of one step of a stock or prices pass.
pub(crate) fn span(flow: &'static str, step: &'static str, source_id: &str) -> tracing::Span {
    tracing::info_span!("flow_step", flow, step, source_id = %source_id)
}
