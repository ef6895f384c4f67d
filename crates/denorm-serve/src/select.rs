//! The `select` list (PostgREST's vertical filtering): `*`, columns,
//! `alias:column`, casts `column::type` and JSON paths `data->a->>b`, and
//! rendering the selected rows as JSON or CSV.
//!
//! A JSON path item is named by its last key unless aliased (as PostgREST
//! does); `->` gives the JSON value, `->>` its text; a path that does not
//! exist, or a column whose text is not JSON, gives NULL. Casts follow
//! PostgreSQL: `text`; `int`/`integer`/`bigint`/`smallint` (doubles round
//! half to even, text must read as an integer); `float`/`double
//! precision`/`real`/`numeric` (as a double); `bool`/`boolean` (`t`,
//! `true`, `yes`, `on`, `1`, … and numbers non-zero); `json`/`jsonb`. A
//! value that does not convert is a 400 naming the column.

use denorm_types::{Datum, ScalarType, Value};
use serde_json::Value as Json;

use crate::json::write_cell;
use crate::query::{column, parse_path, split_top_level, BadParameter, JsonPath, Query};
use crate::state::ViewInfo;

/// One item of the `select` list.
#[derive(Debug, Clone, PartialEq)]
pub struct SelectItem {
    pub column: usize,
    pub path: JsonPath,
    pub cast: Option<Cast>,
    /// `alias:…`; without one the output is named by [`SelectItem::name`].
    pub alias: Option<String>,
}

impl SelectItem {
    /// A plain column, named as in the view.
    pub fn column(column: usize) -> SelectItem {
        SelectItem { column, path: JsonPath::default(), cast: None, alias: None }
    }

    /// The output name: the alias, the path's last key, or the column's name.
    pub fn name<'v>(&'v self, view: &'v ViewInfo) -> &'v str {
        match (&self.alias, self.path.steps.last()) {
            (Some(alias), _) => alias,
            (None, Some(last)) => last,
            (None, None) => &view.columns[self.column].name,
        }
    }
}

/// A `::type` cast of a selected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cast {
    Text,
    Int,
    Float,
    Bool,
    Json,
}

impl Cast {
    fn parse(name: &str) -> Option<Cast> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "text" | "varchar" | "character varying" => Cast::Text,
            "int" | "integer" | "bigint" | "smallint" | "int2" | "int4" | "int8" => Cast::Int,
            "float" | "float4" | "float8" | "real" | "double precision" | "numeric" | "decimal" => Cast::Float,
            "bool" | "boolean" => Cast::Bool,
            "json" | "jsonb" => Cast::Json,
            _ => return None,
        })
    }

    fn ty(self) -> ScalarType {
        match self {
            Cast::Text => ScalarType::Text,
            Cast::Int => ScalarType::Int,
            Cast::Float => ScalarType::Float,
            Cast::Bool => ScalarType::Bool,
            Cast::Json => ScalarType::Json,
        }
    }
}

const SELECT_HINT: &str = "write select=*, select=col,alias:col,col::text,data->key->>sub";

/// Parses `select=…` into its items in order (`*` expands to every column).
pub fn parse_select(view: &ViewInfo, value: &str) -> Result<Vec<SelectItem>, BadParameter> {
    let mut items = vec![];
    for raw in split_top_level(value) {
        let raw = raw.trim();
        if raw == "*" {
            items.extend((0..view.columns.len()).map(SelectItem::column));
            continue;
        }
        // The common item, a bare column name.
        if let Some(c) = view.column_index(raw) {
            items.push(SelectItem::column(c));
            continue;
        }
        if raw.contains("()") {
            return Err(BadParameter::new(
                "select",
                format!("\"{raw}\": aggregate functions in select are not supported"),
            )
            .hint("define a view that aggregates (GROUP BY) and read it"));
        }
        if raw.contains('(') || raw.starts_with("...") {
            return Err(BadParameter::new(
                "select",
                format!("\"{raw}\" embeds a related resource; denorm views have no relationships"),
            )
            .hint("select the view's own columns; define a view that joins what you need"));
        }
        items.push(parse_item(view, raw)?);
    }
    Ok(items)
}

