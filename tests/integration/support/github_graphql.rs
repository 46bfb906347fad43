//! Checks a GraphQL request the bot sends to GitHub against GitHub's published GraphQL schema
//! (`@octokit/graphql-schema`, `schema.graphql`, installed by `scripts/test.sh`): the document
//! parses, validates against the schema (fields, arguments, variable types), selects no
//! deprecated field (GitHub removes them on a date: `databaseId` outgrew 32 bits), holds exactly
//! one operation, and the `variables` coerce to the types the operation declares.

use std::sync::OnceLock;

use apollo_compiler::executable::{Selection, SelectionSet};
use apollo_compiler::response::JsonMap;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};
use serde_json::Value;

use super::npm;

/// The npm package with GitHub's GraphQL schema.
pub const GRAPHQL_SCHEMA: &str = "@octokit/graphql-schema";

fn schema() -> &'static Valid<Schema> {
    static SCHEMA: OnceLock<Valid<Schema>> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = npm::package_file(GRAPHQL_SCHEMA, "schema.graphql");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        match Schema::parse_and_validate(text, "schema.graphql") {
            Ok(schema) => schema,
            // The published schema defines two `EnterpriseOwnerInfo` fields twice, identically.
            // That is the only flaw tolerated; anything else means the file is not the schema.
            Err(e)
                if e.errors
                    .iter()
                    .all(|d| d.error.to_string().contains("duplicate definitions")) =>
            {
                Valid::assume_valid(e.partial)
            }
            Err(e) => panic!("GitHub's GraphQL schema does not load: {}", e.errors),
        }
    })
}

/// Validates the JSON body of a `POST /graphql`.
pub fn validate_request(body: Option<&Value>) -> Result<(), String> {
    let body = body.ok_or("a GraphQL request needs a JSON body")?;
    let query = body["query"]
        .as_str()
        .ok_or("a GraphQL request needs a `query` string")?;
    let document = ExecutableDocument::parse_and_validate(schema(), query, "request.graphql")
        .map_err(|e| format!("the query does not validate against GitHub's schema: {e}"))?;
    let operation = document
        .operations
        .get(body["operationName"].as_str())
        .map_err(|e| format!("no single operation to run: {}", e.message()))?;
    let mut deprecated = Vec::new();
    deprecated_fields(&document, &operation.selection_set, &mut deprecated);
    if !deprecated.is_empty() {
        return Err(format!(
            "deprecated fields selected: {}",
            deprecated.join(", ")
        ));
    }
    let variables: JsonMap = match &body["variables"] {
        Value::Null => JsonMap::new(),
        v => serde_json::from_value(v.clone())
            .map_err(|e| format!("`variables` is not an object: {e}"))?,
    };
    let declared: Vec<&str> = operation
        .variables
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    if let Some(extra) = variables.keys().find(|k| !declared.contains(&k.as_str())) {
        return Err(format!(
            "variable `{}` is not declared by the operation",
            extra.as_str()
        ));
    }
    apollo_compiler::request::coerce_variable_values(schema(), operation, &variables)
        .map_err(|e| format!("the variables do not fit the operation: {}", e.message()))?;
    Ok(())
}

/// `Type.field` for every selected field the schema marks `@deprecated`.
fn deprecated_fields(document: &ExecutableDocument, set: &SelectionSet, out: &mut Vec<String>) {
    for selection in &set.selections {
        match selection {
            Selection::Field(field) => {
                if field.definition.directives.get("deprecated").is_some() {
                    out.push(format!("{}.{}", set.ty, field.name));
                }
                deprecated_fields(document, &field.selection_set, out);
            }
            Selection::InlineFragment(fragment) => {
                deprecated_fields(document, &fragment.selection_set, out)
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.fragment_name) {
                    deprecated_fields(document, &fragment.selection_set, out);
                }
            }
        }
    }
}
