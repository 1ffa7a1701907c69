//! Pinecone's metadata filter language, parsed and validated by the gateway before anything goes upstream. (The
//! emulator evaluates filters with code of its own, so the two check each other.)
//!
//! Operators: `$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or`, and a bare value for implicit equality
//! (`{"genre": "drama"}`). `$in`/`$nin` take at most 10,000 values, as Pinecone enforces.

use serde_json::{Map, Value};

/// Pinecone's cap on the values of one `$in` or `$nin`.
pub const MAX_IN_VALUES: usize = 10_000;

/// A parsed, valid filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Field { field: String, op: Op },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Eq(Value),
    Ne(Value),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Exists(bool),
}

/// Why a filter is not valid. The message names the path inside the filter and the rule.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct FilterError {
    pub path: String,
    pub reason: String,
}

fn err(path: &str, reason: impl Into<String>) -> FilterError {
    FilterError {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// Parses a filter. `path` names it in messages (`filter`, `queries[0].filter`). An empty object is an empty `And`,
/// which matches everything; callers that must refuse empty filters check [`is_empty`] first.
pub fn parse(path: &str, filter: &Map<String, Value>) -> Result<Filter, FilterError> {
    let mut clauses = Vec::with_capacity(filter.len());
    for (key, value) in filter {
        let here = format!("{path}.{key}");
        match key.as_str() {
            "$and" | "$or" => {
                let items = value
                    .as_array()
                    .ok_or_else(|| err(&here, "takes an array of filter objects"))?;
                if items.is_empty() {
                    return Err(err(&here, "takes a non-empty array of filter objects"));
                }
                let mut parts = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{here}[{i}]");
                    let obj = item
                        .as_object()
                        .ok_or_else(|| err(&item_path, "must be a filter object"))?;
                    parts.push(parse(&item_path, obj)?);
                }
                clauses.push(if key == "$and" {
                    Filter::And(parts)
                } else {
                    Filter::Or(parts)
                });
            }
            k if k.starts_with('$') => {
                return Err(err(
                    &here,
                    format!(
                        "unknown operator `{k}` at the top level; only $and and $or combine clauses"
                    ),
                ));
            }
            field => clauses.extend(parse_field(&here, field, value)?),
        }
    }
    Ok(if clauses.len() == 1 {
        clauses.remove(0)
    } else {
        Filter::And(clauses)
    })
}

/// True when the filter has no clause at all (`{}`), which Pinecone refuses for delete, update and fetch by metadata.
pub fn is_empty(filter: &Map<String, Value>) -> bool {
    filter.is_empty()
}

fn parse_field(path: &str, field: &str, value: &Value) -> Result<Vec<Filter>, FilterError> {
    let ops = match value {
        Value::Object(ops) => ops,
        Value::String(_) | Value::Number(_) | Value::Bool(_) => {
            return Ok(vec![Filter::Field {
                field: field.to_string(),
                op: Op::Eq(value.clone()),
            }]);
        }
        _ => {
            return Err(err(
                path,
                "must be a string, number or boolean (implicit $eq) or an object of operators",
            ));
        }
    };
    if ops.is_empty() {
        return Err(err(path, "has no operator"));
    }
    let mut out = Vec::with_capacity(ops.len());
    for (name, operand) in ops {
        let here = format!("{path}.{name}");
        let op = match name.as_str() {
            "$eq" => Op::Eq(scalar(&here, operand)?),
            "$ne" => Op::Ne(scalar(&here, operand)?),
            "$gt" => Op::Gt(number(&here, operand)?),
            "$gte" => Op::Gte(number(&here, operand)?),
            "$lt" => Op::Lt(number(&here, operand)?),
            "$lte" => Op::Lte(number(&here, operand)?),
            "$in" => Op::In(list(&here, operand)?),
            "$nin" => Op::Nin(list(&here, operand)?),
            "$exists" => Op::Exists(
                operand
                    .as_bool()
                    .ok_or_else(|| err(&here, "takes a boolean"))?,
            ),
            other => {
                return Err(err(
                    &here,
                    format!(
                        "unknown operator `{other}`; supported: $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $exists"
                    ),
                ));
            }
        };
        out.push(Filter::Field {
            field: field.to_string(),
            op,
        });
    }
    Ok(out)
}

fn scalar(path: &str, v: &Value) -> Result<Value, FilterError> {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(v.clone()),
        _ => Err(err(path, "takes a string, number or boolean")),
    }
}

fn number(path: &str, v: &Value) -> Result<f64, FilterError> {
    v.as_f64().ok_or_else(|| err(path, "takes a number"))
}

fn list(path: &str, v: &Value) -> Result<Vec<Value>, FilterError> {
    let items = v
        .as_array()
        .ok_or_else(|| err(path, "takes an array of strings or numbers"))?;
    if items.len() > MAX_IN_VALUES {
        return Err(err(
            path,
            format!("has {} values; the limit is {MAX_IN_VALUES}", items.len()),
        ));
    }
    for (i, item) in items.iter().enumerate() {
        if !matches!(item, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
            return Err(err(
                &format!("{path}[{i}]"),
                "must be a string, number or boolean",
            ));
        }
    }
    Ok(items.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn accepts_every_operator() {
        for f in [
            json!({"genre": "drama"}),
            json!({"genre": {"$ne": "drama"}}),
            json!({"year": {"$gt": 2019, "$lte": 2020}}),
            json!({"genre": {"$in": ["x", "drama"], "$nin": [1]}}),
            json!({"missing": {"$exists": false}}),
            json!({"$or": [{"genre": "comedy"}, {"$and": [{"year": 2020}, {"ok": true}]}]}),
        ] {
            parse("filter", &obj(f.clone())).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }

    #[test]
    fn rejects_malformed_filters_naming_the_path() {
        let e = parse("filter", &obj(json!({"genre": {"$regex": "d.*"}}))).unwrap_err();
        assert_eq!(e.path, "filter.genre.$regex");
        assert!(e.reason.contains("unknown operator"));
        let e = parse("filter", &obj(json!({"year": {"$gt": "x"}}))).unwrap_err();
        assert_eq!(e.to_string(), "filter.year.$gt: takes a number");
        let e = parse("filter", &obj(json!({"$and": {}}))).unwrap_err();
        assert!(e.reason.contains("array"));
        let e = parse("filter", &obj(json!({"$not": []}))).unwrap_err();
        assert!(e.reason.contains("unknown operator `$not`"));
        let too_many: Vec<u32> = (0..10_001).collect();
        let e = parse("filter", &obj(json!({"id": {"$in": too_many}}))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "filter.id.$in: has 10001 values; the limit is 10000"
        );
        let e = parse("filter", &obj(json!({"a": null}))).unwrap_err();
        assert_eq!(e.path, "filter.a");
    }
}
