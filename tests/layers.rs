//! The crate's layering rule, checked: every module of `src/` imports only
//! modules below it in [`LAYERS`], a total order, so no import cycle can
//! exist (none inside a folder either). `docs/ARCHITECTURE.md` ("Layers")
//! says what each layer holds.
//!
//! An import is any `crate::a::b` path in the code of a module (comments and
//! its unit tests left out), resolved to the longest module it names. An
//! import that must go the wrong way for a while would be listed in
//! [`NOT_YET`] with what removes it; today there is none, and an entry that
//! is no longer needed fails the test as a new upward import does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every module, top to bottom.
const LAYERS: &[&str] = &[
    "",
    // The producer: the public handle, its intake and transactions, and the
    // state its threads share.
    "producer::transaction",
    "producer",
    "producer::intake",
    "producer::shared",
    "producer::hooks",
    // The builder (above `native`, whose configuration it checks).
    "config",
    // The worker side: the thread loop, what other threads use to reach a
    // worker, the timer, the ring, batches, routing.
    "worker",
    "worker::remote",
    "worker::timer",
    "worker::ring",
    "worker::batch",
    "worker::route",
    // Everything that touches a raw librdkafka pointer.
    "native::txn",
    "native::handover",
    "native::topic",
    "native::metadata",
    "native::callbacks",
    "native::client",
    "native::oauth",
    "native::reachability",
    "native::reports",
    "native::admin",
    "native::config",
    "native::partitioner",
    "native::owned",
    "native",
    // The delivery side: the future, the slot pool, the ledger, tickets.
    "delivery",
    "delivery::pool",
    "delivery::slot",
    "delivery::ledger",
    "delivery::ticket",
    "delivery::latency",
    // Plain types.
    "cluster",
    "events",
    "oauth",
    "embedded",
    "stats",
    "report",
    "record",
    "error",
    // The synchronisation shim and the primitives built on it.
    "sync::baton",
    "sync::park",
    "sync::wait_list",
    "sync::block_on",
    "sync::bugs",
    "sync",
];

/// Imports allowed to go up until the change named removes them: none.
const NOT_YET: &[(&str, &str, &str)] = &[];

/// `src/a/b.rs` → `a::b`; `src/a/mod.rs` → `a`; `src/lib.rs` → ``.
fn module_of(path: &Path, src: &Path) -> String {
    let relative = path.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a module: comments and unit-test modules left out.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap();
    let text = text.split("#[cfg(all(test").next().unwrap();
    text.lines()
        .map(|line| line.split("//").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules `code` names with `crate::` paths (also inside `use crate::{…}`).
fn imports(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut paths: Vec<String> = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            paths.extend(group.split(',').map(|p| p.trim().to_string()));
        } else {
            paths.push(rest.chars().take_while(|&c| word(c)).collect());
        }
    }
    for path in paths {
        let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
        if let Some(module) = (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find(|m| modules.contains(m))
        {
            found.insert(module);
        }
    }
    found
}

#[test]
fn every_module_imports_only_modules_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let graph: BTreeMap<String, BTreeSet<String>> = {
        let modules: BTreeSet<String> = files.iter().map(|f| module_of(f, &src)).collect();
        files
            .iter()
            .map(|f| {
                let module = module_of(f, &src);
                let mut found = imports(&code(&std::fs::read_to_string(f).unwrap()), &modules);
                found.remove(&module);
                (module, found)
            })
            .collect()
    };
    let rank: BTreeMap<&str, usize> = LAYERS.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let mut problems = Vec::new();
    for module in graph.keys() {
        if !rank.contains_key(module.as_str()) {
            problems.push(format!("{module:?} is in no layer: add it to LAYERS"));
        }
    }
    let mut still_needed = BTreeSet::new();
    for (module, imported) in &graph {
        for target in imported {
            let (Some(&from), Some(&to)) = (rank.get(module.as_str()), rank.get(target.as_str()))
            else {
                continue;
            };
            if from < to {
                continue;
            }
            match NOT_YET.iter().find(|(a, b, _)| a == module && b == target) {
                Some(entry) => {
                    still_needed.insert(*entry);
                }
                None => problems.push(format!("{module} imports {target}, which is above it")),
            }
        }
    }
    for entry in NOT_YET {
        if !still_needed.contains(entry) {
            problems.push(format!(
                "{} no longer imports {}: take it off NOT_YET",
                entry.0, entry.1
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "layering rule broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_check_sees_an_upward_import() {
    let modules: BTreeSet<String> = ["delivery::slot", "producer::shared", "sync"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let text = "use crate::producer::shared::Shared; // crate::sync\nfn f() { crate::sync::x(); }";
    let found = imports(&code(text), &modules);
    assert_eq!(
        found,
        ["producer::shared", "sync"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let grouped = imports("use crate::{delivery::slot::Slot, sync};", &modules);
    assert_eq!(grouped.len(), 2, "{grouped:?}");
}
