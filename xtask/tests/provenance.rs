//! Provenance: `x-source` on every operation and schema (when required), well-formed
//! `x-source` / `x-assumed` values always, and the per-platform summary.

mod common;

use std::path::PathBuf;
use std::process::Command;

use xtask::codegen::provenance::{self, Counts};
use xtask::codegen::{self, CodegenError, Options};

const FILE: &str = "specs/nshift/delivery.yaml";

/// A one-operation spec; `op_extra` is spliced into the operation, `schemas` under
/// `components.schemas`.
fn spec(op_extra: &str, schemas: &str) -> String {
    format!(
        "openapi: 3.0.3\ninfo:\n  title: Test\n  version: '1'\npaths:\n  /things/{{id}}:\n    get:\n      operationId: GetThing\n      summary: Get one.\n{op_extra}      parameters:\n        - name: id\n          in: path\n          required: true\n          description: Thing id.\n          schema: {{type: integer}}\n      responses:\n        '200':\n          description: The thing.\n          content:\n            application/json:\n              schema: {{$ref: '#/components/schemas/Thing'}}\ncomponents:\n  schemas:\n{schemas}"
    )
}

const OP_SOURCE: &str = "      x-source: https://developer.nshift.com/docs/things\n";

/// `Thing` with a schema-level `x-source` (replace `SCHEMA_SOURCE` to drop or change it).
const THING: &str = "    Thing:\n      description: A thing.\n      x-source: github:nShift/api-docs/things.md\n      type: object\n      properties:\n        id:\n          description: Its id.\n          type: integer\n";
const SCHEMA_SOURCE: &str = "      x-source: github:nShift/api-docs/things.md\n";

fn root_with(text: &str) -> PathBuf {
    let root = common::temp_root("provenance");
    common::write(&root, FILE, text);
    root
}

