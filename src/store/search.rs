//! Search filters, `order_by` clauses and paging of the local store.
//!
//! The filter grammar is a subset of MLflow's: clauses `<key> <op> <value>`
//! joined by `AND`. A `<key>` is an attribute (`name`, `run_id`,
//! `attributes.status`, ...) or `metrics.<k>`, `params.<k>` or `tags.<k>`,
//! where `<k>` may be quoted with backticks or double quotes. An `<op>` is
//! one of `= != < <= > >= LIKE ILIKE`, and a `<value>` is a quoted string or
//! a number. `OR`, `IN`, `IS NULL` and parentheses are rejected as
//! [`Error::Unsupported`] naming the filter.

use std::cmp::Ordering;

use crate::error::{Error, Result};

/// A key of a searched entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    Attribute(String),
    Metric(String),
    Param(String),
    Tag(String),
}

/// A value of an entity field or a filter literal.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Datum {
    Text(String),
    Number(f64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
    ILike,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Clause {
    pub key: Key,
    pub op: Op,
    pub value: Datum,
}

/// One `order_by` item.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OrderKey {
    pub key: Key,
    pub ascending: bool,
}

/// An entity that can be filtered and sorted.
pub(crate) trait Fields {
    /// Returns true when searches of this entity know `key`.
    fn supports(key: &Key) -> bool;
    /// Returns the value of `key`, or `None` when the entity lacks it.
    fn field(&self, key: &Key) -> Option<Datum>;
}

fn unsupported(filter: &str, reason: &str) -> Error {
    Error::Unsupported(format!(
        "the search filter {filter:?} on the local file store ({reason}); it supports clauses \
         `<key> <op> <value>` joined by AND, with = != < <= > >= LIKE ILIKE"
    ))
}

/// Parses a filter string; an empty or missing filter has no clauses.
pub(crate) fn parse_filter<T: Fields>(filter: &str) -> Result<Vec<Clause>> {
    let mut cursor = Cursor { text: filter, pos: 0 };
    let mut clauses = Vec::new();
    cursor.skip_space();
    if cursor.at_end() {
        return Ok(clauses);
    }
    loop {
        let key = cursor.key().map_err(|reason| unsupported(filter, &reason))?;
        if !T::supports(&key) {
            return Err(unsupported(filter, &format!("it cannot search by {}", key_text(&key))));
        }
        let op = cursor.op().map_err(|reason| unsupported(filter, &reason))?;
        let value = cursor.literal().map_err(|reason| unsupported(filter, &reason))?;
        clauses.push(Clause { key, op, value });
        cursor.skip_space();
        if cursor.at_end() {
            return Ok(clauses);
        }
        let word = cursor.word();
        if !word.eq_ignore_ascii_case("AND") {
            return Err(unsupported(filter, &format!("{word:?} where AND or the end was expected")));
        }
    }
}

/// Parses `order_by` items such as `metrics.rmse DESC` or `name`.
pub(crate) fn parse_order_by<T: Fields>(items: &[String]) -> Result<Vec<OrderKey>> {
    let mut keys = Vec::new();
    for item in items {
        let mut cursor = Cursor { text: item, pos: 0 };
        cursor.skip_space();
        let key = cursor.key().map_err(|reason| unsupported_order(item, &reason))?;
        if !T::supports(&key) {
            return Err(unsupported_order(item, &format!("it cannot sort by {}", key_text(&key))));
        }
        cursor.skip_space();
        let direction = cursor.word();
        let ascending = match direction.to_ascii_uppercase().as_str() {
            "" | "ASC" => true,
            "DESC" => false,
            other => return Err(unsupported_order(item, &format!("{other:?} is not ASC or DESC"))),
        };
        cursor.skip_space();
        if !cursor.at_end() {
            return Err(unsupported_order(item, "it has text after the direction"));
        }
        keys.push(OrderKey { key, ascending });
    }
    Ok(keys)
}