fn parse_item(view: &ViewInfo, raw: &str) -> Result<SelectItem, BadParameter> {
    // `alias:expr`, where `::` is a cast and not an alias.
    let alias_end = raw
        .char_indices()
        .find(|&(i, c)| c == ':' && !raw[i + 1..].starts_with(':') && (i == 0 || !raw[..i].ends_with(':')));
    let (alias, expr) = match alias_end {
        Some((i, _)) => (Some(raw[..i].trim()), raw[i + 1..].trim()),
        None => (None, raw),
    };
    let (expr, cast) = match expr.split_once("::") {
        Some((expr, cast)) => {
            let parsed = Cast::parse(cast).ok_or_else(|| {
                BadParameter::new("select", format!("cannot cast to \"{cast}\""))
                    .hint("casts: text, int, bigint, float, double precision, numeric, bool, json, jsonb")
            })?;
            (expr.trim(), Some(parsed))
        }
        None => (expr, None),
    };
    let (name, path) = parse_path(expr);
    if name.is_empty() {
        return Err(BadParameter::new("select", format!("empty column in \"{raw}\"")).hint(SELECT_HINT));
    }
    let column = column(view, "select", name.trim(), "select")?;
    let alias = alias.filter(|a| !a.is_empty()).map(str::to_owned);
    Ok(SelectItem { column, path, cast, alias })
}

/// A JSON scalar as a datum (objects and arrays as their JSON text).
pub fn json_datum(json: &Json) -> Value {
    match json {
        Json::Null => Datum::Null,
        Json::Bool(b) => Datum::Bool(*b),
        Json::Number(n) => n.as_i64().map(Datum::Int).unwrap_or_else(|| Datum::Float(n.as_f64().unwrap_or(f64::NAN))),
        Json::String(s) => Datum::owned_text(s.clone()),
        other => Datum::owned_text(other.to_string()),
    }
}

/// The JSON value at `steps` in a datum holding JSON text.
fn walk(datum: &Datum<'_>, steps: &[String]) -> Option<Json> {
    let Datum::Text(text) = datum else { return None };
    let mut json: Json = serde_json::from_str(text).ok()?;
    for step in steps {
        json = match json {
            Json::Object(mut map) => map.remove(step)?,
            Json::Array(mut items) => {
                let index = step.parse::<i64>().ok()?;
                let index =
                    if index < 0 { items.len().checked_sub(index.unsigned_abs() as usize)? } else { index as usize };
                (index < items.len()).then(|| items.swap_remove(index))?
            }
            _ => return None,
        };
    }
    Some(json)
}

/// The value of `path` in `datum` as a filter compares it: `->>` text,
/// `->` the JSON scalar (objects and arrays as JSON text).
pub fn extract(datum: &Datum<'_>, path: &JsonPath) -> Value {
    match walk(datum, &path.steps) {
        None | Some(Json::Null) => Datum::Null,
        Some(Json::String(s)) => Datum::owned_text(s),
        Some(json) if path.text => Datum::owned_text(json.to_string()),
        Some(json) => json_datum(&json),
    }
}

