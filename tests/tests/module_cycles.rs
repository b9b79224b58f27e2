//! No module of any crate imports a module that (directly or through others) imports it.
//!
//! For every crate under `crates/` and `xtask/`, each target root (`src/lib.rs`, `src/main.rs`,
//! `src/bin/*.rs`) is parsed with `syn` and its module tree is rebuilt the way rustc finds the
//! files (`mod x;` -> `x.rs` or `x/mod.rs`, inline `mod x { }`, `#[path]`). A module *uses*
//! another when one of its paths — in a `use` item (re-exports included) or in code: types,
//! expressions, patterns, trait bounds, macro arguments — starts with `crate::`, `super::`,
//! `self::` or the name of one of its child modules and lands in that other module. The target
//! is the module that defines the referenced item: the longest prefix of the path that is a
//! module, so an item written in a parent's own file counts as the parent.
//!
//! Not uses: a `mod child;` declaration on its own, visibility restrictions (`pub(super)`,
//! `pub(in crate::x)`), attributes and doc links, and anything under `#[cfg(test)]` (test
//! modules naturally `use super::*`).
//!
//! Consequence: a parent that re-exports a child (`pub use child::X;`) uses the child, so the
//! child must not reach back into the parent's own file. Shared items live in bottom modules
//! (`state.rs`, `config.rs`, ...) that the parent re-exports.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::ext::IdentExt as _;
use syn::visit::{self, Visit};

/// Crates (`name`) or module subtrees (`name::module`) whose cycles are tolerated for now:
/// being restructured in issue 12; remove when clean.
///
/// A cycle is tolerated only if it runs through a listed subtree; an entry that excuses no
/// cycle fails the test, so no entry outlives the cycles it excuses.
const PENDING: &[&str] = &[];

/// A module path inside one crate: `[]` is the crate root, `["flows", "orders"]` is
/// `crate::flows::orders`.
type ModPath = Vec<String>;

/// Where a referencing path was written.
#[derive(Debug, Clone)]
struct RawRef {
    module: ModPath,
    segments: Vec<String>,
    file: PathBuf,
}

/// One crate target (library, binary) as a module graph.
#[derive(Debug, Default)]
struct Analysis {
    /// Every module and the file it is written in.
    modules: BTreeMap<ModPath, PathBuf>,
    /// `(from, to)` -> the paths that make `from` use `to`, each with its file.
    edges: BTreeMap<(ModPath, ModPath), BTreeSet<String>>,
    /// Module files that are missing or do not parse.
    errors: Vec<String>,
}

/// Modules that all reach each other through uses (a strongly connected component), with the
/// cycles that run through it.
#[derive(Debug, Clone)]
struct Knot {
    modules: Vec<ModPath>,
    cycles: Vec<Cycle>,
}

/// A cycle: the modules in order (the first is repeated at the end when displayed).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cycle {
    modules: Vec<ModPath>,
}

fn display_mod(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

impl Cycle {
    fn display(&self) -> String {
        let mut names: Vec<String> = self.modules.iter().map(|m| display_mod(m)).collect();
        if let Some(first) = names.first().cloned() {
            names.push(first);
        }
        names.join(" -> ")
    }
}

/// Walks the syntax tree of one crate target, following `mod` declarations into their files.
struct Collector<'a> {
    load: &'a dyn Fn(&Path) -> Option<String>,
    /// Shown in messages instead of the absolute path.
    display_root: &'a Path,
    modules: BTreeMap<ModPath, PathBuf>,
    refs: Vec<RawRef>,
    errors: Vec<String>,
    module: ModPath,
    file: PathBuf,
    /// The directory where `mod x;` in the current module looks for `x.rs` / `x/mod.rs`.
    child_dir: PathBuf,
    /// Inside an inline `mod x { }` of the current file (changes what `#[path]` is relative to).
    inline_depth: usize,
}

