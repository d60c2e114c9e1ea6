//! Human tables by default, JSON (`--format json`) for scripts.

use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Prints rows under headers as an aligned table, or the rows as an array
/// of JSON objects keyed by header (numbers stay numbers).
pub fn rows(format: Format, headers: &[&str], rows: &[Vec<Value>]) {
    match format {
        Format::Json => {
            let objects: Vec<Value> = rows
                .iter()
                .map(|row| {
                    Value::Object(
                        headers
                            .iter()
                            .zip(row)
                            .map(|(h, v)| (h.to_string(), v.clone()))
                            .collect(),
                    )
                })
                .collect();
            println!("{}", Value::Array(objects));
        }
        Format::Table => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|row| row.iter().map(text).collect())
                .collect();
            let widths: Vec<usize> = headers
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    cells
                        .iter()
                        .map(|r| r.get(i).map_or(0, |c| c.len()))
                        .chain([h.len()])
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let line = |values: Vec<String>| {
                values
                    .iter()
                    .zip(&widths)
                    .map(|(v, w)| format!("{v:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_string()
            };
            println!(
                "{}",
                line(headers.iter().map(|h| h.to_uppercase()).collect())
            );
            for row in cells {
                println!("{}", line(row));
            }
        }
    }
}

/// One JSON document, or `key: value` lines for humans.
pub fn object(format: Format, value: &Value) {
    match (format, value) {
        (Format::Json, _) => println!("{value}"),
        (Format::Table, Value::Object(map)) => {
            let width = map.keys().map(|k| k.len()).max().unwrap_or(0);
            for (key, v) in map {
                println!("{key:<width$}  {}", text(v));
            }
        }
        (Format::Table, other) => println!("{}", text(other)),
    }
}

pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        Value::Array(items) => items.iter().map(text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}
