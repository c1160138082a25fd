//! The module graph of each crate has no cycle: a module that uses another is never used by
//! it, directly or through others (using what an enclosing module defines is not counted). Read from the sources (every `use` and every `crate::`,
//! `super::` or `self::` path outside test code), with re-exports followed to the module that
//! defines the item, so that a facade does not hide a cycle behind it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crates checked, by their `src/` directory (relative to the workspace root) and root file.
const CRATES: [(&str, &str); 3] = [
    ("otlp/src", "lib.rs"),
    ("roles/src", "lib.rs"),
    ("node/src", "lib.rs"),
];

#[test]
fn no_crate_has_an_import_cycle_between_its_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut report = String::new();
    for (src, lib) in CRATES {
        let graph = Graph::read(&root.join(src), lib);
        assert!(
            graph.modules.len() > 3,
            "{src}: found only {} modules; is the path right?",
            graph.modules.len()
        );
        for cycle in graph.cycles() {
            report.push_str(&format!("{src}: a cycle through {}\n", cycle.join(", ")));
            for (from, to, why) in graph.edges_within(&cycle) {
                report.push_str(&format!("    {from} -> {to}: {why}\n"));
            }
        }
    }
    assert!(report.is_empty(), "import cycles:\n{report}");
}

#[test]
fn in_roles_the_slim_plumbing_and_delivery_import_nothing_of_the_roles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let graph = Graph::read(&root.join("roles/src"), "lib.rs");
    let upward: Vec<String> = graph
        .edges
        .iter()
        .filter(|((from, to), _)| {
            (from.starts_with("slim") || from.starts_with("delivery")) && to.starts_with("role")
        })
        .map(|((from, to), why)| format!("{from} -> {to}: {why}"))
        .collect();
    assert!(upward.is_empty(), "{upward:#?}");
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(path, text).expect("write");
    };
    write("lib.rs", "mod a;\nmod b;\nmod c;\npub use b::Thing;\n");
    write("a.rs", "use crate::Thing;\n");
    write("b/mod.rs", "mod inner;\npub use inner::Thing;\n");
    write(
        "b/inner.rs",
        "pub struct Thing;\nfn f() { crate::c::g(); }\n",
    );
    write(
        "c.rs",
        "use crate::{a as _};\npub fn g() {}\n#[cfg(test)]\nmod tests {\n    use crate::b::Thing;\n}\n",
    );
    let graph = Graph::read(dir.path(), "lib.rs");
    // a -> b::inner (through two re-exports) -> c -> a; c's tests do not count.
    assert_eq!(graph.cycles(), vec![vec!["a", "b::inner", "c"]]);
}

#[test]
fn the_cycle_check_follows_paths_through_a_module_name_in_scope() {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(path, text).expect("write");
    };
    write("lib.rs", "mod a;\nmod b;\n");
    write("a.rs", "use crate::b;\nfn f() { b::inner::g(); }\n");
    write("b/mod.rs", "pub mod inner;\n");
    write("b/inner.rs", "pub fn g() { crate::a::h(); }\n");
    let graph = Graph::read(dir.path(), "lib.rs");
    assert_eq!(graph.cycles(), vec![vec!["a", "b::inner"]]);
}

/// Modules (by path, `crate` for the root) and what each uses.
struct Graph {
    modules: BTreeSet<String>,
    /// (from, to) -> where it was seen first.
    edges: BTreeMap<(String, String), String>,
}

/// One source file's module and text.
struct Source {
    module: String,
    text: String,
    file: PathBuf,
}

impl Graph {
    fn read(src: &Path, lib: &str) -> Graph {
        let mut sources = Vec::new();
        collect(src, src, lib, &mut sources);
        let modules: BTreeSet<String> = sources.iter().map(|s| s.module.clone()).collect();
        // Names each module re-exports, and the path each stands for.
        let mut reexports: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for source in &sources {
            for (stmt, public) in use_statements(&source.text) {
                if !public {
                    continue;
                }
                for (path, alias) in expand(&stmt) {
                    if let Some(abs) = absolute(&modules, source, &path) {
                        let name = alias.unwrap_or_else(|| last(&abs).to_string());
                        reexports
                            .entry(source.module.clone())
                            .or_default()
                            .insert(name, abs);
                    }
                }
            }
        }
        let mut edges = BTreeMap::new();
        for source in &sources {
            let mut paths = Vec::new();
            for (stmt, _) in use_statements(&source.text) {
                paths.extend(expand(&stmt).into_iter().map(|(p, _)| p));
            }
            paths.extend(inline_paths(&source.text));
            paths.extend(alias_paths(&modules, source));
            for path in paths {
                let Some(abs) = absolute(&modules, source, &path) else {
                    continue;
                };
                let Some(target) = resolve(&modules, &reexports, &abs, 0) else {
                    continue;
                };
                if target != source.module && !is_ancestor(&target, &source.module) {
                    edges
                        .entry((source.module.clone(), target))
                        .or_insert_with(|| format!("`{path}` in {}", source.file.display()));
                }
            }
        }
        Graph { modules, edges }
    }

