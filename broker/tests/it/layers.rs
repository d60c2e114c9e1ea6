//! The broker's modules form layers that point one way (docs/ARCHITECTURE.md,
//! "Layers"): a module may use only modules of lower layers. This reads the
//! sources and fails on any `crate::` path that points up or sideways, so an
//! import cycle cannot come back unnoticed.

use std::collections::BTreeMap;
use std::path::Path;

/// Top-level modules of `broker/src`, lowest layer first. Modules on one
/// line share a layer and must not use each other.
const LAYERS: &[&[&str]] = &[
    &["security", "log_dirs", "runtime_timers"],
    &[
        "config",
        "limits",
        "error",
        "router",
        "metrics",
        "request_room",
    ],
    &["producer_state", "metadata", "refusals"],
    &["partition"],
    &["errors"],
    &["shard"],
    &["group"],
    &["core"],
    &["inter_broker"],
    &["membership", "replica_fetcher", "admin"],
    &["api"],
    &["protocol"],
    &["fuzzing"],
    &["transport"],
    &["tls_transport"],
    &["connection"],
    &["server"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The top-level module a file under src/ belongs to (None: lib.rs, main.rs).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    let module = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(module, "lib" | "main")).then(|| module.to_string())
}

fn rust_files(dir: &Path, into: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// Every `crate::<module>` named in the text (use lines and inline paths).
fn used_modules(text: &str) -> Vec<String> {
    let mut used = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            used.push(name);
        }
        // `use crate::{a, b}` names several modules at once.
        if let Some(group) = rest.strip_prefix('{') {
            let group: String = group.chars().take_while(|c| *c != '}').collect();
            used.extend(
                group
                    .split(',')
                    .filter_map(|item| item.trim().split("::").next().map(str::to_string))
                    .filter(|name| !name.is_empty()),
            );
        }
    }
    used
}

#[test]
fn broker_modules_only_use_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let Some(layer) = layer_of(&module) else {
            wrong
                .entry(module.clone())
                .or_default()
                .push("not in LAYERS: give it a layer here and in ARCHITECTURE.md".into());
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read source");
        for used in used_modules(&text) {
            if used == module {
                continue;
            }
            match layer_of(&used) {
                Some(target) if target < layer => {}
                _ => wrong
                    .entry(format!("{}", file.display()))
                    .or_default()
                    .push(format!("{module} uses crate::{used}")),
            }
        }
    }
    assert!(wrong.is_empty(), "layer violations: {wrong:#?}");
}

#[test]
fn the_checker_sees_upward_and_grouped_uses() {
    assert_eq!(
        used_modules(
            "use crate::api::x;\nuse crate::{core::Core, shard};\nlet a = crate::router::owner_of;"
        ),
        ["api", "core", "shard", "router"]
    );
}
