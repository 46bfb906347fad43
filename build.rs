//! Embeds every `rules/*.yaml` into the binary. The folder is the registry: adding a file adds a
//! rule, with nothing else to edit.

use std::{env, fs, path::Path};

fn main() {
    let rules_dir = Path::new("rules");
    println!("cargo:rerun-if-changed=rules");
    let mut names: Vec<String> = fs::read_dir(rules_dir)
        .expect("the rules/ folder exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    names.sort();
    let mut out = String::from(
        "/// `(file name, contents)` of every rule file.\npub const EMBEDDED_RULES: &[(&str, &str)] = &[\n",
    );
    for name in &names {
        println!("cargo:rerun-if-changed=rules/{name}");
        out.push_str(&format!(
            "    ({name:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/rules/{name}\"))),\n"
        ));
    }
    out.push_str("];\n");
    let dest =
        Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded_rules.rs");
    fs::write(dest, out).expect("OUT_DIR is writable");
    source_id();
}

/// `KUBEWARD_SOURCE_ID`: a digest of everything the engine is built from (sources, rules,
/// locked dependencies), part of the engine id that keys stored views (src/views.rs): a build
/// of other code never reads what this one stored.
fn source_id() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.lock");
    let mut files = Vec::new();
    let mut stack = vec![
        Path::new("src").to_path_buf(),
        Path::new("rules").to_path_buf(),
    ];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.push(Path::new("Cargo.lock").to_path_buf());
    files.sort();
    // FNV-1a, 64 bits: an identity, not a defence (the store checks its packs with SHA-256).
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for path in files {
        let bytes = fs::read(&path).unwrap_or_default();
        for byte in path.to_string_lossy().bytes().chain([0]).chain(bytes) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    println!("cargo:rustc-env=KUBEWARD_SOURCE_ID={hash:016x}");
}
