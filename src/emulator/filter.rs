//! The emulator's metadata filter: checked as Pinecone checks it (400 with a message), and evaluated over a
//! record's metadata. Written apart from the gateway's validator (`crate::filter`), so that the two are checked
//! against each other rather than against themselves.
//!
//! `{"field": value}` is `$eq`; operators `$eq $ne $gt $gte $lt $lte $in $nin $exists`; `$and`/`$or` take arrays of
//! filters; `$in`/`$nin` at most 10,000 values; a list-of-strings metadata value matches when one element does.

use super::model::Metadata;
use serde_json::Value;

const MAX_IN: usize = 10_000;

/// Why Pinecone would refuse this filter, if it would.
pub fn check(filter: &Metadata) -> Result<(), String> {
    for (key, value) in filter {
        match key.as_str() {
            "$and" | "$or" => {
                let Some(parts) = value.as_array().filter(|a| !a.is_empty()) else {
                    return Err(format!("{key} must be a non-empty array"));
                };
                for part in parts {
                    let Some(obj) = part.as_object() else {
                        return Err(format!("{key} must hold filter objects"));
                    };
                    check(obj)?;
                }
            }
            op if op.starts_with('$') => return Err(format!("unsupported operator {op}")),
            field => check_field(field, value)?,
        }
    }
    Ok(())
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

fn check_field(field: &str, value: &Value) -> Result<(), String> {
    let Some(ops) = value.as_object() else {
        return if is_scalar(value) {
            Ok(())
        } else {
            Err(format!("invalid value for field {field}"))
        };
    };
    if ops.is_empty() {
        return Err(format!("no operator for field {field}"));
    }
    for (op, operand) in ops {
        let ok = match op.as_str() {
            "$eq" | "$ne" => is_scalar(operand),
            "$gt" | "$gte" | "$lt" | "$lte" => operand.is_number(),
            "$exists" => operand.is_boolean(),
            "$in" | "$nin" => match operand.as_array() {
                Some(items) if items.len() > MAX_IN => {
                    return Err(format!(
                        "{op} on {field} has {} values; at most {MAX_IN} are allowed",
                        items.len()
                    ));
                }
                Some(items) => items.iter().all(is_scalar),
                None => false,
            },
            other => return Err(format!("unsupported operator {other} on field {field}")),
        };
        if !ok {
            return Err(format!("invalid operand for {op} on field {field}"));
        }
    }
    Ok(())
}

/// Whether a record with this metadata matches a filter that [`check`] accepted.
pub fn matches(filter: &Metadata, metadata: Option<&Metadata>) -> bool {
    filter.iter().all(|(key, value)| match key.as_str() {
        "$and" => parts(value).all(|f| matches(f, metadata)),
        "$or" => parts(value).any(|f| matches(f, metadata)),
        field => {
            let have = metadata.and_then(|m| m.get(field));
            match value.as_object() {
                None => equal(have, value),
                Some(ops) => ops.iter().all(|(op, operand)| apply(op, operand, have)),
            }
        }
    })
}

fn parts(value: &Value) -> impl Iterator<Item = &Metadata> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn equal(have: Option<&Value>, want: &Value) -> bool {
    match have {
        Some(Value::Array(items)) => items.iter().any(|v| same(v, want)),
        Some(v) => same(v, want),
        None => false,
    }
}

fn apply(op: &str, operand: &Value, have: Option<&Value>) -> bool {
    let num = || have.and_then(Value::as_f64).zip(operand.as_f64());
    match op {
        "$eq" => equal(have, operand),
        "$ne" => !equal(have, operand),
        "$gt" => num().is_some_and(|(h, o)| h > o),
        "$gte" => num().is_some_and(|(h, o)| h >= o),
        "$lt" => num().is_some_and(|(h, o)| h < o),
        "$lte" => num().is_some_and(|(h, o)| h <= o),
        "$in" => operand
            .as_array()
            .is_some_and(|xs| xs.iter().any(|x| equal(have, x))),
        "$nin" => !operand
            .as_array()
            .is_some_and(|xs| xs.iter().any(|x| equal(have, x))),
        "$exists" => have.is_some() == operand.as_bool().unwrap_or(true),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Metadata {
        v.as_object().cloned().unwrap()
    }

    fn hit(filter: Value, meta: Value) -> bool {
        let f = obj(filter);
        check(&f).unwrap();
        matches(&f, Some(&obj(meta)))
    }

    #[test]
    fn every_operator() {
        let m = json!({"genre": "drama", "year": 2020, "tags": ["a", "b"], "ok": true});
        assert!(hit(json!({"genre": "drama"}), m.clone()));
        assert!(!hit(json!({"genre": {"$ne": "drama"}}), m.clone()));
        assert!(hit(json!({"year": {"$gt": 2019, "$lte": 2020}}), m.clone()));
        assert!(!hit(json!({"year": {"$lt": 2020}}), m.clone()));
        assert!(hit(json!({"year": {"$gte": 2020.0}}), m.clone()));
        assert!(hit(json!({"genre": {"$in": ["x", "drama"]}}), m.clone()));
        assert!(hit(json!({"genre": {"$nin": ["x"]}}), m.clone()));
        assert!(hit(json!({"tags": "b"}), m.clone()));
        assert!(hit(json!({"missing": {"$exists": false}}), m.clone()));
        assert!(hit(
            json!({"$or": [{"genre": "comedy"}, {"$and": [{"year": 2020}, {"ok": true}]}]}),
            m.clone()
        ));
        assert!(!hit(json!({"missing": {"$gt": 1}}), m));
    }

    #[test]
    fn refuses_what_pinecone_refuses() {
        assert!(check(&obj(json!({"a": {"$regex": "x"}}))).is_err());
        assert!(check(&obj(json!({"$and": []}))).is_err());
        assert!(check(&obj(json!({"a": {"$gt": "x"}}))).is_err());
        assert!(check(&obj(json!({"a": null}))).is_err());
        let many: Vec<u32> = (0..10_001).collect();
        assert!(check(&obj(json!({"a": {"$in": many}}))).is_err());
    }
}
