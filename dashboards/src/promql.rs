//! The names a PromQL expression refers to: metrics, labels, range windows.
//!
//! A small scanner, not a parser: it knows string literals, label matchers (`{...}`), range
//! selectors (`[...]`), grouping clauses (`by (...)`, `on (...)`, ...), function calls and
//! aggregation operators, which is all the dashboards use. Anything that is neither a keyword,
//! a function nor a number is a metric name.

use std::collections::BTreeSet;

/// Functions whose argument must be a counter (or histogram bucket/sum/count) range vector.
pub const RATE_FUNCTIONS: [&str; 3] = ["rate", "irate", "increase"];

const AGGREGATIONS: [&str; 14] = [
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "limitk",
    "limit_ratio",
];
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
const KEYWORDS: [&str; 7] = ["and", "or", "unless", "bool", "offset", "inf", "nan"];

/// One metric selector in an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricUse {
    /// The metric name as written (`http_server_request_duration_seconds_bucket`).
    pub name: String,
    /// The function directly around it, if any (`rate`, `histogram_quantile`, ...).
    pub function: Option<String>,
}

/// What an expression refers to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    /// Metric selectors, in order of appearance.
    pub metrics: Vec<MetricUse>,
    /// Label names in matchers and grouping clauses.
    pub labels: BTreeSet<String>,
    /// Contents of every range selector (`$__rate_interval`, `5m`, ...).
    pub ranges: Vec<String>,
    /// Label matchers as `(label, operator, value)`.
    pub matchers: Vec<(String, String, String)>,
    /// `histogram_quantile` calls whose aggregation does not keep `le` (dashboards.md R12).
    pub quantiles_without_le: usize,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

struct Scanner<'a> {
    chars: Vec<char>,
    pos: usize,
    usage: &'a mut Usage,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn ident(&mut self) -> String {
        let start = self.pos;
        while self.peek().is_some_and(is_ident) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// A quoted string starting at the current quote; returns its contents.
    fn string(&mut self) -> String {
        let quote = self.chars[self.pos];
        self.pos += 1;
        let mut out = String::new();
        while let Some(c) = self.peek() {
            self.pos += 1;
            if c == quote {
                break;
            }
            if c == '\\' && quote != '`' {
                if let Some(next) = self.peek() {
                    out.push(next);
                    self.pos += 1;
                }
                continue;
            }
            out.push(c);
        }
        out
    }

    /// `{a="x", b=~"y"}` starting at `{`.
    fn matchers(&mut self) {
        self.pos += 1;
        loop {
            self.skip_ws();
            match self.peek() {
                None => return,
                Some('}') => {
                    self.pos += 1;
                    return;
                }
                Some(',') => self.pos += 1,
                Some('$') => {
                    // A Grafana variable standing for matchers (`{$__tags}`).
                    self.pos += 1;
                    self.ident();
                }
                Some(c) if is_ident_start(c) => {
                    let label = self.ident();
                    self.skip_ws();
                    let mut op = String::new();
                    while self.peek().is_some_and(|c| matches!(c, '=' | '!' | '~')) {
                        op.extend(self.peek());
                        self.pos += 1;
                    }
                    self.skip_ws();
                    let value = if self.peek().is_some_and(|c| matches!(c, '"' | '\'' | '`')) {
                        self.string()
                    } else {
                        String::new()
                    };
                    self.usage.labels.insert(label.clone());
                    self.usage.matchers.push((label, op, value));
                }
                Some('"' | '\'' | '`') => {
                    // A quoted metric name inside braces (`{"name"}`): not used here.
                    self.string();
                }
                Some(_) => self.pos += 1,
            }
        }
    }

    /// `(a, b)` after a grouping keyword; returns the labels.
    fn label_list(&mut self) -> Vec<String> {
        let mut labels = Vec::new();
        self.skip_ws();
        if self.peek() != Some('(') {
            return labels;
        }
        self.pos += 1;
        while let Some(c) = self.peek() {
            if c == ')' {
                self.pos += 1;
                break;
            }
            if is_ident_start(c) {
                labels.push(self.ident());
            } else {
                self.pos += 1;
            }
        }
        labels
    }

    fn run(&mut self) {
        // Function names of the open parentheses; `pending` is the name waiting for its `(`.
        let mut stack: Vec<String> = Vec::new();
        let mut pending: Option<String> = None;
        while let Some(c) = self.peek() {
            match c {
                '"' | '\'' | '`' => {
                    self.string();
                }
                '{' => self.matchers(),
                '[' => {
                    self.pos += 1;
                    let start = self.pos;
                    while self.peek().is_some_and(|c| c != ']') {
                        self.pos += 1;
                    }
                    let range: String = self.chars[start..self.pos].iter().collect();
                    self.usage.ranges.push(range.trim().to_owned());
                    self.pos += 1;
                }
                '(' => {
                    stack.push(pending.take().unwrap_or_default());
                    self.pos += 1;
                }
                ')' => {
                    stack.pop();
                    self.pos += 1;
                }
                '$' => {
                    self.pos += 1;
                    if self.peek() == Some('{') {
                        while self.peek().is_some_and(|c| c != '}') {
                            self.pos += 1;
                        }
                        self.pos += 1;
                    } else {
                        self.ident();
                    }
                }
                c if c.is_ascii_digit() || c == '.' => {
                    while self
                        .peek()
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '.')
                    {
                        self.pos += 1;
                    }
                }
                c if is_ident_start(c) => {
                    let word = self.ident();
                    let lower = word.to_ascii_lowercase();
                    self.skip_ws();
                    if GROUPING.contains(&lower.as_str()) {
                        let labels = self.label_list();
                        if stack.iter().any(|f| f == "histogram_quantile")
                            && matches!(lower.as_str(), "by")
                            && !labels.iter().any(|l| l == "le")
                        {
                            self.usage.quantiles_without_le += 1;
                        }
                        self.usage.labels.extend(labels);
                    } else if AGGREGATIONS.contains(&lower.as_str()) || self.peek() == Some('(') {
                        pending = Some(word);
                    } else if !KEYWORDS.contains(&lower.as_str()) {
                        self.usage.metrics.push(MetricUse {
                            name: word,
                            function: stack.last().filter(|f| !f.is_empty()).cloned(),
                        });
                    }
                }
                _ => self.pos += 1,
            }
        }
    }
}