fn unsupported_order(item: &str, reason: &str) -> Error {
    Error::Unsupported(format!(
        "the order_by item {item:?} on the local file store ({reason}); write `<key> [ASC|DESC]`"
    ))
}

fn key_text(key: &Key) -> String {
    match key {
        Key::Attribute(name) => name.clone(),
        Key::Metric(name) => format!("metrics.{name}"),
        Key::Param(name) => format!("params.{name}"),
        Key::Tag(name) => format!("tags.{name}"),
    }
}

/// Returns true when `item` meets every clause. A missing field meets no clause.
pub(crate) fn matches<T: Fields>(clauses: &[Clause], item: &T, filter: &str) -> Result<bool> {
    for clause in clauses {
        let Some(value) = item.field(&clause.key) else {
            return Ok(false);
        };
        if !compare(&value, clause, filter)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn compare(value: &Datum, clause: &Clause, filter: &str) -> Result<bool> {
    match (value, &clause.value) {
        (Datum::Text(have), Datum::Text(want)) => match clause.op {
            Op::Eq => Ok(have == want),
            Op::Ne => Ok(have != want),
            Op::Like => Ok(like(have, want)),
            Op::ILike => Ok(like(&have.to_lowercase(), &want.to_lowercase())),
            _ => Err(unsupported(filter, &format!("{} is text, so it takes only = != LIKE ILIKE", key_text(&clause.key)))),
        },
        (Datum::Number(have), Datum::Number(want)) => Ok(match clause.op {
            Op::Eq => have == want,
            Op::Ne => have != want,
            Op::Lt => have < want,
            Op::Le => have <= want,
            Op::Gt => have > want,
            Op::Ge => have >= want,
            Op::Like | Op::ILike => {
                return Err(unsupported(filter, &format!("{} is a number, so it takes no LIKE", key_text(&clause.key))))
            }
        }),
        (Datum::Text(_), Datum::Number(_)) => Err(unsupported(
            filter,
            &format!("{} is text, so quote the value", key_text(&clause.key)),
        )),
        (Datum::Number(_), Datum::Text(_)) => Err(unsupported(
            filter,
            &format!("{} is a number, so do not quote the value", key_text(&clause.key)),
        )),
    }
}

/// SQL `LIKE`: `%` matches any run of characters, `_` any one character.
fn like(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    // matched[j]: pattern[..j] matches the text read so far.
    let mut matched = vec![false; pattern.len() + 1];
    matched[0] = true;
    for j in 1..=pattern.len() {
        matched[j] = matched[j - 1] && pattern[j - 1] == '%';
    }
    for &c in &text {
        let mut next = vec![false; pattern.len() + 1];
        for j in 1..=pattern.len() {
            next[j] = match pattern[j - 1] {
                '%' => next[j - 1] || matched[j],
                '_' => matched[j - 1],
                p => matched[j - 1] && p == c,
            };
        }
        matched = next;
    }
    matched[pattern.len()]
}

/// Sorts `items` by `order`, then by `tiebreak`. A missing value sorts after
/// present ones in both directions, as MLflow's stores sort them.
pub(crate) fn sort<T: Fields>(items: &mut [T], order: &[OrderKey], tiebreak: &[OrderKey]) {
    items.sort_by(|a, b| {
        for key in order.iter().chain(tiebreak) {
            let ordering = match (a.field(&key.key), b.field(&key.key)) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(x), Some(y)) => {
                    let ordering = compare_data(&x, &y);
                    if key.ascending {
                        ordering
                    } else {
                        ordering.reverse()
                    }
                }
            };
            if ordering != Ordering::Equal {
                return ordering;
            }
        }
        Ordering::Equal
    });
}

fn compare_data(a: &Datum, b: &Datum) -> Ordering {
    match (a, b) {
        (Datum::Number(x), Datum::Number(y)) => x.total_cmp(y),
        (Datum::Text(x), Datum::Text(y)) => x.cmp(y),
        (Datum::Number(_), Datum::Text(_)) => Ordering::Less,
        (Datum::Text(_), Datum::Number(_)) => Ordering::Greater,
    }
}

