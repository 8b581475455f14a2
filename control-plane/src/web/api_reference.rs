//! `GET /api-reference`: the OpenAPI document (`/api/v1/openapi.json`) as a page people
//! read: every operation with its parameters, body and answers, and every schema with its
//! fields. Built from the document itself, so the page cannot drift from what tools read.

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use minijinja::context;
use serde::Serialize;
use serde_json::Value;

use super::render::{Page, anonymous, render};
use super::security::CsrfToken;
use crate::routes::api::OPENAPI;
use crate::state::AppState;

/// One operation: `GET /projects/{id}` and what it takes and answers.
#[derive(Debug, Serialize)]
struct Operation {
    method: String,
    path: String,
    anchor: String,
    summary: String,
    parameters: Vec<Field>,
    body: Option<String>,
    responses: Vec<(String, String)>,
}

/// A parameter or a schema's property.
#[derive(Debug, Serialize)]
struct Field {
    name: String,
    place: String,
    kind: String,
    required: bool,
    description: String,
}

/// A schema and its properties.
#[derive(Debug, Serialize)]
struct Schema {
    name: String,
    description: String,
    fields: Vec<Field>,
}

/// The page.
pub async fn api_reference_page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
) -> Page {
    let document: Value = serde_json::from_str(OPENAPI).expect("the OpenAPI document is JSON");
    render(
        &state,
        StatusCode::OK,
        "api_reference.html",
        &anonymous(&csrf),
        context! {
            description => text(&document["info"]["description"]),
            base => format!("{}/api/v1", state.web.public_url),
            operations => minijinja::Value::from_serialize(operations(&document)),
            schemas => minijinja::Value::from_serialize(schemas(&document)),
        },
    )
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// A schema's type as a reader wants it: `string`, `Project`, `array of DailyStats`,
/// `one of: observe, enforce`.
fn kind(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        return reference.rsplit('/').next().unwrap_or(reference).to_owned();
    }
    if let Some(values) = schema["enum"].as_array() {
        let values: Vec<String> = values
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect();
        return format!("one of: {}", values.join(", "));
    }
    let mut kind = match &schema["type"] {
        Value::String(kind) if kind == "array" => {
            format!("array of {}", self::kind(&schema["items"]))
        }
        Value::String(kind) => kind.clone(),
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".to_owned(),
    };
    if let Some(pattern) = schema["pattern"].as_str() {
        kind.push_str(&format!(" matching {pattern}"));
    }
    kind
}

fn operations(document: &Value) -> Vec<Operation> {
    let mut operations = Vec::new();
    let Some(paths) = document["paths"].as_object() else {
        return operations;
    };
    for (path, item) in paths {
        let shared = item["parameters"].as_array().cloned().unwrap_or_default();
        for method in ["get", "post", "patch", "put", "delete"] {
            let operation = &item[method];
            if operation.is_null() {
                continue;
            }
            let own = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let parameters = shared
                .iter()
                .chain(&own)
                .map(|parameter| Field {
                    name: text(&parameter["name"]),
                    place: text(&parameter["in"]),
                    kind: kind(&parameter["schema"]),
                    required: parameter["required"].as_bool().unwrap_or(false),
                    description: text(&parameter["description"]),
                })
                .collect();
            let body = operation["requestBody"]["content"]["application/json"]["schema"]
                .as_object()
                .map(|schema| kind(&Value::Object(schema.clone())));
            let responses = operation["responses"]
                .as_object()
                .map(|responses| {
                    responses
                        .iter()
                        .map(|(status, response)| {
                            let response = match response["$ref"].as_str() {
                                Some(reference) => {
                                    &document["components"]["responses"]
                                        [reference.rsplit('/').next().unwrap_or_default()]
                                }
                                None => response,
                            };
                            let schema = &response["content"]["application/json"]["schema"];
                            let description = match schema.is_null() {
                                true => text(&response["description"]),
                                false => {
                                    format!("{} ({})", text(&response["description"]), kind(schema))
                                }
                            };
                            (status.clone(), description)
                        })
                        .collect()
                })
                .unwrap_or_default();
            operations.push(Operation {
                method: method.to_uppercase(),
                anchor: text(&operation["operationId"]),
                path: path.clone(),
                summary: text(&operation["summary"]),
                parameters,
                body,
                responses,
            });
        }
    }
    operations
}

fn schemas(document: &Value) -> Vec<Schema> {
    let Some(schemas) = document["components"]["schemas"].as_object() else {
        return Vec::new();
    };
    schemas
        .iter()
        .map(|(name, schema)| {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|names| names.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let fields = schema["properties"]
                .as_object()
                .map(|properties| {
                    properties
                        .iter()
                        .map(|(field, property)| Field {
                            name: field.clone(),
                            place: String::new(),
                            kind: kind(property),
                            required: required.contains(&field.as_str()),
                            description: text(&property["description"]),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Schema {
                name: name.clone(),
                description: text(&schema["description"]),
                fields,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_and_schema_of_the_document_is_on_the_page() {
        let document: Value = serde_json::from_str(OPENAPI).unwrap();
        let operations = operations(&document);
        assert!(operations.iter().any(|op| {
            op.method == "GET"
                && op.path == "/projects/{id}/stats"
                && op
                    .parameters
                    .iter()
                    .any(|p| p.name == "from" && p.place == "query" && !p.required)
        }));
        assert!(
            operations
                .iter()
                .any(|op| op.method == "PATCH" && op.body.as_deref() == Some("ProjectInput"))
        );
        let counted: usize = document["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| {
                ["get", "post", "patch", "put", "delete"]
                    .iter()
                    .filter(|m| !item[**m].is_null())
                    .count()
            })
            .sum();
        assert_eq!(operations.len(), counted);
        let schemas = schemas(&document);
        let usage = schemas
            .iter()
            .find(|schema| schema.name == "Usage")
            .unwrap();
        assert!(
            usage
                .fields
                .iter()
                .any(|field| field.name == "risk_blocked" && field.required)
        );
    }
}