impl Collector<'_> {
    fn shown(&self, path: &Path) -> String {
        path.strip_prefix(self.display_root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    fn record(&mut self, segments: Vec<String>) {
        if segments.is_empty() {
            return;
        }
        self.refs.push(RawRef {
            module: self.module.clone(),
            segments,
            file: self.file.clone(),
        });
    }

    /// Parses `file` as the module `module` and walks its items.
    fn walk_file(&mut self, module: ModPath, file: PathBuf, mod_rs_like: bool) {
        let Some(source) = (self.load)(&file) else {
            let shown = self.shown(&file);
            self.errors.push(format!(
                "module `{}`: file {shown} not found",
                display_mod(&module)
            ));
            return;
        };
        let parsed = match syn::parse_file(&source) {
            Ok(parsed) => parsed,
            Err(e) => {
                let shown = self.shown(&file);
                self.errors.push(format!("{shown} does not parse: {e}"));
                return;
            }
        };
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let child_dir = if mod_rs_like {
            dir
        } else {
            dir.join(module.last().map(String::as_str).unwrap_or_default())
        };
        let saved = (
            std::mem::replace(&mut self.module, module.clone()),
            std::mem::replace(&mut self.file, file.clone()),
            std::mem::replace(&mut self.child_dir, child_dir),
            std::mem::replace(&mut self.inline_depth, 0),
        );
        self.modules.insert(module, file);
        for item in &parsed.items {
            self.visit_item(item);
        }
        (self.module, self.file, self.child_dir, self.inline_depth) = saved;
    }
}

/// The string of a `#[path = "..."]` attribute, if any.
fn path_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().find_map(|attr| match &attr.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

/// Whether the attributes compile the item only under test: `#[cfg(test)]`,
/// `#[cfg(all(test, ...))]` (not `not(test)` nor `any(test, ...)`).
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    fn idents(tokens: TokenStream, out: &mut Vec<String>) {
        for tt in tokens {
            match tt {
                TokenTree::Ident(i) => out.push(i.to_string()),
                TokenTree::Group(g) => idents(g.stream(), out),
                _ => {}
            }
        }
    }
    attrs.iter().any(|attr| {
        let syn::Meta::List(list) = &attr.meta else {
            return false;
        };
        if !list.path.is_ident("cfg") {
            return false;
        }
        let mut words = Vec::new();
        idents(list.tokens.clone(), &mut words);
        words.iter().any(|w| w == "test") && !words.iter().any(|w| w == "not" || w == "any")
    })
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::ExternCrate(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::ForeignMod(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Mod(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::TraitAlias(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        syn::Item::Union(i) => &i.attrs,
        syn::Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

/// Every full path a `use` tree names: `a::{b, c::*}` -> `a::b`, `a::c::*`.
fn expand_use(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.unraw().to_string());
            expand_use(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.unraw().to_string();
            if name == "self" {
                // `a::{self}` names `a` itself.
                out.push(prefix.clone());
            } else {
                let mut path = prefix.clone();
                path.push(name);
                out.push(path);
            }
        }
        syn::UseTree::Rename(r) => {
            let name = r.ident.unraw().to_string();
            let mut path = prefix.clone();
            if name != "self" {
                path.push(name);
            }
            out.push(path);
        }
        syn::UseTree::Glob(_) => {
            let mut path = prefix.clone();
            path.push("*".to_owned());
            out.push(path);
        }
        syn::UseTree::Group(g) => {
            for tree in &g.items {
                expand_use(tree, prefix, out);
            }
        }
    }
}

fn is_colon(tt: &TokenTree) -> bool {
    matches!(tt, TokenTree::Punct(p) if p.as_char() == ':')
}

/// The paths (`a::b::c`, at least two segments) in a macro's tokens, which `syn` leaves
/// unparsed. `$crate::x` counts as `crate::x`.
fn macro_paths(tokens: TokenStream, out: &mut Vec<Vec<String>>) {
    let tts: Vec<TokenTree> = tokens.into_iter().collect();
    let mut i = 0;
    while i < tts.len() {
        match &tts[i] {
            TokenTree::Group(g) => {
                macro_paths(g.stream(), out);
                i += 1;
            }
            TokenTree::Ident(first) => {
                let continues_a_path = i >= 2 && is_colon(&tts[i - 1]) && is_colon(&tts[i - 2]);
                let mut segments = vec![first.unraw().to_string()];
                let mut j = i + 1;
                while j + 1 < tts.len() && is_colon(&tts[j]) && is_colon(&tts[j + 1]) {
                    match tts.get(j + 2) {
                        Some(TokenTree::Ident(next)) => {
                            segments.push(next.unraw().to_string());
                            j += 3;
                        }
                        _ => break,
                    }
                }
                if !continues_a_path && segments.len() >= 2 {
                    out.push(segments);
                }
                i = j;
            }
            _ => i += 1,
        }
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if is_test_only(item_attrs(item)) {
            return;
        }
        visit::visit_item(self, item);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if is_test_only(&item.attrs) {
            return;
        }
        let name = item.ident.unraw().to_string();
        let mut module = self.module.clone();
        module.push(name.clone());
        let path = path_attr(&item.attrs);
        match &item.content {
            Some((_, items)) => {
                let child_dir = self.child_dir.join(path.as_deref().unwrap_or(&name));
                let saved = (
                    std::mem::replace(&mut self.module, module.clone()),
                    std::mem::replace(&mut self.child_dir, child_dir),
                );
                self.inline_depth += 1;
                self.modules.insert(module, self.file.clone());
                for item in items {
                    self.visit_item(item);
                }
                self.inline_depth -= 1;
                (self.module, self.child_dir) = saved;
            }
            None => {
                if let Some(path) = path {
                    // Outside inline blocks `#[path]` is relative to the declaring file's
                    // directory; inside them, to the inline modules' directory.
                    let base = if self.inline_depth == 0 {
                        self.file
                            .parent()
                            .map(Path::to_path_buf)
                            .unwrap_or_default()
                    } else {
                        self.child_dir.clone()
                    };
                    self.walk_file(module, base.join(path), true);
                } else {
                    let flat = self.child_dir.join(format!("{name}.rs"));
                    if (self.load)(&flat).is_some() {
                        self.walk_file(module, flat, false);
                    } else {
                        let nested = self.child_dir.join(&name).join("mod.rs");
                        self.walk_file(module, nested, true);
                    }
                }
            }
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        if is_test_only(&item.attrs) || item.leading_colon.is_some() {
            return;
        }
        let mut paths = Vec::new();
        expand_use(&item.tree, &mut Vec::new(), &mut paths);
        for path in paths {
            self.record(path);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.leading_colon.is_none() {
            let segments = path
                .segments
                .iter()
                .map(|s| s.ident.unraw().to_string())
                .collect();
            self.record(segments);
        }
        // Generic arguments hold paths of their own.
        visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.visit_path(&mac.path);
        let mut paths = Vec::new();
        macro_paths(mac.tokens.clone(), &mut paths);
        for path in paths {
            self.record(path);
        }
    }

    // `pub(super)` / `pub(in crate::x)` restrict who may see an item; they use nothing.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    // Attributes (docs, derives, serde options) are not module uses.
    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {}
}

/// Where a path lands: the module that defines the item it names, or `None` when the path does
/// not start in this crate's module tree (std, dependencies, locals, generics).
fn resolve(modules: &HashSet<&ModPath>, from: &ModPath, segments: &[String]) -> Option<ModPath> {
    let first = segments.first()?;
    let mut base: ModPath;
    let mut rest = &segments[1..];
    match first.as_str() {
        "crate" => base = Vec::new(),
        "self" => base = from.clone(),
        "super" => {
            base = from.clone();
            base.pop()?;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => {
            // A child module of `from`, used by name (`child::Item`, `use child::Item;`).
            if segments.len() < 2 {
                return None;
            }
            let mut child = from.clone();
            child.push(first.clone());
            if !modules.contains(&child) {
                return None;
            }
            base = child;
        }
    }
    for segment in rest {
        let mut next = base.clone();
        next.push(segment.clone());
        if modules.contains(&next) {
            base = next;
        } else {
            break;
        }
    }
    Some(base)
}

/// Parses the crate target rooted at `root` (a `lib.rs`, `main.rs`, `bin/x.rs`) and builds its
/// module graph. `load` reads a file (`None` when it does not exist).
fn analyze(root: &Path, display_root: &Path, load: &dyn Fn(&Path) -> Option<String>) -> Analysis {
    let mut collector = Collector {
        load,
        display_root,
        modules: BTreeMap::new(),
        refs: Vec::new(),
        errors: Vec::new(),
        module: Vec::new(),
        file: root.to_path_buf(),
        child_dir: PathBuf::new(),
        inline_depth: 0,
    };
    collector.walk_file(Vec::new(), root.to_path_buf(), true);

    let names: HashSet<&ModPath> = collector.modules.keys().collect();
    let mut edges: BTreeMap<(ModPath, ModPath), BTreeSet<String>> = BTreeMap::new();
    for raw in &collector.refs {
        let Some(to) = resolve(&names, &raw.module, &raw.segments) else {
            continue;
        };
        if to == raw.module {
            continue;
        }
        let shown = collector.shown(&raw.file);
        edges
            .entry((raw.module.clone(), to))
            .or_default()
            .insert(format!("{} ({shown})", raw.segments.join("::")));
    }
    Analysis {
        modules: collector.modules,
        edges,
        errors: collector.errors,
    }
}

impl Analysis {
    /// The same graph without the modules `drop` selects (and their uses).
    fn without(&self, drop: &dyn Fn(&ModPath) -> bool) -> Analysis {
        Analysis {
            modules: self
                .modules
                .iter()
                .filter(|(m, _)| !drop(m))
                .map(|(m, f)| (m.clone(), f.clone()))
                .collect(),
            edges: self
                .edges
                .iter()
                .filter(|((f, t), _)| !drop(f) && !drop(t))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            errors: Vec::new(),
        }
    }

    /// The strongly connected components with more than one module (Tarjan).
    fn components(&self) -> Vec<Vec<ModPath>> {
        let nodes: Vec<&ModPath> = self.modules.keys().collect();
        let index_of: BTreeMap<&ModPath, usize> =
            nodes.iter().enumerate().map(|(i, m)| (*m, i)).collect();
        let mut adjacency = vec![Vec::new(); nodes.len()];
        for (from, to) in self.edges.keys() {
            if let (Some(&f), Some(&t)) = (index_of.get(from), index_of.get(to)) {
                adjacency[f].push(t);
            }
        }

        struct Tarjan<'g> {
            adjacency: &'g [Vec<usize>],
            index: Vec<Option<usize>>,
            low: Vec<usize>,
            on_stack: Vec<bool>,
            stack: Vec<usize>,
            next: usize,
            components: Vec<Vec<usize>>,
        }
        impl Tarjan<'_> {
            fn connect(&mut self, v: usize) {
                self.index[v] = Some(self.next);
                self.low[v] = self.next;
                self.next += 1;
                self.stack.push(v);
                self.on_stack[v] = true;
                for &w in &self.adjacency[v] {
                    match self.index[w] {
                        None => {
                            self.connect(w);
                            self.low[v] = self.low[v].min(self.low[w]);
                        }
                        Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                        Some(_) => {}
                    }
                }
                if Some(self.low[v]) == self.index[v] {
                    let mut component = Vec::new();
                    while let Some(w) = self.stack.pop() {
                        self.on_stack[w] = false;
                        component.push(w);
                        if w == v {
                            break;
                        }
                    }
                    self.components.push(component);
                }
            }
        }

        let mut tarjan = Tarjan {
            adjacency: &adjacency,
            index: vec![None; nodes.len()],
            low: vec![0; nodes.len()],
            on_stack: vec![false; nodes.len()],
            stack: Vec::new(),
            next: 0,
            components: Vec::new(),
        };
        for v in 0..nodes.len() {
            if tarjan.index[v].is_none() {
                tarjan.connect(v);
            }
        }
        let mut components: Vec<Vec<ModPath>> = tarjan
            .components
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|c| {
                let mut c: Vec<ModPath> = c.into_iter().map(|i| nodes[i].clone()).collect();
                c.sort();
                c
            })
            .collect();
        components.sort();
        components
    }

    /// Each component with its cycles: one per use inside the component (that use, then the
    /// shortest way back), so every use that keeps the modules tangled shows up in some cycle.
    fn knots(&self) -> Vec<Knot> {
        let mut knots = Vec::new();
        for component in self.components() {
            let members: BTreeSet<&ModPath> = component.iter().collect();
            let inner: Vec<(&ModPath, &ModPath)> = self
                .edges
                .keys()
                .filter(|(f, t)| members.contains(f) && members.contains(t))
                .map(|(f, t)| (f, t))
                .collect();
            let mut cycles = Vec::new();
            let mut seen = BTreeSet::new();
            for &(from, to) in &inner {
                // Shortest path to -> ... -> from inside the component (BFS).
                let mut previous: BTreeMap<&ModPath, &ModPath> = BTreeMap::new();
                let mut queue = VecDeque::from([to]);
                let mut reached = false;
                while let Some(at) = queue.pop_front() {
                    if at == from {
                        reached = true;
                        break;
                    }
                    for &(f, t) in &inner {
                        if f == at && t != to && !previous.contains_key(t) {
                            previous.insert(t, at);
                            queue.push_back(t);
                        }
                    }
                }
                if !reached {
                    continue;
                }
                // Walk back from `from` to `to`, then read it forwards: from, to, ..., (from).
                let mut back = Vec::new();
                let mut at = from;
                while at != to {
                    let Some(&p) = previous.get(at) else { break };
                    back.push(p.clone());
                    at = p;
                }
                back.reverse();
                let mut modules = vec![from.clone()];
                modules.extend(back);
                // Canonical rotation (start at the smallest module), so rotations count once.
                let start = modules
                    .iter()
                    .enumerate()
                    .min_by(|a, b| a.1.cmp(b.1))
                    .map_or(0, |(i, _)| i);
                modules.rotate_left(start);
                if seen.insert(modules.clone()) {
                    cycles.push(Cycle { modules });
                }
            }
            cycles
                .sort_by(|a, b| (a.modules.len(), &a.modules).cmp(&(b.modules.len(), &b.modules)));
            knots.push(Knot {
                modules: component,
                cycles,
            });
        }
        knots
    }

    fn cycles(&self) -> Vec<Cycle> {
        self.knots().into_iter().flat_map(|k| k.cycles).collect()
    }

    /// Every knot as text.
    fn report(&self, label: &str) -> String {
        self.knots()
            .iter()
            .map(|knot| self.report_knot(label, knot))
            .collect()
    }

    /// One line per cycle (`label: a -> b -> a`), then each use inside the knot with the
    /// paths behind it: breaking uses until no cycle is left untangles the knot.
    fn report_knot(&self, label: &str, knot: &Knot) -> String {
        let mut out = String::new();
        for cycle in &knot.cycles {
            let _ = writeln!(out, "{label}: {}", cycle.display());
        }
        let _ = writeln!(out, "  uses inside these cycles:");
        for ((from, to), paths) in &self.edges {
            if !(knot.modules.contains(from) && knot.modules.contains(to)) {
                continue;
            }
            let _ = writeln!(out, "    {} -> {}:", display_mod(from), display_mod(to));
            for path in paths.iter().take(6) {
                let _ = writeln!(out, "        {path}");
            }
            if paths.len() > 6 {
                let _ = writeln!(out, "        ... and {} more", paths.len() - 6);
            }
        }
        out
    }
}

/// The module subtree a `PENDING` entry names in `krate`: `[]` for an entry that is the crate's
/// name, `["brightpearl"]` for `sandbox::brightpearl` in `sandbox`; `None` for another crate.
fn pending_subtree<'e>(entry: &'e str, krate: &str) -> Option<Vec<&'e str>> {
    let mut parts = entry.split("::");
    (parts.next() == Some(krate)).then(|| parts.collect())
}

fn in_subtree(module: &[String], prefix: &[&str]) -> bool {
    module.len() >= prefix.len() && module.iter().zip(prefix).all(|(a, b)| a == b)
}

/// What one crate target contributes to the verdict.
#[derive(Debug, Default)]
struct Verdict<'e> {
    /// Cycles that fail the test, as text.
    failures: String,
    /// Cycles through a `PENDING` subtree, as text.
    tolerated: String,
    /// The `PENDING` entries that excused something.
    used: BTreeSet<&'e str>,
}

/// Judges one crate target: a cycle fails unless it runs through a module of a `pending`
/// subtree of this crate. The cycles left when those subtrees are taken out of the graph fail.
fn judge<'e>(krate: &str, label: &str, analysis: &Analysis, pending: &[&'e str]) -> Verdict<'e> {
    let mut verdict = Verdict::default();
    for error in &analysis.errors {
        let _ = writeln!(verdict.failures, "{label}: {error}");
    }
    let subtrees: Vec<(&'e str, Vec<&'e str>)> = pending
        .iter()
        .filter_map(|entry| Some((*entry, pending_subtree(entry, krate)?)))
        .collect();
    let pending_module = |m: &ModPath| subtrees.iter().any(|(_, prefix)| in_subtree(m, prefix));
    for knot in analysis.knots() {
        let touched: Vec<&str> = subtrees
            .iter()
            .filter(|(_, prefix)| knot.modules.iter().any(|m| in_subtree(m, prefix)))
            .map(|(entry, _)| *entry)
            .collect();
        if touched.is_empty() {
            verdict
                .failures
                .push_str(&analysis.report_knot(label, &knot));
        } else {
            verdict.used.extend(touched);
            verdict
                .tolerated
                .push_str(&analysis.report_knot(label, &knot));
        }
    }
    // A knot through a pending subtree may also hide a cycle that avoids it: that one fails.
    let rest = analysis.without(&pending_module);
    let failing: BTreeSet<Vec<ModPath>> = analysis
        .knots()
        .iter()
        .filter(|k| k.modules.iter().all(|m| !pending_module(m)))
        .map(|k| k.modules.clone())
        .collect();
    for knot in rest.knots() {
        if !failing.contains(&knot.modules) {
            verdict.failures.push_str(&rest.report_knot(label, &knot));
        }
    }
    verdict
}

