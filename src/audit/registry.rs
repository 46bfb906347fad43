//! The built-in rules: every file of `rules/`, embedded at build time (see `build.rs`), so the
//! folder is the list and no hand-kept index can forget a rule.

use std::collections::BTreeMap;

use super::rule::{Rule, RuleError};
use crate::yaml::{Limits, parse_stream};

include!(concat!(env!("OUT_DIR"), "/embedded_rules.rs"));

#[derive(Debug, Clone)]
pub struct Registry {
    rules: BTreeMap<String, Rule>,
}

impl Registry {
    /// The rules shipped in `rules/`.
    pub fn builtin() -> Result<Registry, RuleError> {
        let mut rules = BTreeMap::new();
        for (file_name, text) in EMBEDDED_RULES {
            let origin = format!("rules/{file_name}");
            let docs = parse_stream(text, Limits::default());
            let node = match docs.into_iter().next().map(|d| d.root) {
                Some(Ok(node)) => node,
                Some(Err(e)) => {
                    return Err(RuleError {
                        origin,
                        message: format!("line {}: {}", e.mark.line, e.message),
                    });
                }
                None => {
                    return Err(RuleError {
                        origin,
                        message: "empty rule file".into(),
                    });
                }
            };
            let rule = Rule::from_yaml_node(&node, &origin)?;
            let expected = file_name.trim_end_matches(".yaml");
            if rule.id != expected {
                return Err(RuleError {
                    origin,
                    message: format!("id `{}` does not match the file name", rule.id),
                });
            }
            rules.insert(rule.id.clone(), rule);
        }
        Ok(Registry { rules })
    }

    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.get(id)
    }

    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.values()
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.rules.keys().map(String::as_str)
    }

    /// Adds a rule from configuration (a custom check). Its ID must be new.
    pub fn add(&mut self, rule: Rule) -> Result<(), String> {
        if self.rules.contains_key(&rule.id) {
            return Err(format!("a rule named `{}` already exists", rule.id));
        }
        self.rules.insert(rule.id.clone(), rule);
        Ok(())
    }

    /// The rule whose kube-linter or kube-score name is `name`.
    pub fn by_alias(&self, name: &str) -> impl Iterator<Item = &Rule> {
        self.rules.values().filter(move |r| {
            r.aliases.kube_linter.iter().any(|a| a == name)
                || r.aliases.kube_score.iter().any(|a| a == name)
        })
    }
}