    /// The strongly connected components with more than one module, each sorted.
    fn cycles(&self) -> Vec<Vec<String>> {
        let next = |m: &str| -> Vec<String> {
            self.edges
                .keys()
                .filter(|(from, _)| from == m)
                .map(|(_, to)| to.clone())
                .collect()
        };
        let reaches = |from: &str| -> BTreeSet<String> {
            let mut seen = BTreeSet::new();
            let mut todo = vec![from.to_string()];
            while let Some(m) = todo.pop() {
                for n in next(&m) {
                    if seen.insert(n.clone()) {
                        todo.push(n);
                    }
                }
            }
            seen
        };
        let reach: BTreeMap<String, BTreeSet<String>> = self
            .modules
            .iter()
            .map(|m| (m.clone(), reaches(m)))
            .collect();
        let mut out: Vec<Vec<String>> = Vec::new();
        let mut placed = BTreeSet::new();
        for m in &self.modules {
            if placed.contains(m) || !reach[m].contains(m) {
                continue;
            }
            let component: Vec<String> = self
                .modules
                .iter()
                .filter(|n| reach[m].contains(*n) && reach[*n].contains(m))
                .cloned()
                .collect();
            placed.extend(component.iter().cloned());
            out.push(component);
        }
        out
    }

    fn edges_within<'a>(
        &'a self,
        cycle: &'a [String],
    ) -> impl Iterator<Item = (&'a str, &'a str, &'a str)> {
        self.edges.iter().filter_map(move |((from, to), why)| {
            (cycle.contains(from) && cycle.contains(to)).then_some((
                from.as_str(),
                to.as_str(),
                why.as_str(),
            ))
        })
    }
}

/// Whether `ancestor` encloses `module`. A module may use what its ancestors define (they own
/// it, as `mod.rs` owns the types its children share), so that is no edge; the ancestor's own
/// uses of the module still are, and every other pair of modules counts both ways.
fn is_ancestor(ancestor: &str, module: &str) -> bool {
    ancestor == "crate" || module.starts_with(&format!("{ancestor}::"))
}

fn collect(src: &Path, dir: &Path, lib: &str, out: &mut Vec<Source>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(src, &path, lib, out);
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let rel = path.strip_prefix(src).expect("under src");
        let parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        let module = match parts.as_slice() {
            [one] if format!("{one}.rs") == lib => "crate".to_string(),
            // Another crate root beside the library (main.rs) is a crate of its own.
            [one] if one == "main" => continue,
            [.., last] if last == "mod" => parts[..parts.len() - 1].join("::"),
            _ => parts.join("::"),
        };
        let text = std::fs::read_to_string(&path).expect("read source");
        out.push(Source {
            module,
            text: without_tests(&strip_comments_and_strings(&text)),
            file: path,
        });
    }
}

