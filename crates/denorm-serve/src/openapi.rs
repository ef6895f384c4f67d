//! `GET /`: an OpenAPI 3 document of the served views, as PostgREST serves
//! one at its root: a path per view with its query parameters (one filter
//! parameter per column) and responses, a schema per view.

use denorm_types::ScalarType;
use serde_json::{json, Map, Value as Json_};

use crate::state::Published;

fn schema_of(ty: ScalarType) -> Json_ {
    match ty {
        ScalarType::Int => json!({"type": "integer", "format": "int64"}),
        ScalarType::Float => json!({"type": "number", "format": "double"}),
        ScalarType::Numeric => json!({"type": "number"}),
        ScalarType::Bool => json!({"type": "boolean"}),
        ScalarType::Text => json!({"type": "string"}),
        ScalarType::Date => json!({"type": "string", "format": "date"}),
        ScalarType::Timestamp | ScalarType::TimestampTz => json!({"type": "string", "format": "date-time"}),
        ScalarType::Uuid => json!({"type": "string", "format": "uuid"}),
        // JSON, untyped SQLite columns: any value.
        _ => json!({}),
    }
}

fn parameter(name: &str, location: &str, description: &str) -> Json_ {
    json!({"name": name, "in": location, "required": false, "schema": {"type": "string"}, "description": description})
}

/// The OpenAPI 3.0 document of `published`'s views.
pub fn document(published: &Published) -> Json_ {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for view in published.views.iter() {
        let info = &view.info;
        let properties: Map<String, Json_> = info.columns.iter().map(|c| (c.name.clone(), schema_of(c.ty))).collect();
        let key: Vec<&str> = info.key.iter().map(|&k| info.columns[k].name.as_str()).collect();
        schemas.insert(info.name.clone(), json!({"type": "object", "properties": properties, "x-key": key}));
        let mut parameters = vec![
            parameter("select", "query", "columns: *, col, alias:col, col::type, data->key->>sub"),
            parameter("order", "query", "col.asc|desc[.nullsfirst|nullslast], …"),
            parameter("limit", "query", "at most this many rows"),
            parameter("offset", "query", "skip this many rows"),
            parameter("or", "query", "(filter,filter,and(…)) — one must hold"),
            parameter("and", "query", "(filter,filter,or(…)) — all must hold"),
            parameter("Range", "header", "first-last rows, from 0"),
            parameter("Prefer", "header", "count=exact|planned|estimated"),
            parameter("Denorm-Min-Position", "header", "answer once the view reflects this source position"),
            parameter("Denorm-Timeout", "header", "wait for Denorm-Min-Position at most this long (500ms, 2s, 0.5)"),
        ];
        parameters.extend(info.columns.iter().map(|c| {
            parameter(&c.name, "query", "[not.]op.value with op eq neq gt gte lt lte like ilike match imatch in is isdistinct fts plfts phfts wfts cs cd ov")
        }));
        let reference = json!({"$ref": format!("#/components/schemas/{}", info.name)});
        let error = json!({"description": "an error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
        let rows = json!({
            "application/json": {"schema": {"type": "array", "items": reference}},
            "application/vnd.pgrst.object+json": {"schema": reference},
            "text/csv": {"schema": {"type": "string"}},
        });
        paths.insert(
            format!("/views/{}", info.name),
            json!({"get": {
                "summary": format!("rows of view {}", info.name),
                "parameters": parameters,
                "responses": {
                    "200": {"description": "the rows", "content": rows.clone()},
                    "206": {"description": "part of the counted rows", "content": rows},
                    "400": error, "404": error, "406": error, "416": error, "503": error, "504": error,
                },
            }}),
        );
    }
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "properties": {
            "code": {"type": "string"}, "message": {"type": "string"},
            "details": {"type": "string", "nullable": true}, "hint": {"type": "string", "nullable": true},
        }}),
    );
    for (path, summary) in [
        ("/views", "every view with its columns, freshness and status"),
        ("/health", "the source and the views' health"),
        ("/metrics", "Prometheus metrics"),
    ] {
        paths.insert(path.into(), json!({"get": {"summary": summary, "responses": {"200": {"description": summary}}}}));
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "denorm", "version": env!("CARGO_PKG_VERSION"), "description": "read-only PostgREST-style API over denorm's incrementally maintained views"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}
