//! Polaris-format custom checks (`customChecks:`), turned into rules.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value as Json;

use crate::audit::rule::{Aliases, Check, ContainerFilter, KindFilter};
use crate::audit::schema::{SchemaCheck, parse_schema_string};
use crate::audit::{Category, Rule, Severity, Target};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CustomCheckSpec {
    #[serde(default)]
    pub success_message: Option<String>,
    #[serde(default)]
    pub failure_message: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    pub target: String,
    #[serde(default)]
    pub schema_target: Option<String>,
    #[serde(default)]
    pub controllers: KindFilter,
    #[serde(default)]
    pub containers: ContainerFilter,
    #[serde(default)]
    pub schema: Option<serde_json::Value>,
    #[serde(default)]
    pub schema_string: Option<String>,
    #[serde(default)]
    pub json_schema: Option<String>,
    #[serde(default)]
    pub additional_schemas: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub additional_schema_strings: BTreeMap<String, String>,
    /// Polaris's fix mutations: accepted, not applied.
    #[serde(default)]
    #[allow(dead_code)]
    pub mutations: Vec<serde_json::Value>,
    // kubeward's additions.
    #[serde(default)]
    pub severity: Option<Severity>,
    #[serde(default)]
    pub why: Option<String>,
    #[serde(default)]
    pub fix: Option<String>,
}

fn category(text: Option<&str>) -> Category {
    match text.map(str::to_ascii_lowercase).as_deref() {
        Some("security") => Category::Security,
        Some("efficiency") | Some("resources") => Category::Efficiency,
        _ => Category::Reliability,
    }
}

impl CustomCheckSpec {
    /// `origin` is where the check is defined (`file:line`), named by a check that cannot finish.
    pub fn to_rule(&self, id: &str, origin: &str) -> Result<Rule, String> {
        let schema: Json = match (&self.schema, &self.schema_string, &self.json_schema) {
            (Some(s), None, None) => s.clone(),
            (None, Some(text), None) => parse_schema_string(text).map_err(|e| e.to_string())?,
            (None, None, Some(text)) => {
                serde_json::from_str(text).map_err(|e| format!("jsonSchema is not JSON: {e}"))?
            }
            (None, None, None) => {
                return Err("needs one of `schema`, `schemaString` or `jsonSchema`".into());
            }
            _ => return Err("give only one of `schema`, `schemaString` or `jsonSchema`".into()),
        };
        let mut additional: Vec<(String, Json)> = self
            .additional_schemas
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (kind, text) in &self.additional_schema_strings {
            additional.push((
                kind.clone(),
                parse_schema_string(text).map_err(|e| e.to_string())?,
            ));
        }
        let (target, kinds) = match self.target.as_str() {
            "Container" => (Target::Container, Vec::new()),
            "PodSpec" => (Target::PodSpec, Vec::new()),
            "PodTemplate" => (Target::PodTemplate, Vec::new()),
            "Controller" => (Target::Controller, Vec::new()),
            // Polaris matches `group/Kind` targets by kind alone; so do we, for compatibility.
            kind => (
                Target::Object,
                vec![kind.rsplit('/').next().unwrap_or(kind).to_owned()],
            ),
        };
        let pod_spec_target = match self.schema_target.as_deref() {
            None | Some("") => false,
            Some("PodSpec") if target == Target::Container => true,
            Some(other) => {
                return Err(format!(
                    "schemaTarget `{other}` is not supported with target `{}`",
                    self.target
                ));
            }
        };
        let check = SchemaCheck::new(schema, pod_spec_target, additional, origin.to_owned())
            .map_err(|e| e.to_string())?;
        let message = self
            .failure_message
            .clone()
            .unwrap_or_else(|| format!("{id} failed"));
        Ok(Rule {
            id: id.to_owned(),
            title: message.clone(),
            category: category(self.category.as_deref()),
            default_severity: self.severity.unwrap_or(Severity::Warning),
            enabled_by_default: true,
            target,
            kinds,
            controllers: self.controllers.clone(),
            containers: self.containers.clone(),
            message: message.into(),
            why: self.why.clone().unwrap_or_default(),
            fix: self
                .fix
                .clone()
                .or_else(|| self.success_message.clone())
                .unwrap_or_default(),
            polaris: false,
            aliases: Aliases::default(),
            check: Check::Schema(Box::new(check)),
            autofix: Vec::new(),
            origin: origin.to_owned(),
        })
    }
}
