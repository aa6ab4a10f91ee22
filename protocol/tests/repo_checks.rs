//! Repository checks: every requirement ID the code cites (`R-…`) is defined in
//! SPEC.md, and every known-answer vector file is loaded by some test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::Path;

fn ids(text: &str, defined_only: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("R-") {
        let start = i + pos;
        let mut j = start + 2;
        while j < bytes.len() && bytes[j].is_ascii_uppercase() {
            j += 1;
        }
        let mut k = j + 1;
        while k < bytes.len() && bytes[k].is_ascii_digit() {
            k += 1;
        }
        let id_ok = j > start + 2 && j < bytes.len() && bytes[j] == b'-' && k > j + 1;
        let boundary = start == 0 || !bytes[start - 1].is_ascii_alphanumeric();
        if id_ok && boundary {
            let id = &text[start..k];
            let bold = start >= 2 && text[..start].ends_with("**") && text[k..].starts_with("**");
            if !defined_only || bold {
                out.insert(id.to_owned());
            }
        }
        i = start + 2;
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_cited_requirement_is_defined_in_spec() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let spec = std::fs::read_to_string(root.join("SPEC.md")).unwrap();
    let defined = ids(&spec, true);
    assert!(
        defined.len() > 50,
        "SPEC.md defines only {} IDs",
        defined.len()
    );
    let mut files = Vec::new();
    for krate in ["protocol/src", "server/src", "client-lib/src"] {
        rust_files(&root.join(krate), &mut files);
    }
    assert!(!files.is_empty());
    let mut missing = BTreeSet::new();
    for f in &files {
        for id in ids(&std::fs::read_to_string(f).unwrap(), false) {
            if !defined.contains(&id) {
                missing.insert(format!(
                    "{id} ({})",
                    f.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "cited but not defined in SPEC.md: {missing:?}"
    );
}

#[test]
fn the_scanner_finds_definitions_and_citations() {
    assert_eq!(
        ids("**R-LOG-1** x // SPEC R-TOKEN-12, not XR-A-1", false),
        ["R-LOG-1", "R-TOKEN-12"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert_eq!(
        ids("**R-LOG-1** and R-LOG-2", true),
        ["R-LOG-1"].iter().map(|s| s.to_string()).collect()
    );
}

#[test]
fn every_vector_file_is_loaded_by_a_test() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut sources = String::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("repo_checks.rs") {
            sources.push_str(&std::fs::read_to_string(&p).unwrap());
        }
    }
    let mut unused = Vec::new();
    let mut count = 0;
    for e in std::fs::read_dir(dir.join("vectors")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".json") {
            continue;
        }
        assert!(
            !name.ends_with("-new.json"),
            "{name}: review and rename generator output"
        );
        count += 1;
        // Loaded by full name, or by stem through a `load("stem")`-style helper.
        let stem = name.trim_end_matches(".json");
        if !sources.contains(&name) && !sources.contains(&format!("\"{stem}\"")) {
            unused.push(name);
        }
    }
    assert!(count > 10);
    assert!(unused.is_empty(), "vector files no test loads: {unused:?}");
}

/// Every `SPEC §N` the code cites names a numbered section of SPEC.md
/// (`## N. …`), never a name (`SPEC §audit`) a reader cannot look up.
#[test]
fn every_cited_spec_section_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let spec = std::fs::read_to_string(root.join("SPEC.md")).unwrap();
    let sections: BTreeSet<String> = spec
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter_map(|l| l.split_once(". "))
        .map(|(n, _)| n.to_owned())
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    assert!(
        sections.contains("8") && sections.contains("16"),
        "{sections:?}"
    );
    let mut files = Vec::new();
    for krate in ["protocol", "server", "client-lib", "tests"] {
        rust_files(&root.join(krate), &mut files);
    }
    let mut bad = BTreeSet::new();
    for f in files.iter().filter(|f| !f.ends_with("repo_checks.rs")) {
        let text = std::fs::read_to_string(f).unwrap();
        let mut rest = text.as_str();
        while let Some(pos) = rest.find("SPEC §") {
            rest = &rest[pos + "SPEC §".len()..];
            let cited: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if !sections.contains(&cited) {
                bad.insert(format!(
                    "SPEC §{cited} ({})",
                    f.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    assert!(bad.is_empty(), "cited sections not in SPEC.md: {bad:?}");
}