/// Returns the page of `items` that starts at the offset in `page_token`
/// (the decimal offset a previous page returned) and the token of the next
/// page, if any items are left.
pub(crate) fn paginate<T>(items: Vec<T>, max_results: usize, page_token: Option<&str>) -> Result<(Vec<T>, Option<String>)> {
    let offset = match page_token.filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => token.parse::<usize>().map_err(|_| {
            super::invalid_parameter(format!("Invalid page token {token:?}: it was not returned by this store"))
        })?,
    };
    let total = items.len();
    let end = offset.saturating_add(max_results).min(total);
    let page: Vec<T> = items.into_iter().skip(offset).take(end.saturating_sub(offset)).collect();
    let next = (end < total).then(|| end.to_string());
    Ok((page, next))
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += self.peek().map_or(0, char::len_utf8);
        }
    }

    /// Reads characters that can make up a bare key or keyword.
    fn word(&mut self) -> String {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | ':' | '/') {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        self.text[start..self.pos].to_string()
    }

    fn quoted(&mut self) -> std::result::Result<String, String> {
        let quote = self.peek().ok_or("the text ends where a quote was expected")?;
        self.pos += quote.len_utf8();
        let rest = self.rest();
        let end = rest.find(quote).ok_or_else(|| format!("a {quote} quote is not closed"))?;
        let content = rest[..end].to_string();
        self.pos += end + quote.len_utf8();
        Ok(content)
    }

    fn key(&mut self) -> std::result::Result<Key, String> {
        self.skip_space();
        let word = self.word();
        if word.is_empty() {
            return Err(match self.peek() {
                Some('(') => "parentheses are not supported".to_string(),
                Some(c) => format!("a key was expected at {c:?}"),
                None => "a key was expected at the end".to_string(),
            });
        }
        let (prefix, name) = if let Some(prefix) = word.strip_suffix('.') {
            if !matches!(self.peek(), Some('`' | '"')) {
                return Err(format!("the key {word:?} ends with a dot"));
            }
            (prefix.to_string(), self.quoted()?)
        } else if let Some((prefix, name)) = word.split_once('.') {
            (prefix.to_string(), name.to_string())
        } else {
            return Ok(Key::Attribute(word));
        };
        match prefix.to_ascii_lowercase().as_str() {
            "metric" | "metrics" => Ok(Key::Metric(name)),
            "param" | "params" | "parameter" | "parameters" => Ok(Key::Param(name)),
            "tag" | "tags" => Ok(Key::Tag(name)),
            "attribute" | "attributes" | "attr" | "run" => Ok(Key::Attribute(name)),
            _ => Err(format!("the key prefix {prefix:?} is not metrics, params, tags or attributes")),
        }
    }

    fn op(&mut self) -> std::result::Result<Op, String> {
        self.skip_space();
        for (text, op) in [("!=", Op::Ne), ("<=", Op::Le), (">=", Op::Ge), ("=", Op::Eq), ("<", Op::Lt), (">", Op::Gt)] {
            if self.rest().starts_with(text) {
                self.pos += text.len();
                return Ok(op);
            }
        }
        let word = self.word();
        match word.to_ascii_uppercase().as_str() {
            "LIKE" => Ok(Op::Like),
            "ILIKE" => Ok(Op::ILike),
            "" => Err("a comparison operator was expected".to_string()),
            other => Err(format!("the operator {other} is not supported")),
        }
    }

    fn literal(&mut self) -> std::result::Result<Datum, String> {
        self.skip_space();
        match self.peek() {
            Some('\'' | '"') => Ok(Datum::Text(self.quoted()?)),
            Some('(') => Err("value lists in parentheses are not supported".to_string()),
            None => Err("a value was expected at the end".to_string()),
            Some(_) => {
                let word = self.word();
                let word = if word.is_empty() && self.peek() == Some('+') {
                    self.pos += 1;
                    self.word()
                } else {
                    word
                };
                word.parse::<f64>()
                    .map(Datum::Number)
                    .map_err(|_| format!("{word:?} is neither a quoted string nor a number"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item {
        name: &'static str,
        score: Option<f64>,
    }

    impl Fields for Item {
        fn supports(key: &Key) -> bool {
            matches!(key, Key::Attribute(a) if a == "name") || matches!(key, Key::Metric(_) | Key::Tag(_))
        }
        fn field(&self, key: &Key) -> Option<Datum> {
            match key {
                Key::Attribute(_) => Some(Datum::Text(self.name.into())),
                Key::Metric(m) if m == "score" => self.score.map(Datum::Number),
                _ => None,
            }
        }
    }

    #[test]
    fn filter_parses_clauses() {
        let clauses = parse_filter::<Item>("name = 'a b' AND metrics.`my score` >= -1.5 and tags.\"x y\" LIKE 'p%'").unwrap();
        assert_eq!(
            clauses,
            vec![
                Clause { key: Key::Attribute("name".into()), op: Op::Eq, value: Datum::Text("a b".into()) },
                Clause { key: Key::Metric("my score".into()), op: Op::Ge, value: Datum::Number(-1.5) },
                Clause { key: Key::Tag("x y".into()), op: Op::Like, value: Datum::Text("p%".into()) },
            ]
        );
        assert!(parse_filter::<Item>("  ").unwrap().is_empty());
    }

    #[test]
    fn unsupported_filters_name_the_filter() {
        for bad in [
            "name = 'a' OR name = 'b'",
            "name IN ('a')",
            "params.x = 'a'",
            "name =",
            "(name = 'a')",
            "datasets.name = 'x'",
        ] {
            let err = parse_filter::<Item>(bad).unwrap_err();
            assert_eq!(err.kind(), "unsupported", "{bad}");
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn like_matches_sql_wildcards() {
        assert!(like("page-01", "page-%"));
        assert!(like("page-01", "page-_1"));
        assert!(!like("page-01", "page-_"));
        assert!(like("", "%"));
        assert!(!like("Page", "page%"));
    }

    #[test]
    fn matches_and_sorts_with_missing_last() {
        let mut items = vec![
            Item { name: "b", score: Some(0.4) },
            Item { name: "a", score: None },
            Item { name: "c", score: Some(0.9) },
        ];
        let clauses = parse_filter::<Item>("metrics.score > 0.5").unwrap();
        let matching: Vec<&str> = items.iter().filter(|i| matches(&clauses, *i, "").unwrap()).map(|i| i.name).collect();
        assert_eq!(matching, vec!["c"]);
        let order = parse_order_by::<Item>(&["metrics.score DESC".to_string()]).unwrap();
        let by_name = parse_order_by::<Item>(&["name".to_string()]).unwrap();
        sort(&mut items, &order, &by_name);
        assert_eq!(items.iter().map(|i| i.name).collect::<Vec<_>>(), vec!["c", "b", "a"]);
        let err = matches(&parse_filter::<Item>("name > 'a'").unwrap(), &items[0], "name > 'a'").unwrap_err();
        assert_eq!(err.kind(), "unsupported");
    }

    #[test]
    fn pages_follow_offsets() {
        let (page, next) = paginate((1..=7).collect::<Vec<_>>(), 3, None).unwrap();
        assert_eq!((page, next.as_deref()), (vec![1, 2, 3], Some("3")));
        let (page, next) = paginate((1..=7).collect::<Vec<_>>(), 5, Some("3")).unwrap();
        assert_eq!((page, next), (vec![4, 5, 6, 7], None));
        assert_eq!(paginate(vec![1], 1, Some("x")).unwrap_err().kind(), "api");
    }
}
