//! The example configuration in the README stays valid.

#[test]
fn the_example_configuration_file_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("relay.example.toml");
    let config = relay::config::RelayConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.run.concurrency, 8);
    assert_eq!(config.stock.warehouses.len(), 2);
    assert!(config.shipping.services.contains_key("POSTNORD_PICKUP"));
    assert_eq!(
        config.serve.public_url.as_deref(),
        Some("https://relay.example.com")
    );
    assert_eq!(
        config.serve.brightpearl_webhook_events,
        relay::serve::DEFAULT_BRIGHTPEARL_WEBHOOK_EVENTS
    );
}

/// Every key of every section appears in the example, set or as a commented `# key = …` line,
/// so the README's "complete example" claim holds as settings are added.
#[test]
fn the_example_configuration_file_shows_every_key() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("relay.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let example: toml::Table = text.parse().unwrap();
    let defaults = serde_json::to_value(relay::config::RelayConfig::default()).unwrap();
    let mut missing = Vec::new();
    for (section, keys) in defaults.as_object().unwrap() {
        let shown = example.get(section).and_then(toml::Value::as_table);
        for key in keys.as_object().unwrap().keys() {
            let set = shown.is_some_and(|table| table.contains_key(key));
            let commented = text.lines().any(|line| {
                line.trim_start()
                    .strip_prefix('#')
                    .is_some_and(|rest| rest.trim_start().starts_with(&format!("{key} =")))
            });
            if !set && !commented {
                missing.push(format!("{section}.{key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "relay.example.toml does not show {missing:?}"
    );
}