/// One selected value and its output type.
fn project_item(item: &SelectItem, view: &ViewInfo, datums: &[Datum<'_>]) -> Result<(Value, ScalarType), String> {
    let datum = &datums[item.column];
    let (value, ty) = if item.path.steps.is_empty() {
        (datum.clone().into_owned(), view.columns[item.column].ty)
    } else {
        match walk(datum, &item.path.steps) {
            None | Some(Json::Null) if item.path.text => (Datum::Null, ScalarType::Text),
            Some(Json::String(s)) if item.path.text => (Datum::owned_text(s), ScalarType::Text),
            Some(json) if item.path.text => (Datum::owned_text(json.to_string()), ScalarType::Text),
            None => (Datum::Null, ScalarType::Json),
            // A cast converts the JSON scalar itself (`(data->'n')::int`).
            Some(json) if item.cast.is_some() && !json.is_object() && !json.is_array() => {
                (json_datum(&json), ScalarType::Any)
            }
            Some(json) => (Datum::owned_text(json.to_string()), ScalarType::Json),
        }
    };
    match item.cast {
        None => Ok((value, ty)),
        Some(cast) => {
            cast_value(value, ty, cast).map(|v| (v, cast.ty())).map_err(|e| format!("\"{}\": {e}", item.name(view)))
        }
    }
}

fn cast_value(value: Value, from: ScalarType, cast: Cast) -> Result<Value, String> {
    let invalid = |what: &str| {
        format!("invalid input syntax for type {what}: \"{}\"", crate::ops::text_of(&value).unwrap_or_default())
    };
    Ok(match (cast, &value) {
        (_, Datum::Null) => Datum::Null,
        (Cast::Text, Datum::Text(_)) => value,
        (Cast::Text, _) if from == ScalarType::Json => value,
        (Cast::Text, v) => Datum::owned_text(text_value(v)),
        (Cast::Int, Datum::Int(_)) => value,
        (Cast::Int, Datum::Float(x)) if x.is_finite() && x.abs() < 9.2e18 => Datum::Int(x.round_ties_even() as i64),
        (Cast::Int, Datum::Bool(b)) => Datum::Int(i64::from(*b)),
        (Cast::Int, Datum::Text(t)) => Datum::Int(t.trim().parse().map_err(|_| invalid("integer"))?),
        (Cast::Float, Datum::Int(i)) => Datum::Float(*i as f64),
        (Cast::Float, Datum::Float(_)) => value,
        (Cast::Float, Datum::Text(t)) => Datum::Float(t.trim().parse().map_err(|_| invalid("double precision"))?),
        (Cast::Float, v @ Datum::Numeric(_)) => {
            Datum::Float(v.pg_text().and_then(|t| t.parse().ok()).ok_or_else(|| invalid("double precision"))?)
        }
        (Cast::Bool, Datum::Bool(_)) => value,
        (Cast::Bool, Datum::Int(i)) => Datum::Bool(*i != 0),
        (Cast::Bool, Datum::Text(t)) => Datum::Bool(parse_bool(t).ok_or_else(|| invalid("boolean"))?),
        (Cast::Json, Datum::Text(t)) if from == ScalarType::Json => Datum::owned_text(t.to_string()),
        (Cast::Json, Datum::Text(t)) => {
            serde_json::from_str::<Json>(t).map_err(|_| invalid("json"))?;
            Datum::owned_text(t.to_string())
        }
        (Cast::Json, v) => {
            let mut out = vec![];
            crate::json::write_datum(&mut out, v);
            Datum::owned_text(String::from_utf8_lossy(&out).into_owned())
        }
        (cast, _) => return Err(format!("cannot cast {from} to {}", cast.ty())),
    })
}

fn text_value(v: &Datum<'_>) -> String {
    match v {
        Datum::Float(x) => {
            let mut out = String::new();
            denorm_types::json::write_float(&mut out, *x, denorm_types::Dialect::Postgres);
            out.trim_matches('"').to_owned()
        }
        other => crate::ops::text_of(other).unwrap_or_default(),
    }
}

/// PostgreSQL's boolean input: a unique prefix of true/false/yes/no, on/off, 1/0.
fn parse_bool(text: &str) -> Option<bool> {
    let t = text.trim().to_ascii_lowercase();
    let prefix_of = |word: &str| !t.is_empty() && word.starts_with(t.as_str());
    match t.as_str() {
        "1" | "on" => Some(true),
        "0" | "of" | "off" => Some(false),
        _ if prefix_of("true") || prefix_of("yes") => Some(true),
        _ if prefix_of("false") || prefix_of("no") => Some(false),
        _ => None,
    }
}

/// The media types a read can be answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json`: an array of objects.
    Json,
    /// `application/vnd.pgrst.object+json`: the single row as an object.
    Object,
    /// `text/csv`: a header line and one line per row.
    Csv,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json; charset=utf-8",
            Format::Object => "application/vnd.pgrst.object+json; charset=utf-8",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// Projected rows with the output columns' types and names.
type Projected = (Vec<Vec<Value>>, Vec<ScalarType>, Vec<String>);

/// The output rows of `query` for `rows` (the page), projected, as
/// `(values, types, names)`.
fn projected<'r, 'a: 'r>(
    view: &ViewInfo,
    query: &Query,
    rows: impl Iterator<Item = &'r [Datum<'a>]>,
) -> Result<Projected, String> {
    let items: Vec<SelectItem> = match (&query.projection, &query.select) {
        (Some(items), _) => items.clone(),
        (None, select) => {
            let columns: Vec<usize> = select.clone().unwrap_or_else(|| (0..view.columns.len()).collect());
            columns.into_iter().map(SelectItem::column).collect()
        }
    };
    let mut types: Vec<ScalarType> = items.iter().map(|i| i.cast.map_or(view.columns[i.column].ty, Cast::ty)).collect();
    let mut out = vec![];
    for row in rows {
        let mut values = Vec::with_capacity(items.len());
        for (j, item) in items.iter().enumerate() {
            let (value, ty) = project_item(item, view, row)?;
            types[j] = ty;
            values.push(value);
        }
        out.push(values);
    }
    for (j, item) in items.iter().enumerate() {
        if !item.path.steps.is_empty() && item.cast.is_none() {
            types[j] = if item.path.text { ScalarType::Text } else { ScalarType::Json };
        }
    }
    Ok((out, types, items.iter().map(|i| i.name(view).to_owned()).collect()))
}

