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
}
