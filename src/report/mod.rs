//! Renderers for audit results: text for people, JSON for scripts, SARIF for code scanning,
//! and the ownership report.
//! Leaf modules: they format, they decide nothing.

pub mod chart;
pub mod ownership;
mod sarif;

use serde::Serialize;

use crate::audit::{AuditResult, Finding, Severity, Stats};
use crate::source::InputError;

pub use sarif::{sarif_report, uri_of, write_sarif_report};

/// The version of the JSON output schema (`docs/json-output.md`).
pub const JSON_SCHEMA_VERSION: &str = "1";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonReport<'a> {
    schema_version: &'static str,
    tool: Tool,
    findings: &'a [Finding],
    errors: &'a [InputError],
    stats: &'a Stats,
}

#[derive(Serialize)]
struct Tool {
    name: &'static str,
    version: &'static str,
}

/// The JSON report as a string (tests, small outputs); [`write_json_report`] streams it.
pub fn json_report(result: &AuditResult, errors: &[InputError]) -> String {
    to_string(|out| write_json_report(out, result, errors))
}

/// Writes the JSON report to `out` as it is serialized: no copy of the whole document is held.
pub fn write_json_report(
    out: &mut dyn std::io::Write,
    result: &AuditResult,
    errors: &[InputError],
) -> std::io::Result<()> {
    use std::io::Write;
    let report = |findings| JsonReport {
        schema_version: JSON_SCHEMA_VERSION,
        tool: Tool {
            name: "kubeward",
            version: env!("CARGO_PKG_VERSION"),
        },
        findings,
        errors,
        stats: &result.stats,
    };
    // The report without its findings, which are spliced in where its empty list is: they
    // are most of the report, and are serialized in parallel, a window of them at a time.
    let skeleton = serde_json::to_vec_pretty(&report(&[])).map_err(std::io::Error::other)?;
    let marker: &[u8] = b"\n  \"findings\": []";
    let list = skeleton
        .windows(marker.len())
        .position(|w| w == marker)
        .map(|at| at + marker.len() - 2)
        .ok_or_else(|| std::io::Error::other("the report has no findings list"))?;
    // serde_json writes a value in many small pieces: buffered here, not through `dyn Write`.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    out.write_all(&skeleton[..list])?;
    write_json_findings(&mut out, &result.findings)?;
    out.write_all(&skeleton[list + 2..])?;
    out.flush()
}

/// `findings` as the pretty JSON list of a report's top-level `findings` key (items at
/// indentation level 2), byte for byte what `serde_json::to_writer_pretty` writes there.
fn write_json_findings(out: &mut impl std::io::Write, findings: &[Finding]) -> std::io::Result<()> {
    use rayon::prelude::*;
    const CHUNK: usize = 1024;
    const WINDOW: usize = 16 * CHUNK;
    if findings.is_empty() {
        return out.write_all(b"[]");
    }
    out.write_all(b"[\n")?;
    for (w, window) in findings.chunks(WINDOW).enumerate() {
        let parts: Vec<Result<Vec<u8>, serde_json::Error>> = window
            .par_chunks(CHUNK)
            .enumerate()
            .map(|(c, chunk)| {
                let mut part = Vec::with_capacity(chunk.len() * 768);
                let mut one = Vec::with_capacity(1024);
                for (i, finding) in chunk.iter().enumerate() {
                    if w + c + i > 0 {
                        part.extend_from_slice(b",\n");
                    }
                    one.clear();
                    serde_json::to_writer_pretty(&mut one, finding)?;
                    // Strings are escaped: every raw newline is the printer's, before an indent.
                    part.extend_from_slice(b"    ");
                    for line in one.split_inclusive(|&b| b == b'\n') {
                        part.extend_from_slice(line);
                        if line.ends_with(b"\n") {
                            part.extend_from_slice(b"    ");
                        }
                    }
                }
                Ok(part)
            })
            .collect();
        for part in parts {
            out.write_all(&part.map_err(std::io::Error::other)?)?;
        }
    }
    out.write_all(b"\n  ]")
}

