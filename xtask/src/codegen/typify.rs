//! The models through progenitor's generator and its typify type space.
//!
//! progenitor receives an OpenAPI document holding only this module's schemas as
//! [`TypifyInput`] prepared them (every named part a `$ref`, special formats as `x-rust-type`);
//! typify generates the structs and `oneOf` enums with serde and `schemars::JsonSchema` derives.
//! What it must not generate it is told with its own mechanisms: replacements for our open enums,
//! our aliases and sibling modules' types, `x-rust-type` for the models-runtime types, patches
//! for `Default`. Its output is then patched in one way only ([`document_fields`]).

use std::collections::{BTreeMap, BTreeSet};

use proc_macro2::TokenStream;
use progenitor_impl::{CrateVers, GenerationSettings, Generator, TypeImpl, TypePatch};
use quote::quote;

use serde_norway::Value;

use super::model::{Item, Module, mapping};

/// The impls a replaced type has, as typify needs to know them.
fn replaced_impls(defaults: &BTreeSet<String>, name: &str) -> Vec<TypeImpl> {
    if defaults.contains(name) {
        vec![TypeImpl::Default]
    } else {
        Vec::new()
    }
}

/// The typify-generated types of `module`, without its `error` module, documented.
/// `fallbacks` documents the types the spec leaves undescribed (operation bodies, inline types).
pub fn types(
    module: &Module,
    defaults: &BTreeSet<String>,
    fallbacks: &BTreeMap<String, String>,
) -> Result<TokenStream, String> {
    let input = &module.typify;
    if input.schemas.is_empty() {
        return Ok(TokenStream::new());
    }
    let mut schemas = input.schemas.clone();
    for (name, schema) in &mut schemas {
        let name = name.as_str().unwrap_or_default();
        if let Value::Mapping(schema) = schema
            && !schema.contains_key("description")
        {
            let text = fallbacks
                .get(name)
                .cloned()
                .unwrap_or_else(|| format!("`{name}` (no description in the spec)."));
            schema.insert("description".into(), text.into());
        }
    }
    for name in input.replacements.keys() {
        schemas
            .entry(name.as_str().into())
            .or_insert_with(|| Value::Mapping(Default::default()));
    }
    let info = mapping([
        ("title", module.title.as_str().into()),
        ("version", module.version.as_str().into()),
    ]);
    let document = mapping([
        ("openapi", "3.0.3".into()),
        ("info", info),
        ("paths", Value::Mapping(Default::default())),
        (
            "components",
            mapping([("schemas", Value::Mapping(schemas))]),
        ),
    ]);
    let spec: openapiv3::OpenAPI = serde_norway::from_value(document)
        .map_err(|e| format!("{}: typify input is not OpenAPI: {e}", module.rel_path))?;
    let mut settings = GenerationSettings::new();
    settings
        .with_derive("PartialEq")
        .with_derive("schemars::JsonSchema")
        .with_crate("models-runtime", CrateVers::Any, None)
        .with_crate("serde_json", CrateVers::Any, None)
        .with_map_type("::std::collections::BTreeMap");
    for (name, path) in &input.replacements {
        settings.with_replacement(name, path, replaced_impls(defaults, name).into_iter());
    }
    for name in defaults {
        if input.schemas.contains_key(name) {
            settings.with_patch(name, TypePatch::default().with_derive("Default"));
        }
    }
    let mut generator = Generator::new(&settings);
    generator
        .generate_tokens(&spec)
        .map_err(|e| format!("{}: progenitor: {e}", module.rel_path))?;
    let tokens = generator.get_type_space().to_stream();
    let mut file: syn::File = syn::parse2(tokens)
        .map_err(|e| format!("{}: typify output does not parse: {e}", module.rel_path))?;
    name_variants(&mut file, module);
    document_fields(&mut file);
    Ok(quote!(#file))
}

/// typify names a `oneOf` member after the type it refers to, minus the prefix all members
/// share; when that leaves one empty (`JobLog` beside `JobLogEntry`) it falls back to
/// `Variant0`, `Variant1`, …. Those get the member's type name, as every other `oneOf` has.
fn name_variants(file: &mut syn::File, module: &Module) {
    struct Rename<'a>(&'a [(String, String)]);
    impl syn::visit_mut::VisitMut for Rename<'_> {
        fn visit_ident_mut(&mut self, ident: &mut proc_macro2::Ident) {
            if let Some((_, to)) = self.0.iter().find(|(from, _)| ident == from) {
                *ident = proc_macro2::Ident::new(to, ident.span());
            }
        }
    }
    for item in &module.items {
        let Item::Untagged { name, variants, .. } = item else {
            continue;
        };
        let renames: Vec<(String, String)> = variants
            .iter()
            .enumerate()
            .map(|(n, (variant, _))| (format!("Variant{n}"), variant.clone()))
            .collect();
        for generated in &mut file.items {
            let owner = match generated {
                syn::Item::Enum(e) => Some(&e.ident),
                syn::Item::Impl(i) => match &*i.self_ty {
                    syn::Type::Path(p) => p.path.get_ident(),
                    _ => None,
                },
                _ => None,
            };
            if owner.is_some_and(|o| o == name) {
                syn::visit_mut::VisitMut::visit_item_mut(&mut Rename(&renames), generated);
            }
        }
    }
}