/// Whether `query` selects plain columns only (rendered without copying).
pub fn is_plain(query: &Query) -> bool {
    query.projection.as_ref().is_none_or(|items| items.iter().all(|i| i.path.steps.is_empty() && i.cast.is_none()))
}

/// Renders the page `rows` of `query` over `view` in `format`. A cast
/// that fails is an error naming the item.
pub fn render<'r, 'a: 'r>(
    view: &ViewInfo,
    query: &Query,
    rows: impl Iterator<Item = &'r [Datum<'a>]>,
    format: Format,
    strip_nulls: bool,
) -> Result<Vec<u8>, String> {
    if format == Format::Json && !strip_nulls && is_plain(query) {
        let columns: Vec<(usize, &str, ScalarType)> = match &query.projection {
            Some(items) => items.iter().map(|i| (i.column, i.name(view), view.columns[i.column].ty)).collect(),
            None => crate::fallback::output_columns(view, query),
        };
        return Ok(crate::json::render_rows(&columns, rows));
    }
    let (values, types, names) = projected(view, query, rows)?;
    let columns: Vec<(usize, &str, ScalarType)> =
        names.iter().enumerate().map(|(i, n)| (i, n.as_str(), types[i])).collect();
    Ok(match format {
        Format::Json => render_objects(&columns, &values, strip_nulls),
        Format::Object => {
            let mut array = render_objects(&columns, &values, strip_nulls);
            // `[{…}]` → `{…}`: the caller checked there is exactly one row.
            array.pop();
            array.remove(0);
            array
        }
        Format::Csv => render_csv(&columns, &values),
    })
}

/// A JSON array of objects; with `strip_nulls` (`Accept: …;nulls=stripped`)
/// NULL fields are left out.
fn render_objects(columns: &[(usize, &str, ScalarType)], rows: &[Vec<Value>], strip_nulls: bool) -> Vec<u8> {
    let mut out = vec![b'['];
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        let mut first = true;
        for (j, (_, name, ty)) in columns.iter().enumerate() {
            if strip_nulls && row[j].is_null() {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut out, name).expect("a string");
            out.push(b':');
            write_cell(&mut out, &row[j], *ty);
        }
        out.push(b'}');
    }
    out.push(b']');
    out
}

