//! What the generator emits for the constructs the specs rely on.

mod common;

/// These specs exercise shapes, not provenance (tests/provenance.rs covers that).
const SHAPES_ONLY: xtask::codegen::Options = xtask::codegen::Options {
    require_sources: false,
};

use xtask::codegen;

fn generate(schemas: &str) -> String {
    let root = common::temp_root("gen");
    let spec = format!(
        "openapi: 3.0.3\ninfo:\n  title: Test\n  version: '1'\npaths:\n  /x/{{id}}:\n    post:\n      operationId: PostX\n      summary: Post one.\n      parameters:\n        - name: id\n          in: path\n          required: true\n          description: The id.\n          schema: {{type: string}}\n        - name: X-Json\n          in: header\n          required: true\n          description: A JSON header.\n          content:\n            application/json:\n              schema: {{$ref: '#/components/schemas/Node'}}\n      requestBody:\n        content:\n          application/json:\n            schema: {{$ref: '#/components/schemas/Node'}}\n      responses:\n        '204':\n          description: Done.\ncomponents:\n  schemas:\n{schemas}"
    );
    common::write(&root, "specs/nshift/delivery.yaml", &spec);
    let files = codegen::generate_with(&root, SHAPES_ONLY).unwrap_or_else(|e| panic!("{e}"));
    files
        .into_iter()
        .find(|f| f.rel_path.ends_with("delivery.rs"))
        .unwrap()
        .contents
}

const NODE: &str = "    Node:\n      description: A tree node.\n      type: object\n      required: [name]\n      properties:\n        name:\n          description: The name.\n          type: string\n        parent:\n          description: The parent node.\n          $ref: '#/components/schemas/Node'\n        status:\n          description: The status.\n          type: string\n          x-case-insensitive: true\n          enum: [PRINTED, DELIVERED]\n        amount:\n          description: Money.\n          type: string\n          format: decimal\n        at:\n          description: When.\n          type: string\n          format: date-time\n";

#[test]
fn structs_enums_and_operation_types() {
    let code = generate(NODE);
    // Structs come from typify, with serde and JsonSchema derives. Required fields are plain,
    // optional ones Option with skip; direct recursion is boxed.
    assert!(code.contains("schemars::JsonSchema"), "{code}");
    assert!(code.contains("pub name: ::std::string::String,"), "{code}");
    assert!(
        code.contains("pub parent: ::std::option::Option<::std::boxed::Box<Node>>,"),
        "{code}"
    );
    assert!(code.contains("skip_serializing_if = \"::std::option::Option::is_none\""));
    // Inline enums are named after their owner and open, here case-insensitive.
    assert!(code.contains("pub enum NodeStatus {"));
    assert!(code.contains("Unknown(String),"));
    assert!(code.contains("other if other.eq_ignore_ascii_case(\"PRINTED\") => Self::Printed,"));
    // Fidelity types, through typify's `x-rust-type`.
    assert!(code.contains("pub amount: ::std::option::Option<::models_runtime::Decimal>,"));
    assert!(code.contains("pub at: ::std::option::Option<::models_runtime::Timestamp>,"));
    // The open enum is ours, typify is told to use it (a replacement): it derives JsonSchema too.
    assert!(code.contains("impl schemars::JsonSchema for NodeStatus {"));
    // Operation types and metadata.
    assert!(code.contains("pub struct PostXPath {"));
    assert!(code.contains("pub struct PostXHeaders {"));
    assert!(code.contains("models_runtime::header::encode_json(\"X-Json\", value)?"));
    assert!(code.contains("pub type PostXRequest = Node;"));
    assert!(code.contains("pub type PostXResponse = ();"));
    assert!(code.contains("pub const POST_X: OperationInfo"));
    assert!(code.contains("success_status: 204u16"));
    // The operation as a type, and a method per operation for every `Caller` (headers are
    // the caller's: not an input of the generic path), both in `operations`, so that the spec
    // module and `operations` do not use each other.
    assert!(code.contains("pub struct PostX;"), "{code}");
    assert!(code.contains("impl models_runtime::Operation for PostX {"));
    assert!(code.contains("type Path = super::PostXPath;"));
    assert!(code.contains("type Query = ();"));
    assert!(code.contains("type Body = super::PostXRequest;"));
    assert!(code.contains("type Response = super::PostXResponse;"));
    assert!(code.contains("fn path(path: &Self::Path) -> String {"));
    assert!(code.contains("pub trait DeliveryApi: models_runtime::Caller {"));
    assert!(
        code.contains(
            "fn post_x(\n            &self,\n            path: &super::PostXPath,\n            body: &super::PostXRequest,"
        ),
        "{code}"
    );
    assert!(code.contains("self.call::<PostX>(path, &(), Some(body))"));
    assert!(code.contains("impl<T: models_runtime::Caller> DeliveryApi for T {}"));
}

const TYPIFY_SHAPES: &str = "    Node:\n      description: A tree node.\n      type: object\n      properties:\n        tags:\n          description: Optional list.\n          type: array\n          items: {type: string}\n        extra:\n          description: Any JSON object.\n          type: object\n        code:\n          description: Limited text.\n          type: string\n          maxLength: 5\n        copies:\n          description: At least one.\n          type: integer\n          minimum: 1\n        key:\n          description: A GUID.\n          type: string\n          format: uuid\n    Log:\n      description: Entries.\n      type: array\n      items: {$ref: '#/components/schemas/LogEntry'}\n    LogEntry:\n      description: One entry.\n      type: object\n      properties:\n        text: {description: The text., type: string}\n    LogAnswer:\n      description: Entries or one entry.\n      oneOf:\n        - $ref: '#/components/schemas/Log'\n        - $ref: '#/components/schemas/LogEntry'\n";

#[test]
fn typify_input_keeps_the_models_lenient() {
    let code = generate(TYPIFY_SHAPES);
    // A property the spec does not require reads `null` as well as absence: never a bare Vec.
    assert!(
        code.contains("pub tags: ::std::option::Option<::std::vec::Vec<::std::string::String>>,"),
        "{code}"
    );
    // Arbitrary JSON is serde_json::Value, not a Map.
    assert!(code.contains("pub extra: ::std::option::Option<::serde_json::Value>,"));
    // Limits and the GUID format are documentation, not validating newtypes.
    assert!(code.contains("pub code: ::std::option::Option<::std::string::String>,"));
    assert!(code.contains("pub copies: ::std::option::Option<i64>,"));
    assert!(code.contains("pub key: ::std::option::Option<::std::string::String>,"));
    // An array schema stays our alias; a `oneOf` whose members share a prefix keeps their names.
    assert!(code.contains("pub type Log = Vec<LogEntry>;"));
    assert!(
        code.contains("Log(Log),") && code.contains("LogEntry(LogEntry),"),
        "{code}"
    );
    assert!(!code.contains("Variant0"));
}