/// typify documents a field from its schema's `description`; a field that is a bare `$ref`
/// has none, so it gets a line naming its wire name and type (the workspace denies
/// `missing_docs`). typify's own `error` module gets a line too.
fn document_fields(file: &mut syn::File) {
    for item in &mut file.items {
        match item {
            syn::Item::Struct(item) => {
                let owner = item.ident.to_string();
                for field in item.fields.iter_mut() {
                    if has_doc(&field.attrs) {
                        continue;
                    }
                    let text = match &field.ident {
                        Some(ident) => format!(
                            " `{}` of `{owner}` (see its type).",
                            wire_name(field).unwrap_or_else(|| ident.to_string())
                        ),
                        None => format!(" The value of `{owner}`."),
                    };
                    field.attrs.insert(0, syn::parse_quote!(#[doc = #text]));
                }
            }
            syn::Item::Enum(item) => {
                let owner = item.ident.to_string();
                for variant in &mut item.variants {
                    if !has_doc(&variant.attrs) {
                        let shape = match variant.fields.iter().next().map(|f| &f.ty) {
                            Some(syn::Type::Path(p)) => {
                                p.path.segments.last().map(|s| s.ident.to_string())
                            }
                            _ => None,
                        };
                        let text = match shape {
                            Some(shape) => format!(" `{owner}` in the shape of [`{shape}`]."),
                            None => format!(" `{owner}` as a `{}`.", variant.ident),
                        };
                        variant.attrs.insert(0, syn::parse_quote!(#[doc = #text]));
                    }
                }
            }
            syn::Item::Mod(item) if !has_doc(&item.attrs) => {
                item.attrs.insert(
                    0,
                    syn::parse_quote!(#[doc = " Errors of typify's generated conversions."]),
                );
                if let Some((_, content)) = &mut item.content {
                    for inner in content.iter_mut() {
                        if let syn::Item::Struct(s) = inner
                            && !has_doc(&s.attrs)
                        {
                            s.attrs.insert(0, syn::parse_quote!(#[doc = " A value that does not convert into the generated type."]));
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn has_doc(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| a.path().is_ident("doc"))
}

/// The `rename = "…"` of a field's serde attribute.
fn wire_name(field: &syn::Field) -> Option<String> {
    let mut found = None;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                let value: syn::LitStr = meta.value()?.parse()?;
                found = Some(value.value());
            } else if meta.input.peek(syn::Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            }
            Ok(())
        });
    }
    found
}
