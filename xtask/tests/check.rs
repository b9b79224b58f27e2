//! `cargo xtask codegen --check` fails on a hand edit of a generated file and on stale files.

mod common;

use std::fs;

use xtask::codegen;

/// A copy of the workspace's specs with freshly generated code.
fn fresh_copy() -> std::path::PathBuf {
    let root = common::temp_root("check");
    common::copy_dir(&common::workspace_root().join("specs"), &root.join("specs"));
    codegen::write(&root).expect("the committed specs generate");
    root
}

#[test]
fn committed_generated_code_is_up_to_date() {
    let drifts = codegen::check(&common::workspace_root()).expect("specs are valid");
    let names: Vec<_> = drifts.iter().map(|d| d.rel_path.as_str()).collect();
    assert!(
        drifts.is_empty(),
        "stale generated files (run `cargo xtask codegen`): {names:?}"
    );
}

#[test]
fn a_hand_edit_makes_check_fail_with_a_diff() {
    let root = fresh_copy();
    assert!(
        codegen::check(&root).unwrap().is_empty(),
        "fresh output checks clean"
    );

    let rel = "crates/nshift-models/src/generated/delivery.rs";
    let path = root.join(rel);
    let text = fs::read_to_string(&path).unwrap();
    fs::write(
        &path,
        text.replacen("pub struct", "pub struct HandEdited;\npub struct", 1),
    )
    .unwrap();

    let drifts = codegen::check(&root).unwrap();
    assert_eq!(drifts.len(), 1);
    assert_eq!(drifts[0].rel_path, rel);
    assert!(
        drifts[0].diff.contains("-pub struct HandEdited;"),
        "{}",
        drifts[0].diff
    );

    codegen::write(&root).unwrap();
    assert!(
        codegen::check(&root).unwrap().is_empty(),
        "regenerating repairs it"
    );
}

#[test]
fn a_generated_file_without_spec_is_reported_and_removed() {
    let root = fresh_copy();
    let stale = "crates/norce-models/src/generated/removed.rs";
    common::write(&root, stale, "// old\n");
    let drifts = codegen::check(&root).unwrap();
    assert!(
        drifts
            .iter()
            .any(|d| d.rel_path == stale && d.diff.contains("has no spec"))
    );
    codegen::write(&root).unwrap();
    assert!(!root.join(stale).exists());
}

#[test]
fn generation_is_deterministic() {
    let a = codegen::generate(&common::workspace_root()).unwrap();
    let b = codegen::generate(&common::workspace_root()).unwrap();
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.contents, y.contents, "{}", x.rel_path);
    }
}

#[test]
fn every_generated_file_is_marked() {
    for file in codegen::generate(&common::workspace_root()).unwrap() {
        assert!(
            file.contents.starts_with(codegen::emit::GENERATED_MARKER),
            "{}",
            file.rel_path
        );
    }
}
