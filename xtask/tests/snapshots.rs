//! The public type list of every generated module, so a spec change shows what it adds or drops.

mod common;

use xtask::codegen;

#[test]
fn public_types_per_spec() {
    let files = codegen::generate(&common::workspace_root()).expect("specs are valid");
    for file in files.iter().filter(|f| !f.rel_path.ends_with("mod.rs")) {
        // crates/nshift-models/src/generated/delivery.rs → nshift_delivery
        let platform = file
            .rel_path
            .trim_start_matches("crates/")
            .split('-')
            .next()
            .unwrap();
        let module = file
            .rel_path
            .rsplit('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs");
        insta::assert_snapshot!(
            format!("types_{platform}_{module}"),
            file.public_items.join("\n")
        );
    }
}