/// Scans `expr`.
pub fn analyze(expr: &str) -> Usage {
    let mut usage = Usage::default();
    Scanner {
        chars: expr.chars().collect(),
        pos: 0,
        usage: &mut usage,
    }
    .run();
    usage
}

/// The metric and label in a Grafana `label_values(selector, label)` variable query.
pub fn label_values(query: &str) -> Option<(Usage, String)> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (selector, label) = match inner.rsplit_once(',') {
        Some((selector, label)) => (selector, label.trim()),
        None => ("", inner.trim()),
    };
    Some((analyze(selector), label.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Vec<String> {
        analyze(expr).metrics.into_iter().map(|m| m.name).collect()
    }

    #[test]
    fn metrics_labels_and_ranges() {
        let u = analyze(
            r#"histogram_quantile(0.95, sum by (le, http_route) (rate(http_server_request_duration_seconds_bucket{service_name=~"$service", http_route!="a{b}"}[$__rate_interval])))"#,
        );
        assert_eq!(u.metrics.len(), 1);
        assert_eq!(
            u.metrics[0].name,
            "http_server_request_duration_seconds_bucket"
        );
        assert_eq!(u.metrics[0].function.as_deref(), Some("rate"));
        assert_eq!(u.ranges, ["$__rate_interval"]);
        assert!(u.labels.contains("le") && u.labels.contains("service_name"));
        assert_eq!(u.quantiles_without_le, 0);
        assert_eq!(
            u.matchers[1],
            ("http_route".to_owned(), "!=".to_owned(), "a{b}".to_owned())
        );
    }

    #[test]
    fn keywords_functions_and_numbers_are_not_metrics() {
        assert_eq!(
            names(
                "(sum(rate(a_total[1m])) or 0 * sum by (x) (rate(b_total[1m]))) / max without (y) (c) > bool 1e3"
            ),
            ["a_total", "b_total", "c"]
        );
        assert_eq!(names("count(sum by (client, server) (d))"), ["d"]);
        assert_eq!(names("up offset 5m"), ["up"]);
    }

    #[test]
    fn quantile_without_le_is_counted() {
        let u = analyze("histogram_quantile(0.9, sum by (route) (rate(x_bucket[1m])))");
        assert_eq!(u.quantiles_without_le, 1);
    }

    #[test]
    fn label_values_queries() {
        let (usage, label) =
            label_values(r#"label_values(m_count{service_name=~"$service"}, http_route)"#)
                .expect("a label_values query");
        assert_eq!(label, "http_route");
        assert_eq!(usage.metrics[0].name, "m_count");
        let (usage, label) = label_values("label_values(job)").expect("one argument");
        assert_eq!(label, "job");
        assert!(usage.metrics.is_empty());
    }
}