/// Every crate target of the workspace: `(crate name, label, root file)`.
fn workspace_targets(root: &Path) -> Vec<(String, String, PathBuf)> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.push(root.join("xtask"));
    let mut targets = Vec::new();
    for dir in dirs {
        if !dir.join("Cargo.toml").is_file() {
            continue;
        }
        // Every crate directory is named after its package.
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let src = dir.join("src");
        if src.join("lib.rs").is_file() {
            targets.push((name.clone(), name.clone(), src.join("lib.rs")));
        }
        if src.join("main.rs").is_file() {
            targets.push((name.clone(), format!("{name} (bin)"), src.join("main.rs")));
        }
        let mut bins: Vec<PathBuf> = std::fs::read_dir(src.join("bin"))
            .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        bins.sort();
        for bin in bins {
            let (root_file, bin_name) = if bin.is_dir() {
                (bin.join("main.rs"), bin.file_name())
            } else {
                (bin.clone(), bin.file_stem())
            };
            let bin_name = bin_name.map(|n| n.to_string_lossy().into_owned());
            if root_file.is_file() {
                let label = format!("{name} (bin {})", bin_name.unwrap_or_default());
                targets.push((name.clone(), label, root_file));
            }
        }
    }
    targets
}

#[test]
fn no_module_cycle_in_any_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root");
    let targets = workspace_targets(root);
    let names: BTreeSet<&str> = targets.iter().map(|(n, _, _)| n.as_str()).collect();
    assert!(
        names.len() >= 10,
        "expected the workspace's crates under {}, found {names:?}",
        root.display()
    );

    let load = |path: &Path| std::fs::read_to_string(path).ok();
    let mut failures = String::new();
    let mut tolerated = String::new();
    let mut used_entries = BTreeSet::new();
    let mut summary = String::new();
    for (krate, label, file) in &targets {
        let analysis = analyze(file, root, &load);
        let _ = writeln!(
            summary,
            "{label}: {} modules, {} uses between them",
            analysis.modules.len(),
            analysis.edges.len()
        );
        let verdict = judge(krate, label, &analysis, PENDING);
        failures.push_str(&verdict.failures);
        tolerated.push_str(&verdict.tolerated);
        used_entries.extend(verdict.used);
    }
    eprintln!("checked:\n{summary}");
    if !tolerated.is_empty() {
        eprintln!("module cycles tolerated for now (PENDING):\n{tolerated}");
    }
    for entry in PENDING {
        if !used_entries.contains(entry) {
            let _ = writeln!(
                failures,
                "PENDING lists `{entry}` but it has no module cycle left: remove it from PENDING"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "module cycles (a module uses one that uses it back, directly or through others). \
         Move what both sides need into a bottom module that uses neither, and re-export it \
         from the parent if its public path must stay:\n{failures}"
    );
}

// ---- The checker itself, on small inline crates. ----

/// Analyzes an in-memory crate: `files` maps paths under `src/` to their source.
fn analyze_sources(files: &[(&str, &str)]) -> Analysis {
    let files: BTreeMap<PathBuf, String> = files
        .iter()
        .map(|(p, s)| (Path::new("src").join(p), (*s).to_owned()))
        .collect();
    let load = |path: &Path| files.get(path).cloned();
    analyze(Path::new("src/lib.rs"), Path::new(""), &load)
}

fn cycle_lines(analysis: &Analysis) -> Vec<String> {
    assert!(analysis.errors.is_empty(), "{:?}", analysis.errors);
    analysis.cycles().iter().map(Cycle::display).collect()
}

#[test]
fn checker_finds_a_cycle_between_siblings() {
    let analysis = analyze_sources(&[
        ("lib.rs", "mod a; mod b;"),
        ("a.rs", "use crate::b::B; pub struct A(B);"),
        (
            "b.rs",
            "pub struct B; pub fn f() -> Option<super::a::A> { None }",
        ),
    ]);
    assert_eq!(cycle_lines(&analysis), ["a -> b -> a"]);
    let report = analysis.report("demo");
    assert!(report.contains("demo: a -> b -> a"), "{report}");
    assert!(report.contains("crate::b::B (src/a.rs)"), "{report}");
    assert!(report.contains("super::a::A (src/b.rs)"), "{report}");
}

#[test]
fn checker_finds_a_child_using_an_item_of_its_re_exporting_parent() {
    let analysis = analyze_sources(&[
        ("lib.rs", "mod a; pub use a::A; pub struct Shared;"),
        ("a.rs", "pub struct A; fn f() { let _ = crate::Shared; }"),
    ]);
    assert_eq!(cycle_lines(&analysis), ["crate -> a -> crate"]);
}

#[test]
fn checker_finds_a_longer_cycle_through_nested_files_and_macros() {
    let analysis = analyze_sources(&[
        ("lib.rs", "pub mod x; pub mod z;"),
        ("x/mod.rs", "pub mod y;"),
        ("x/y.rs", "pub fn f() { let _ = vec![crate::z::Z]; }"),
        (
            "z.rs",
            "pub struct Z; pub use w::g; pub mod w { pub fn g() { super::super::x::y::f() } }",
        ),
    ]);
    assert_eq!(cycle_lines(&analysis), ["x::y -> z -> z::w -> x::y"]);
}

#[test]
fn checker_accepts_a_parent_that_declares_and_re_exports_children_using_siblings() {
    let analysis = analyze_sources(&[
        (
            "lib.rs",
            "mod a; mod b; mod state;\npub use a::A;\npub use b::{B, helper};\npub use state::State;\n\
             pub fn run() -> A { a::make(State) }",
        ),
        (
            "a.rs",
            "use crate::state::State;\npub struct A(pub State);\npub(crate) fn make(s: State) -> A { \
             let _ = super::b::helper(); A(s) }",
        ),
        (
            "b.rs",
            "pub struct B;\npub(super) fn helper() -> crate::state::State { crate::state::State }\n\
             pub(in crate::b) fn private() {}",
        ),
        ("state.rs", "pub struct State;"),
    ]);
    assert_eq!(cycle_lines(&analysis), Vec::<String>::new());
    assert_eq!(analysis.modules.len(), 4);
    assert!(analysis.edges.contains_key(&(vec![], vec!["a".to_owned()])));
}

#[test]
fn checker_ignores_test_modules_and_test_only_items() {
    let analysis = analyze_sources(&[
        ("lib.rs", "mod a; mod b; pub use a::A;"),
        (
            "a.rs",
            "pub struct A;\n#[cfg(test)]\nmod tests { use super::*; use crate::b::B; }\n\
             #[cfg(test)] mod more;",
        ),
        (
            "b.rs",
            "pub struct B(crate::a::A);\n#[cfg(test)] use crate::A as Root;",
        ),
    ]);
    assert_eq!(cycle_lines(&analysis), Vec::<String>::new());
    // `a/more.rs` does not exist: a test-only module is not even looked for.
    assert!(analysis.errors.is_empty());
}

#[test]
fn checker_follows_path_attributes_and_inline_modules() {
    let analysis = analyze_sources(&[
        (
            "lib.rs",
            "#[path = \"elsewhere/impl.rs\"] mod imp; mod outer { pub mod inner; }",
        ),
        (
            "elsewhere/impl.rs",
            "pub fn f() { crate::outer::inner::g() }",
        ),
        ("outer/inner.rs", "pub fn g() { crate::imp::f() }"),
    ]);
    assert_eq!(cycle_lines(&analysis), ["imp -> outer::inner -> imp"]);
}

#[test]
fn checker_reports_a_missing_module_file() {
    let analysis = analyze_sources(&[("lib.rs", "mod gone;")]);
    assert_eq!(analysis.errors.len(), 1, "{:?}", analysis.errors);
    assert!(analysis.errors[0].contains("gone"), "{:?}", analysis.errors);
}

#[test]
fn pending_entries_excuse_only_cycles_through_their_subtree() {
    let analysis = analyze_sources(&[
        ("lib.rs", "mod a; mod b; pub use b::B; pub struct Root;"),
        ("a/mod.rs", "mod x; mod y; pub use x::X; pub struct A;"),
        ("a/x.rs", "pub struct X(pub super::y::Y);"),
        (
            "a/y.rs",
            "pub struct Y; fn f() { let _ = super::x::X(Y); let _ = super::A; }",
        ),
        ("b.rs", "pub struct B(crate::Root);"),
    ]);
    assert_eq!(
        cycle_lines(&analysis),
        [
            "crate -> b -> crate",
            "a::x -> a::y -> a::x",
            "a -> a::x -> a::y -> a"
        ]
    );

    let verdict = judge("demo", "demo", &analysis, &["demo::a", "other", "demo::c"]);
    assert!(
        verdict.tolerated.contains("demo: a::x -> a::y -> a::x"),
        "{}",
        verdict.tolerated
    );
    assert!(
        verdict.failures.contains("demo: crate -> b -> crate"),
        "{}",
        verdict.failures
    );
    assert!(!verdict.failures.contains("a::x"), "{}", verdict.failures);
    assert_eq!(verdict.used, BTreeSet::from(["demo::a"]));

    // Every cycle of the knot runs through `a::y`: excusing that subtree excuses them all.
    let verdict = judge("demo", "demo", &analysis, &["demo::a::y"]);
    assert!(!verdict.failures.contains("a::"), "{}", verdict.failures);
    assert!(
        verdict.failures.contains("crate -> b -> crate"),
        "{}",
        verdict.failures
    );

    let verdict = judge("demo", "demo", &analysis, &["demo"]);
    assert!(verdict.failures.is_empty(), "{}", verdict.failures);

    // A cycle that avoids the excused subtree still fails, even inside a tolerated knot.
    let analysis = analyze_sources(&[
        ("lib.rs", "mod a;"),
        ("a/mod.rs", "mod x; mod y; pub use x::X; pub struct A;"),
        ("a/x.rs", "pub struct X(pub super::y::Y, pub super::A);"),
        ("a/y.rs", "pub struct Y(Option<Box<super::x::X>>);"),
    ]);
    let verdict = judge("demo", "demo", &analysis, &["demo::a::y"]);
    assert!(
        verdict.tolerated.contains("a::x -> a::y -> a::x"),
        "{}",
        verdict.tolerated
    );
    assert!(
        verdict.failures.contains("demo: a -> a::x -> a"),
        "{}",
        verdict.failures
    );
}

#[test]
fn pending_entries_name_a_crate_or_a_subtree() {
    assert_eq!(pending_subtree("sandbox", "sandbox"), Some(vec![]));
    assert_eq!(
        pending_subtree("sandbox::brightpearl", "sandbox"),
        Some(vec!["brightpearl"])
    );
    assert_eq!(pending_subtree("sandbox::brightpearl", "relay"), None);
    assert_eq!(pending_subtree("sandbox-x", "sandbox"), None);
    let api = ["brightpearl".to_owned(), "api".to_owned()];
    assert!(in_subtree(&api, &["brightpearl"]));
    assert!(in_subtree(&api, &[]));
    assert!(!in_subtree(&api, &["nshift"]));
    assert!(!in_subtree(&[], &["brightpearl"]));
}
