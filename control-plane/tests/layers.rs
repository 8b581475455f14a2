//! Keeps the layering that `src/lib.rs` describes true: its module map lists every module,
//! each under one layer, and no module uses one from a layer above its own or takes part in
//! a cycle. Read from the sources, so a new `use crate::…` that breaks the rule fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The module map of `lib.rs`: layer headings (outermost first), each followed by
/// `- [`module`]: …` lines.
fn layers_from_lib_doc() -> Vec<(String, Vec<String>)> {
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut layers: Vec<(String, Vec<String>)> = Vec::new();
    let mut after_blank = false;
    for line in lib.lines().map_while(|line| line.strip_prefix("//!")) {
        let line = line.trim();
        if line.is_empty() {
            after_blank = true;
            continue;
        }
        if let Some(item) = line.strip_prefix("- [`") {
            let module = item.split('`').next().unwrap().to_owned();
            layers
                .last_mut()
                .expect("a module under a layer")
                .1
                .push(module);
        } else if after_blank && !layers.is_empty() || line.starts_with("Entry points") {
            layers.push((line.to_owned(), Vec::new()));
        }
        after_blank = false;
    }
    layers.retain(|(_, modules)| !modules.is_empty());
    layers
}

fn declared_modules() -> BTreeSet<String> {
    fs::read_to_string(src().join("lib.rs"))
        .unwrap()
        .lines()
        .filter_map(|line| line.strip_prefix("pub mod "))
        .map(|name| name.trim_end_matches(';').to_owned())
        .collect()
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// The top-level module each source file belongs to, and the top-level modules it names
/// through `crate::` (comments left out).
fn dependencies(modules: &BTreeSet<String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src()).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_str().unwrap().trim_end_matches(".rs").to_owned();
        if !modules.contains(&module) {
            continue; // lib.rs and main.rs
        }
        let code: String = fs::read_to_string(&file)
            .unwrap()
            .lines()
            .map(|line| line.split("//").next().unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let named = uses.entry(module.clone()).or_default();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let names: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => group[..group.find('}').unwrap()]
                    .split(',')
                    .map(|name| name.trim().split("::").next().unwrap())
                    .collect(),
                None => vec![
                    rest.split(|c: char| !c.is_alphanumeric() && c != '_')
                        .next()
                        .unwrap(),
                ],
            };
            for name in names {
                if modules.contains(name) && name != module {
                    named.insert(name.to_owned());
                }
            }
        }
    }
    uses
}

#[test]
fn the_module_map_lists_every_module_once() {
    let listed: Vec<String> = layers_from_lib_doc()
        .into_iter()
        .flat_map(|(_, modules)| modules)
        .collect();
    let unique: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(
        listed.len(),
        unique.len(),
        "a module is listed twice: {listed:?}"
    );
    assert_eq!(unique, declared_modules());
}

#[test]
fn no_module_uses_a_layer_above_its_own() {
    let layers = layers_from_lib_doc();
    assert_eq!(layers.len(), 5, "{layers:?}");
    let depth: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(depth, (_, modules))| modules.iter().map(move |m| (m.as_str(), depth)))
        .collect();
    let mut breaches = Vec::new();
    for (module, used) in dependencies(&declared_modules()) {
        for dependency in used {
            if depth[dependency.as_str()] < depth[module.as_str()] {
                breaches.push(format!(
                    "{module} ({}) uses {dependency} ({})",
                    layers[depth[module.as_str()]].0,
                    layers[depth[dependency.as_str()]].0
                ));
            }
        }
    }
    assert!(breaches.is_empty(), "{breaches:#?}");
}

#[test]
fn no_module_is_part_of_a_cycle() {
    let uses = dependencies(&declared_modules());
    for start in uses.keys() {
        // Every module reachable from `start`; reaching `start` again is a cycle.
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(start.as_str(), vec![start.as_str()])];
        while let Some((module, path)) = stack.pop() {
            for next in uses.get(module).into_iter().flatten() {
                assert!(next != start, "cycle: {} -> {next}", path.join(" -> "));
                if seen.insert(next.as_str()) {
                    let mut longer = path.clone();
                    longer.push(next);
                    stack.push((next, longer));
                }
            }
        }
    }
}