/// PostgreSQL's CSV: NULL empty, a field quoted when it holds a comma, a
/// quote, a line break or is empty text.
fn render_csv(columns: &[(usize, &str, ScalarType)], rows: &[Vec<Value>]) -> Vec<u8> {
    let mut out = String::new();
    let field = |out: &mut String, text: &str, force: bool| {
        if force || text.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&text.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(text);
        }
    };
    let names: Vec<&str> = columns.iter().map(|c| c.1).collect();
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(&mut out, name, false);
    }
    for row in rows {
        out.push('\n');
        for (i, (_, _, ty)) in columns.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match &row[i] {
                Datum::Null => {}
                Datum::Text(t) => field(&mut out, t, t.is_empty()),
                other => {
                    let mut cell = vec![];
                    write_cell(&mut cell, other, *ty);
                    field(&mut out, String::from_utf8_lossy(&cell).trim_matches('"'), false);
                }
            }
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{decode_pairs, parse_query};
    use crate::state::ColumnInfo;

    fn view() -> ViewInfo {
        let col = |name: &str, ty| ColumnInfo { name: name.into(), ty };
        ViewInfo {
            name: "docs".into(),
            columns: vec![col("id", ScalarType::Int), col("data", ScalarType::Json), col("note", ScalarType::Text)],
            key: vec![0],
            ..Default::default()
        }
    }

    fn render_as(raw: &str, rows: &[Vec<Value>], format: Format) -> Result<String, String> {
        let query = parse_query(&view(), &decode_pairs(raw)).map_err(|e| e.message)?;
        render(&view(), &query, rows.iter().map(Vec::as_slice), format, false).map(|b| String::from_utf8(b).unwrap())
    }

    fn rows() -> Vec<Vec<Value>> {
        vec![vec![Datum::Int(1), Datum::owned_text(r#"{"a":{"b":"x","n":2.5},"l":[1,2]}"#), Datum::text("1,5")]]
    }

    #[test]
    fn select_items() {
        let json = |raw| render_as(raw, &rows(), Format::Json).unwrap();
        assert_eq!(json("select=*"), r#"[{"id":1,"data":{"a":{"b":"x","n":2.5},"l":[1,2]},"note":"1,5"}]"#);
        assert_eq!(json("select=k:id,note"), r#"[{"k":1,"note":"1,5"}]"#);
        assert_eq!(
            json("select=id::text,data->a->>b,x:data->l->1,data->a->n::int"),
            r#"[{"id":"1","b":"x","x":2,"n":2}]"#
        );
        assert_eq!(json("select=data->zz,data->>l"), r#"[{"zz":null,"l":"[1,2]"}]"#);
        assert_eq!(json("select=data->l->-1"), r#"[{"-1":2}]"#);
        assert!(render_as("select=note::int", &rows(), Format::Json).unwrap_err().contains("integer"));
        assert!(render_as("select=id::money", &rows(), Format::Json).unwrap_err().contains("money"));
        assert!(render_as("select=other(*)", &rows(), Format::Json).unwrap_err().contains("relationships"));
        assert!(render_as("select=count()", &rows(), Format::Json).unwrap_err().contains("aggregate"));
        assert!(render_as("order=data->a", &rows(), Format::Json).unwrap_err().contains("JSON path"));
    }

    #[test]
    fn csv_and_object() {
        let csv = render_as("select=id,note,data->a->>b", &rows(), Format::Csv).unwrap();
        assert_eq!(csv, "id,note,b\n1,\"1,5\",x");
        let mut with_null = rows();
        with_null[0][2] = Datum::Null;
        assert_eq!(render_as("select=id,note", &with_null, Format::Csv).unwrap(), "id,note\n1,");
        assert_eq!(render_as("select=id", &rows(), Format::Object).unwrap(), r#"{"id":1}"#);
        let query = parse_query(&view(), &decode_pairs("select=id,note")).unwrap();
        let stripped = render(&view(), &query, with_null.iter().map(Vec::as_slice), Format::Json, true).unwrap();
        assert_eq!(String::from_utf8(stripped).unwrap(), r#"[{"id":1}]"#);
    }

    #[test]
    fn casts_like_postgresql() {
        assert_eq!(cast_value(Datum::Float(2.5), ScalarType::Float, Cast::Int), Ok(Datum::Int(2)));
        assert_eq!(cast_value(Datum::Float(3.5), ScalarType::Float, Cast::Int), Ok(Datum::Int(4)));
        assert_eq!(cast_value(Datum::text(" 7 "), ScalarType::Text, Cast::Int), Ok(Datum::Int(7)));
        assert_eq!(cast_value(Datum::text("yes"), ScalarType::Text, Cast::Bool), Ok(Datum::Bool(true)));
        assert_eq!(cast_value(Datum::text("f"), ScalarType::Text, Cast::Bool), Ok(Datum::Bool(false)));
        assert!(cast_value(Datum::text("maybe"), ScalarType::Text, Cast::Bool).is_err());
        assert_eq!(cast_value(Datum::Float(1.5), ScalarType::Float, Cast::Text), Ok(Datum::text("1.5")));
        assert_eq!(cast_value(Datum::Null, ScalarType::Int, Cast::Text), Ok(Datum::Null));
    }
}