/// Source text without comments and string contents (a path in a doc or a message is not
/// a use).
fn strip_comments_and_strings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            out.push('"');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            out.push('"');
            i += 1;
        } else if b[i] == b'r' && (b.get(i + 1) == Some(&b'#') || b.get(i + 1) == Some(&b'"')) {
            // Raw strings: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            match text[j + 1..].find(&close) {
                Some(end) => i = j + 1 + end + close.len(),
                None => i = b.len(),
            }
            out.push_str("\"\"");
        } else {
            let ch = text[i..].chars().next().expect("char");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Text without `#[cfg(test)]` items (test modules may use anything).
fn without_tests(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        // The item ends at its matching close brace, or at the first `;` before any brace.
        let brace = after.find('{');
        let semi = after.find(';');
        let end = match (brace, semi) {
            (Some(b), Some(s)) if s < b => s + 1,
            (Some(b), _) => {
                let mut depth = 0;
                let mut end = after.len();
                for (i, c) in after[b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = b + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (None, Some(s)) => s + 1,
            (None, None) => after.len(),
        };
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Every `use` statement's path text, and whether it is a re-export (`pub use`, `pub(crate) use`).
fn use_statements(text: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("use ") {
        let before = &text[..i];
        let line_start = before.rfind('\n').map_or(0, |n| n + 1);
        let prefix = before[line_start..].trim();
        let public = prefix.starts_with("pub");
        if !(prefix.is_empty() || prefix == "pub" || prefix.starts_with("pub(")) {
            continue;
        }
        let Some(end) = text[i..].find(';') else {
            continue;
        };
        let stmt: String = text[i + 4..i + end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        out.push((stmt, public));
    }
    out
}

/// The paths of a use tree, each with its alias: `a::{b, c::{d as e}}` -> a::b, a::c::d as e.
fn expand(tree: &str) -> Vec<(String, Option<String>)> {
    let tree = tree.trim().trim_start_matches("::");
    match tree.find('{') {
        None => {
            let (path, alias) = match tree.split_once(" as ") {
                Some((p, a)) => (p.trim(), Some(a.trim().to_string())),
                None => (tree, None),
            };
            if path.is_empty() {
                return Vec::new();
            }
            vec![(path.trim_end_matches("::self").to_string(), alias)]
        }
        Some(open) => {
            let prefix = tree[..open].trim().trim_end_matches("::");
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let mut items = Vec::new();
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        items.push(&inner[start..i]);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            items.push(&inner[start..]);
            items
                .into_iter()
                .filter(|item| !item.trim().is_empty())
                .flat_map(|item| {
                    let item = item.trim();
                    let joined = if item == "self" {
                        prefix.to_string()
                    } else if prefix.is_empty() {
                        item.to_string()
                    } else {
                        format!("{prefix}::{item}")
                    };
                    expand(&joined)
                })
                .collect()
        }
    }
}

/// `crate::…`, `super::…` and `self::…` paths written in code.
fn inline_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for head in ["crate::", "super::", "self::"] {
        for (i, _) in text.match_indices(head) {
            let before = text[..i].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = text[i..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(path.trim_end_matches(':').to_string());
        }
    }
    out
}

/// Paths written through a module name in scope: one a `use` brought in (`use crate::a::b;`
/// then `b::f()`), or a child module of this one (`child::f()`), made absolute.
fn alias_paths(modules: &BTreeSet<String>, source: &Source) -> Vec<String> {
    let own = |m: &str| {
        if source.module == "crate" {
            m.to_string()
        } else {
            format!("{}::{m}", source.module)
        }
    };
    let mut aliases: BTreeMap<String, String> = modules
        .iter()
        .filter_map(|m| {
            let name = last(m);
            (*m == own(name)).then(|| (name.to_string(), format!("crate::{m}")))
        })
        .collect();
    for (stmt, _) in use_statements(&source.text) {
        for (path, alias) in expand(&stmt) {
            let Some(abs) = absolute(modules, source, &path) else {
                continue;
            };
            if modules.contains(abs.trim_start_matches("crate::")) {
                let name = alias.unwrap_or_else(|| last(&abs).to_string());
                aliases.insert(name, abs);
            }
        }
    }
    let mut out = Vec::new();
    for (name, abs) in &aliases {
        let head = format!("{name}::");
        for (i, _) in source.text.match_indices(&head) {
            let before = source.text[..i].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest: String = source.text[i + head.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(format!("{abs}::{}", rest.trim_end_matches(':')));
        }
    }
    out
}

/// A path made absolute (`crate::a::b`), or `None` for another crate's.
fn absolute(modules: &BTreeSet<String>, source: &Source, path: &str) -> Option<String> {
    let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<String> = if source.module == "crate" {
        Vec::new()
    } else {
        source.module.split("::").map(String::from).collect()
    };
    match segments.first().copied() {
        Some("crate") => {
            base.clear();
            segments.remove(0);
        }
        Some("self") => {
            segments.remove(0);
        }
        Some("super") => {
            while segments.first() == Some(&"super") {
                segments.remove(0);
                base.pop();
            }
        }
        // A child module's name (`use child::Item;`, 2018 paths).
        Some(first) => {
            let child = if source.module == "crate" {
                first.to_string()
            } else {
                format!("{}::{first}", source.module)
            };
            if !modules.contains(&child) {
                return None;
            }
        }
        None => return None,
    }
    base.extend(segments.into_iter().map(String::from));
    Some(if base.is_empty() {
        "crate".to_string()
    } else {
        format!("crate::{}", base.join("::"))
    })
}

fn last(path: &str) -> &str {
    path.rsplit("::").next().unwrap_or(path)
}

/// The module that defines what `abs` names: the longest module prefix, through re-exports.
fn resolve(
    modules: &BTreeSet<String>,
    reexports: &BTreeMap<String, BTreeMap<String, String>>,
    abs: &str,
    depth: usize,
) -> Option<String> {
    let rel = abs.strip_prefix("crate::").unwrap_or("");
    let segments: Vec<&str> = rel.split("::").filter(|s| !s.is_empty()).collect();
    // The longest prefix that is a module.
    let mut module = "crate".to_string();
    let mut used = 0;
    for n in (1..=segments.len()).rev() {
        let candidate = segments[..n].join("::");
        if modules.contains(&candidate) {
            module = candidate;
            used = n;
            break;
        }
    }
    // An item the module re-exports is defined where the re-export points.
    if depth < 8 {
        if let Some(name) = segments.get(used) {
            if let Some(target) = reexports.get(&module).and_then(|m| m.get(*name)) {
                let rest = segments[used + 1..].join("::");
                let target = if rest.is_empty() {
                    target.clone()
                } else {
                    format!("{target}::{rest}")
                };
                return resolve(modules, reexports, &target, depth + 1);
            }
        }
    }
    Some(module)
}