/// What a report writer writes, as a string: the renderers write UTF-8 only.
pub(crate) fn to_string(
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> String {
    let mut bytes = Vec::new();
    // Writing to memory fails only on a serializer error, which these types never raise.
    let _ = write(&mut bytes);
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

struct Palette {
    on: bool,
}

impl Palette {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// `path:line:col severity ruleId message`, grouped by file, then a summary line.
pub fn text_report(result: &AuditResult, errors: &[InputError], color: bool) -> String {
    to_string(|out| write_text_report(out, result, errors, color))
}

/// [`text_report`], written to `out` finding by finding.
pub fn write_text_report(
    out: &mut dyn std::io::Write,
    result: &AuditResult,
    errors: &[InputError],
    color: bool,
) -> std::io::Result<()> {
    let p = Palette { on: color };
    // Whether anything was written yet: the summary is set apart from it by a blank line.
    let mut written = false;
    let mut current: Option<&str> = None;
    for f in &result.findings {
        if current != Some(f.path.as_str()) {
            if current.is_some() {
                writeln!(out)?;
            }
            writeln!(out, "{}", p.paint("1", &f.path))?;
            written = true;
            current = Some(&f.path);
        }
        let severity = match f.severity {
            Severity::Danger => p.paint("31", "danger"),
            Severity::Warning => p.paint("33", "warning"),
            Severity::Ignore => "ignore".to_owned(),
        };
        let mut subject = match (&f.object, &f.container) {
            (Some(o), Some(c)) if !c.is_empty() => format!(" ({}, container {c})", o.display()),
            (Some(o), _) => format!(" ({})", o.display()),
            _ => String::new(),
        };
        if !f.targets.is_empty() {
            subject.push_str(&format!(" [in {}]", f.targets.join(", ")));
        }
        writeln!(
            out,
            "{}:{}:{} {severity} {} {}{}",
            f.path,
            f.line,
            f.column,
            p.paint("36", &f.rule),
            f.message,
            p.paint("2", &subject)
        )?;
    }
    if !errors.is_empty() {
        if written {
            writeln!(out)?;
        }
        for e in errors {
            writeln!(
                out,
                "{} {}: {}",
                p.paint("33", "warning:"),
                e.path,
                e.message
            )?;
        }
        written = true;
    }
    let s = &result.stats;
    let danger = s.findings.get(&Severity::Danger).copied().unwrap_or(0);
    let warning = s.findings.get(&Severity::Warning).copied().unwrap_or(0);
    let skipped: usize = s.files_skipped.values().sum();
    let skipped_text = if skipped == 0 {
        String::new()
    } else {
        let reasons: Vec<String> = s
            .files_skipped
            .iter()
            .map(|(r, n)| format!("{n} {}", r.describe()))
            .collect();
        format!(", {skipped} skipped ({})", reasons.join(", "))
    };
    let excluded: usize = s.files_excluded.values().sum();
    let excluded_text = if excluded == 0 {
        String::new()
    } else {
        let reasons: Vec<String> = s
            .files_excluded
            .iter()
            .map(|(r, n)| format!("{n} {}", r.describe()))
            .collect();
        format!(", {excluded} not walked ({})", reasons.join(", "))
    };
    let exempted = if s.exempted > 0 {
        format!(", {} exempted", s.exempted)
    } else {
        String::new()
    };
    if written {
        writeln!(out)?;
    }
    writeln!(
        out,
        "{danger} danger, {warning} warning{exempted} in {} object{} from {} file{}{skipped_text}{excluded_text}",
        s.objects,
        if s.objects == 1 { "" } else { "s" },
        s.files_audited,
        if s.files_audited == 1 { "" } else { "s" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ManifestFile;

    /// What serde_json writes for the whole report at once: the streamed report must be it.
    fn at_once(result: &AuditResult, errors: &[InputError]) -> Vec<u8> {
        let report = JsonReport {
            schema_version: JSON_SCHEMA_VERSION,
            tool: Tool {
                name: "kubeward",
                version: env!("CARGO_PKG_VERSION"),
            },
            findings: &result.findings,
            errors,
            stats: &result.stats,
        };
        serde_json::to_vec_pretty(&report).expect("serializes")
    }

    fn streamed(result: &AuditResult, errors: &[InputError]) -> Vec<u8> {
        let mut out = Vec::new();
        write_json_report(&mut out, result, errors).expect("written");
        out
    }

    #[test]
    fn the_json_report_written_in_parallel_windows_is_serde_jsons_byte_for_byte() {
        let registry = crate::audit::Registry::builtin().expect("rules");
        let policy = crate::config::Policy::defaults(&registry);
        let file = ManifestFile::parse(
            "apps/web.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: \"web \\\"ünïcode\\\"\\nline\"\nspec:\n  hostNetwork: true\n  containers:\n  - name: c\n    image: busybox:latest\n",
            policy.yaml_limits,
        );
        let mut result = crate::audit::audit(&[file], &policy);
        let errors = vec![InputError {
            path: "broken.yaml".into(),
            message: "cannot read \"it\"\n".into(),
        }];
        assert!(!result.findings.is_empty());
        assert_eq!(streamed(&result, &errors), at_once(&result, &errors));
        assert_eq!(streamed(&result, &[]), at_once(&result, &[]));
        // More than one window of findings, and none at all.
        let one = result.findings.clone();
        while result.findings.len() < 40_000 {
            result.findings.extend(one.iter().cloned());
        }
        assert_eq!(streamed(&result, &errors), at_once(&result, &errors));
        result.findings.clear();
        assert_eq!(streamed(&result, &errors), at_once(&result, &errors));
    }
}