fn errors(text: &str, require_sources: bool) -> Vec<String> {
    match codegen::generate_with(&root_with(text), Options { require_sources }) {
        Ok(_) => Vec::new(),
        Err(CodegenError::Invalid(diags)) => diags.iter().map(ToString::to_string).collect(),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

fn assert_refused(text: &str, require_sources: bool, expected: &[&str]) {
    let errors = errors(text, require_sources);
    let joined = errors.join("\n");
    assert!(
        !errors.is_empty(),
        "expected a refusal containing {expected:?}"
    );
    for needle in expected {
        assert!(joined.contains(needle), "`{needle}` not in:\n{joined}");
    }
    assert!(joined.contains(FILE), "names the file:\n{joined}");
}

#[test]
fn an_operation_without_x_source_is_refused_when_required() {
    let text = spec("", THING);
    assert_refused(
        &text,
        true,
        &[
            "specs/nshift/delivery.yaml: operation `GetThing` (GET /things/{id}): missing `x-source`",
            "name the published source of this operation",
            "`x-assumed`",
        ],
    );
    // Exactly the operation: the schema is sourced.
    assert_eq!(errors(&text, true).len(), 1, "{:?}", errors(&text, true));
    // Switched off, the same spec generates.
    assert!(errors(&text, false).is_empty());
}

#[test]
fn a_schema_without_x_source_is_refused_when_required() {
    let text = spec(OP_SOURCE, &THING.replace(SCHEMA_SOURCE, ""));
    assert_refused(
        &text,
        true,
        &[
            "specs/nshift/delivery.yaml: schema `Thing`: missing `x-source`",
            "name the published source of this schema",
        ],
    );
    assert_eq!(errors(&text, true).len(), 1);
    assert!(errors(&text, false).is_empty());
}

#[test]
fn x_assumed_never_replaces_the_source() {
    // An operation or schema that no page confirms still names the closest source it was
    // inferred from; `x-assumed` beside it says what is not confirmed.
    let op = "      x-assumed: Not in the published docs; seen in recorded traffic.\n";
    let schemas = THING.replace(
        SCHEMA_SOURCE,
        "      x-assumed: Shape inferred from the sandbox responses.\n",
    );
    assert_eq!(errors(&spec(op, &schemas), true).len(), 2);
    let both = format!("{OP_SOURCE}{op}");
    let schemas = THING.replace(
        SCHEMA_SOURCE,
        &format!("{SCHEMA_SOURCE}      x-assumed: Shape inferred from the sandbox responses.\n"),
    );
    assert!(errors(&spec(&both, &schemas), true).is_empty());
}

#[test]
fn an_empty_or_non_string_x_assumed_is_refused() {
    let empty = THING.replace(
        "          type: integer\n",
        "          type: integer\n          x-assumed: ''\n",
    );
    assert_refused(
        &spec(OP_SOURCE, &empty),
        false,
        &["schema `Thing` property `id`", "`x-assumed` is empty"],
    );

    let flag = spec(&format!("{OP_SOURCE}      x-assumed: true\n"), THING);
    assert_refused(
        &flag,
        false,
        &[
            "operation `GetThing` (GET /things/{id})",
            "`x-assumed: true` must be a non-empty string",
        ],
    );

    let on_parameter = spec(OP_SOURCE, THING).replace(
        "          description: Thing id.\n",
        "          description: Thing id.\n          x-assumed: '  '\n",
    );
    assert_refused(
        &on_parameter,
        false,
        &[
            "operation `GetThing` (GET /things/{id}) parameter `id`",
            "`x-assumed` is empty",
        ],
    );
}

#[test]
fn a_bad_x_source_form_is_refused_naming_the_value_and_the_forms() {
    let forms = "`https://…` (a published page), `github:Owner/Repo/path`";
    for (bad, shown) in [
        (
            "http://docs.example.com/things",
            "`x-source: http://docs.example.com/things` is not an accepted source",
        ),
        (
            "the nShift docs",
            "`x-source: the nShift docs` is not an accepted source",
        ),
        (
            "github:nShift/api-docs",
            "`x-source: github:nShift/api-docs` is not an accepted source",
        ),
        (
            "'github:nShift//things.md'",
            "`x-source: github:nShift//things.md` is not an accepted source",
        ),
        (
            "'shared reference:'",
            "`x-source: shared reference:` is not an accepted source",
        ),
        ("''", "`x-source` is empty"),
        ("[]", "`x-source` is an empty list"),
        ("42", "`x-source: 42` must be a string or a list of strings"),
        (
            "['https://developer.nshift.com/a', '']",
            "`x-source` is empty",
        ),
        (
            "['https://developer.nshift.com/a', {url: x}]",
            "`x-source` list entry `url: x` is not a string",
        ),
    ] {
        let schemas = THING.replace(SCHEMA_SOURCE, &format!("      x-source: {bad}\n"));
        assert_refused(
            &spec(OP_SOURCE, &schemas),
            false,
            &["schema `Thing`", shown, forms],
        );
    }
    // Also on a property, a parameter and an operation.
    let on_property = THING.replace(
        "          type: integer\n",
        "          type: integer\n          x-source: the docs\n",
    );
    assert_refused(
        &spec(OP_SOURCE, &on_property),
        false,
        &["schema `Thing` property `id`", "`x-source: the docs`"],
    );
    let on_parameter = spec(OP_SOURCE, THING).replace(
        "          description: Thing id.\n",
        "          description: Thing id.\n          x-source: a colleague\n",
    );
    assert_refused(
        &on_parameter,
        false,
        &[
            "operation `GetThing` (GET /things/{id}) parameter `id`",
            "`x-source: a colleague`",
        ],
    );
    assert_refused(
        &spec("      x-source: 'docs: somewhere'\n", THING),
        false,
        &[
            "operation `GetThing` (GET /things/{id})",
            "`x-source: docs: somewhere`",
        ],
    );
}

#[test]
fn every_accepted_x_source_form_passes() {
    for good in [
        "https://developer.nshift.com/docs/things",
        "https://docs.norce.io/api-reference/connect/orderservice/ (Fee.VatRate \"VAT in percent\")",
        "github:davemorrissey/brightpearl-api-client-java/src/main/java/Body.java",
        "'shared reference: nshift-raml-2016/root-resource-v1.raml'",
        "['https://developer.nshift.com/a', 'shared reference: notes/things.md']",
    ] {
        let schemas = THING.replace(SCHEMA_SOURCE, &format!("      x-source: {good}\n"));
        let errors = errors(&spec(OP_SOURCE, &schemas), true);
        assert!(errors.is_empty(), "{good}: {errors:?}");
    }
}

/// Everything annotated: operation, schemas, a property, a parameter, nested and inline schemas.
fn annotated() -> String {
    let schemas = format!(
        "{THING}          x-source: https://developer.nshift.com/docs/things#id\n        name:\n          description: Its name.\n          type: string\n          x-assumed: Only seen in examples.\n          x-open-question: Can it be empty?\n        tags:\n          description: Its tags.\n          type: array\n          items:\n            type: object\n            description: A tag.\n            x-assumed: Item shape taken from one response.\n            properties:\n              label:\n                description: The label.\n                type: string\n    Label:\n      description: A label.\n      x-source: ['https://developer.nshift.com/docs/labels', 'shared reference: nshift-raml-2016/label.raml']\n      x-open-question: Is the format always PDF?\n      type: string\n"
    );
    let op = format!("{OP_SOURCE}      x-open-question: Paged?\n");
    spec(&op, &schemas).replace(
        "          description: Thing id.\n",
        "          description: Thing id.\n          x-source: https://developer.nshift.com/docs/things#get\n          x-assumed: Positive.\n",
    )
}

#[test]
fn a_fully_annotated_spec_passes_and_is_counted() {
    let root = root_with(&annotated());
    codegen::generate_with(
        &root,
        Options {
            require_sources: true,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let platforms = provenance::summarize(&root).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(platforms.len(), 1, "only platforms with specs are listed");
    let nshift = &platforms[0];
    assert_eq!(
        nshift.counts,
        Counts {
            operations: 1,
            operations_sourced: 1,
            schemas: 2,
            schemas_sourced: 2,
            assumed: 3,
            open_questions: 3
        }
    );
    assert!(nshift.unsourced.is_empty());
    assert_eq!(
        nshift.to_string(),
        "provenance nshift: 1/1 operations sourced, 2/2 schemas sourced, 3 fields assumed (x-assumed), 3 open questions"
    );
    assert_eq!(
        provenance::markdown_table(&platforms),
        "| platform | operations sourced | schemas sourced | assumed | open questions |\n| --- | --- | --- | --- | --- |\n| nshift | 1/1 | 2/2 | 3 | 3 |\n"
    );
}

#[test]
fn unsourced_entries_are_counted_and_listed_while_not_required() {
    let schemas = format!(
        "{}    Label:\n      description: A label.\n      type: string\n",
        THING.replace(SCHEMA_SOURCE, "")
    );
    let root = root_with(&spec("", &schemas));
    let platforms = provenance::summarize(&root).unwrap();
    assert_eq!(
        platforms[0].to_string(),
        "provenance nshift: 0/1 operations sourced, 0/2 schemas sourced, 0 fields assumed (x-assumed), 0 open questions"
    );
    let listed: Vec<String> = platforms[0]
        .unsourced
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        listed,
        [
            "specs/nshift/delivery.yaml: operation `GetThing` (GET /things/{id})",
            "specs/nshift/delivery.yaml: schema `Thing`",
            "specs/nshift/delivery.yaml: schema `Label`",
        ]
    );
}

fn xtask(root: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .arg("--root")
        .arg(root)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_commands_print_the_summary_the_table_and_the_missing_list() {
    let root = root_with(&annotated());
    let (ok, stdout, stderr) = xtask(&root, &["codegen"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("\nprovenance nshift: 1/1 operations sourced, 2/2 schemas sourced, 3 fields assumed (x-assumed), 3 open questions\n"),
        "{stdout}"
    );
    let (ok, stdout, stderr) = xtask(&root, &["codegen", "--check"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("generated code is up to date\nprovenance nshift: 1/1 operations sourced"),
        "{stdout}"
    );
    let (ok, stdout, _) = xtask(&root, &["provenance"]);
    assert!(ok);
    assert!(
        stdout.starts_with("| platform | operations sourced |")
            && stdout.contains("| nshift | 1/1 | 2/2 | 3 | 3 |"),
        "{stdout}"
    );
    let (ok, stdout, _) = xtask(&root, &["provenance", "--missing"]);
    assert!(ok);
    assert_eq!(stdout, "");

    let root = root_with(&spec("", THING));
    // `codegen --check` (what CI runs) refuses an operation without `x-source`, naming it.
    let (ok, _, stderr) = xtask(&root, &["codegen", "--check"]);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("operation `GetThing` (GET /things/{id}): missing `x-source`"),
        "{stderr}"
    );
    let (ok, stdout, stderr) = xtask(&root, &["provenance", "--missing"]);
    assert!(ok);
    assert_eq!(
        stdout,
        "specs/nshift/delivery.yaml: operation `GetThing` (GET /things/{id})\n"
    );
    assert!(
        stderr.contains("1 operation(s) and schema(s) without `x-source`"),
        "{stderr}"
    );

    let bad = spec("      x-source: somewhere\n", THING);
    let (ok, _, stderr) = xtask(&root_with(&bad), &["provenance"]);
    assert!(!ok);
    assert!(stderr.contains("operation `GetThing` (GET /things/{id}): `x-source: somewhere` is not an accepted source"), "{stderr}");
}

#[test]
fn the_workspace_specs_have_well_formed_provenance() {
    let platforms =
        provenance::summarize(&common::workspace_root()).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = platforms.iter().map(|p| p.platform.as_str()).collect();
    assert_eq!(names, codegen::PLATFORMS);
    for platform in &platforms {
        assert!(
            platform.counts.operations > 0 && platform.counts.schemas > 0,
            "{platform}"
        );
    }
}
