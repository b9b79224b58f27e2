//! The generator refuses what it would mistranslate, naming the file and the operation or schema.

mod common;

/// These specs exercise shapes, not provenance (tests/provenance.rs covers that).
const SHAPES_ONLY: xtask::codegen::Options = xtask::codegen::Options {
    require_sources: false,
};

use xtask::codegen::{self, CodegenError};

/// A valid one-operation spec; `paths` and `schemas` are spliced in as YAML.
fn spec(paths: &str, schemas: &str) -> String {
    format!(
        "openapi: 3.0.3\ninfo:\n  title: Test\n  version: '1'\npaths:\n{paths}components:\n  schemas:\n{schemas}"
    )
}

const THING: &str = "    Thing:\n      description: A thing.\n      type: object\n      properties:\n        id:\n          description: Its id.\n          type: integer\n";

fn errors_for(paths: &str, schemas: &str) -> Vec<String> {
    let root = common::temp_root("refuse");
    common::write(&root, "specs/nshift/delivery.yaml", &spec(paths, schemas));
    match codegen::generate_with(&root, SHAPES_ONLY) {
        Ok(_) => Vec::new(),
        Err(CodegenError::Invalid(diags)) => diags.iter().map(ToString::to_string).collect(),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

fn assert_refused(paths: &str, schemas: &str, expected: &[&str]) {
    let errors = errors_for(paths, schemas);
    let joined = errors.join("\n");
    assert!(
        !errors.is_empty(),
        "expected a refusal containing {expected:?}"
    );
    for needle in expected {
        assert!(joined.contains(needle), "`{needle}` not in:\n{joined}");
    }
    assert!(
        joined.contains("specs/nshift/delivery.yaml"),
        "names the file:\n{joined}"
    );
}

const GET_THING: &str = "  /things/{id}:\n    get:\n      operationId: GetThing\n      summary: Get one.\n      parameters:\n        - name: id\n          in: path\n          required: true\n          description: Thing id.\n          schema: {type: integer}\n      responses:\n        '200':\n          description: The thing.\n          content:\n            application/json:\n              schema: {$ref: '#/components/schemas/Thing'}\n";

#[test]
fn a_valid_spec_generates() {
    assert!(errors_for(GET_THING, THING).is_empty());
}

#[test]
fn missing_operation_id_is_refused_naming_the_path() {
    let paths = GET_THING.replace("      operationId: GetThing\n", "");
    assert_refused(
        &paths,
        THING,
        &["GET /things/{id}", "missing `operationId`"],
    );
}

#[test]
fn two_success_schemas_are_refused() {
    let paths = format!(
        "{GET_THING}        '201':\n          description: Other.\n          content:\n            application/json:\n              schema: {{type: string}}\n"
    );
    assert_refused(
        &paths,
        THING,
        &[
            "operation `GetThing`",
            "two success responses with different schemas",
        ],
    );
}

#[test]
fn no_success_response_is_refused() {
    let paths = GET_THING.replace("'200'", "'404'");
    assert_refused(&paths, THING, &["operation `GetThing`", "no 2xx response"]);
}

#[test]
fn any_of_is_refused() {
    let schemas = format!(
        "{THING}    Either:\n      description: One or other.\n      anyOf:\n        - $ref: '#/components/schemas/Thing'\n"
    );
    assert_refused(
        GET_THING,
        &schemas,
        &["schema `Either`", "`anyOf` is not supported"],
    );
}

#[test]
fn integer_enums_are_refused() {
    let schemas = format!(
        "{THING}    Level:\n      description: A level.\n      type: integer\n      enum: [1, 2]\n"
    );
    assert_refused(
        GET_THING,
        &schemas,
        &["schema `Level`", "integer enums are not supported"],
    );
    let schemas = format!(
        "{THING}    Rate:\n      description: A rate.\n      type: number\n      enum: [0.5, 1.5]\n"
    );
    assert_refused(
        GET_THING,
        &schemas,
        &["schema `Rate`", "number enums are not supported"],
    );
}

#[test]
fn a_property_without_description_is_refused() {
    let schemas = THING.replace("          description: Its id.\n", "");
    assert_refused(
        GET_THING,
        &schemas,
        &["schema `Thing` property `id`", "description"],
    );
}

#[test]
fn an_unresolved_ref_is_refused() {
    let paths = GET_THING.replace("schemas/Thing'", "schemas/Nothing'");
    assert_refused(
        &paths,
        THING,
        &["operation `GetThing`", "no schema `Nothing`"],
    );
}

#[test]
fn cookie_parameters_are_refused() {
    let paths = GET_THING.replace("in: path\n          required: true\n          description: Thing id.\n          schema: {type: integer}\n", "in: path\n          required: true\n          description: Thing id.\n          schema: {type: integer}\n        - name: session\n          in: cookie\n          description: A cookie.\n          schema: {type: string}\n");
    assert_refused(
        &paths,
        THING,
        &["parameter `session`", "`in: cookie` is not supported"],
    );
}

#[test]
fn openapi_31_is_refused() {
    let root = common::temp_root("refuse31");
    common::write(
        &root,
        "specs/norce/x.yaml",
        &spec(GET_THING, THING).replace("3.0.3", "3.1.0"),
    );
    let Err(CodegenError::Invalid(diags)) = codegen::generate_with(&root, SHAPES_ONLY) else {
        panic!("expected refusal")
    };
    assert!(diags[0].to_string().contains("only OpenAPI 3.0.x"));
}

#[test]
fn duplicate_type_names_are_refused() {
    let schemas = format!(
        "{THING}    GetThingResponse:\n      description: Clashes with the generated response alias.\n      type: string\n"
    );
    assert_refused(
        GET_THING,
        &schemas,
        &["type name `GetThingResponse` is already used"],
    );
}

#[test]
fn an_operation_named_like_the_operations_trait_is_refused() {
    let paths = GET_THING.replace("operationId: GetThing", "operationId: DeliveryApi");
    assert_refused(
        &paths,
        THING,
        &[
            "operation `DeliveryApi`",
            "name of the operations' extension trait",
        ],
    );
}
