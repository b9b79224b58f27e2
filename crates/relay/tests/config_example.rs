//! The example configuration in the README stays valid.

#[test]
fn the_example_configuration_file_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("relay.example.toml");
    let config = relay::config::RelayConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.run.concurrency, 8);
    assert_eq!(config.stock.warehouses.len(), 2);
    assert!(config.shipping.services.contains_key("POSTNORD_PICKUP"));
    assert_eq!(config.serve.public_url.as_deref(), Some("https://relay.example.com"));
    assert_eq!(config.serve.brightpearl_webhook_events, relay::serve::DEFAULT_BRIGHTPEARL_WEBHOOK_EVENTS);
}
